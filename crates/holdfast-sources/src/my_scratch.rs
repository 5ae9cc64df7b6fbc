//! A throwaway MariaDB/MySQL server for restore tests: `mariadb-install-db` into a folder the
//! test owns, `mariadbd` with no TCP (`--skip-networking`) on a Unix socket in a `0700`
//! folder, `root` without a password (only the folder's owner, and root, can reach the
//! socket), settings for speed over durability (nothing here outlives the test).
//!
//! The server is this process's child and dies with the thread that started it
//! (`PR_SET_PDEATHSIG`); [`ScratchMariaDb`] stops it (`SIGTERM`, killed after 30 s) when
//! dropped, [`stop_leftover`] stops one a killed test left. As root, the server runs as the
//! `mysql` user when there is one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use holdfast_engine::{Error, Result};

use crate::child_env;
use crate::mysql::MyConn;

/// How long the server may take to accept connections.
const READY: Duration = Duration::from_secs(120);

/// A running scratch server.
pub struct ScratchMariaDb {
    dir: PathBuf,
    child: Option<Child>,
}

impl std::fmt::Debug for ScratchMariaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchMariaDb")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Input(format!("scratch MariaDB: {what} {}: {e}", path.display()))
}

/// A server program: on PATH, else in the sbin folders distributions put it in.
fn server_tool(names: &[&str]) -> Result<PathBuf> {
    if let Ok(p) = crate::mysql::tool(names) {
        return Ok(p);
    }
    for d in ["/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/bin"] {
        for n in names {
            let p = Path::new(d).join(n);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::Input(format!(
        "{} not found: a MariaDB/MySQL restore test needs the server installed (e.g. apt-get \
         install mariadb-server)",
        names.join(" / ")
    )))
}

/// The uid and gid to run the server as: None unless we are root and `mysql` exists.
fn server_user() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    match nix::unistd::User::from_name("mysql") {
        Ok(Some(u)) => Some((u.uid.as_raw(), u.gid.as_raw())),
        _ => None,
    }
}

fn chown(path: &Path, user: Option<(u32, u32)>) -> Result<()> {
    child_env::chown(path, user).map_err(|e| io(path, "cannot give to mysql", e))
}

fn private_dir(path: &Path, user: Option<(u32, u32)>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(path).map_err(|e| io(path, "cannot create", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io(path, "cannot close", e))?;
    chown(path, user)
}

impl ScratchMariaDb {
    /// Make and start a server in `dir` (created; its parent must exist).
    pub fn start(dir: &Path) -> Result<ScratchMariaDb> {
        let user = server_user();
        let install = server_tool(&["mariadb-install-db", "mysql_install_db"])?;
        let server = server_tool(&["mariadbd", "mysqld"])?;
        if user.is_some()
            && let Some(parent) = dir.parent()
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| io(parent, "cannot open", e))?;
        }
        private_dir(dir, user)?;
        private_dir(&dir.join("sock"), user)?;
        // The server's temporary files stay in the folder (TMPDIR may be closed to it).
        let tmp = dir.join("tmp");
        private_dir(&tmp, user)?;
        let data = dir.join("data");
        let mut init = Command::new(&install);
        child_env::for_mysql(&mut init);
        init.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ])
            .env("TMPDIR", &tmp)
            .current_dir(dir)
            .stdin(Stdio::null());
        if user.is_none() && nix::unistd::geteuid().is_root() {
            init.arg("--user=root");
        }
        child_env::as_user(&mut init, user);
        let out = init.output().map_err(|e| {
            Error::Input(format!(
                "scratch MariaDB: cannot run {}: {e}",
                install.display()
            ))
        })?;
        if !out.status.success() {
            return Err(Error::Input(format!(
                "scratch MariaDB: {} {}: {}",
                install.display(),
                out.status,
                crate::export::tail(&out.stderr)
            )));
        }
        let log_path = dir.join("server.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| io(&log_path, "cannot create", e))?;
        chown(&log_path, user)?;
        let mut c = Command::new(&server);
        child_env::for_mysql(&mut c);
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket(dir).display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .env("TMPDIR", &tmp)
            .args([
                "--skip-networking",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=128M",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--skip-log-bin",
                "--max-allowed-packet=1G",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if user.is_none() && nix::unistd::geteuid().is_root() {
            c.arg("--user=root");
        }
        {
            use std::os::unix::process::CommandExt;
            c.process_group(0);
        }
        child_env::as_user(&mut c, user);
        child_env::die_with_parent(&mut c, libc::SIGKILL);
        let child = c.spawn().map_err(|e| {
            Error::Input(format!(
                "scratch MariaDB: cannot run {}: {e}",
                server.display()
            ))
        })?;
        let mut s = ScratchMariaDb {
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        s.wait_ready(&log_path)?;
        // A client defaults file, so a check command's `mariadb` needs no arguments.
        let cnf = dir.join("my.cnf");
        std::fs::write(
            &cnf,
            format!("[client]\nuser=root\nsocket={}\n", socket(dir).display()),
        )
        .map_err(|e| io(&cnf, "cannot write", e))?;
        Ok(s)
    }

    fn wait_ready(&mut self, log_path: &Path) -> Result<()> {
        let conn = self.conn()?;
        let end = Instant::now() + READY;
        loop {
            if let Some(ch) = self.child.as_mut()
                && let Ok(Some(st)) = ch.try_wait()
            {
                self.child = None;
                return Err(Error::Input(format!(
                    "scratch MariaDB: the server exited ({st}): {}",
                    crate::export::tail(&std::fs::read(log_path).unwrap_or_default())
                )));
            }
            if socket(&self.dir).exists() && crate::mysql::query(&conn, "SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() >= end {
                self.stop();
                return Err(Error::Input(format!(
                    "scratch MariaDB did not accept connections within {}s: {}",
                    READY.as_secs(),
                    crate::export::tail(&std::fs::read(log_path).unwrap_or_default())
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A connection as `root` over the private socket.
    pub fn conn(&self) -> Result<MyConn> {
        MyConn::parse(&self.url())
    }

    /// Its URL: `root` over the private socket (no password).
    pub fn url(&self) -> String {
        let sock: String =
            url::form_urlencoded::byte_serialize(socket(&self.dir).as_os_str().as_encoded_bytes())
                .collect();
        format!("mysql://root@localhost/?socket={sock}")
    }

    /// What a check command needs: `MYSQL_UNIX_PORT` (the socket) and `MYSQL_HOME` (a
    /// folder whose `my.cnf` names user and socket), so a bare `mariadb` connects.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "MYSQL_UNIX_PORT".into(),
                socket(&self.dir).display().to_string(),
            ),
            ("MYSQL_HOME".into(), self.dir.display().to_string()),
        ]
    }

    fn stop(&mut self) {
        let Some(mut ch) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(ch.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        child_env::wait_or_kill(&mut ch, Duration::from_secs(30));
    }
}

impl Drop for ScratchMariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

fn socket(dir: &Path) -> PathBuf {
    dir.join("sock").join("mysqld.sock")
}

/// Stop a server a dead process left running in the scratch folder `dir` (its pid file
/// names it; only a process whose command line names the folder is signalled).
pub fn stop_leftover(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join("mysqld.pid")) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()) {
        return;
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
}
