//! A throwaway PostgreSQL server for restore tests: `initdb` into a folder the test owns, a
//! `postgres` server on a free loopback port with no Unix socket, a random password for the
//! `holdfast` superuser (SCRAM; handed to tools as `PGPASSWORD`, never in argv), settings for
//! speed over durability (`fsync = off`: nothing here outlives the test).
//!
//! A restored base backup is adopted instead ([`ScratchCluster::adopt`]): its own
//! `postgresql.conf` and `pg_hba.conf` are not used (they may name files of the source
//! machine, and its passwords are unknown here). The server gets an empty configuration
//! file, `trust` over a Unix socket only, in a `0700` folder only its owner (and root) can
//! enter, no TCP, no archiving, and recovers from the archive folder beside the data
//! folder before it accepts connections.
//!
//! The server is this process's child and dies with the thread that started it
//! (`PR_SET_PDEATHSIG` with `SIGQUIT`, PostgreSQL's immediate shutdown); [`ScratchCluster`]
//! stops it (fast shutdown) when dropped. PostgreSQL refuses to run as root: as root, `initdb`
//! and the server run as the `postgres` user, which must exist and be able to reach the
//! folder (its parent is opened to `0711`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use holdfast_engine::{Error, Result};

use crate::child_env;
use crate::postgres::{PgConn, tool};

/// The superuser of a scratch cluster.
pub const USER: &str = "holdfast";
/// How long the server may take to accept connections.
const READY: Duration = Duration::from_secs(60);

/// A running scratch server.
pub struct ScratchCluster {
    dir: PathBuf,
    port: u16,
    /// `127.0.0.1`, or the socket folder of an adopted cluster.
    host: String,
    user: String,
    /// None for an adopted cluster (trust over its private socket).
    password: Option<String>,
    child: Option<Child>,
}

impl std::fmt::Debug for ScratchCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchCluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The uid and gid to run the server as: None unless we are root.
fn server_user() -> Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(u)) => Ok(Some((u.uid.as_raw(), u.gid.as_raw()))),
        _ => Err(Error::Input(
            "a scratch PostgreSQL server cannot run as root and there is no `postgres` user \
             to run it as (create one, or run holdfast as another user)"
                .into(),
        )),
    }
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Input(format!(
        "scratch PostgreSQL: {what} {}: {e}",
        path.display()
    ))
}

fn random_password() -> Result<String> {
    let mut b = [0u8; 24];
    let mut f = std::fs::File::open("/dev/urandom")
        .map_err(|e| io(Path::new("/dev/urandom"), "cannot open", e))?;
    std::io::Read::read_exact(&mut f, &mut b)
        .map_err(|e| io(Path::new("/dev/urandom"), "cannot read", e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Input(format!("scratch PostgreSQL: no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Input(format!("scratch PostgreSQL: no free port: {e}")))
}

fn chown(path: &Path, user: Option<(u32, u32)>) -> Result<()> {
    child_env::chown(path, user).map_err(|e| io(path, "cannot give to postgres", e))
}

/// As another user the server must reach `dir`: its parent is opened to `0711`.
fn open_parent(dir: &Path, user: Option<(u32, u32)>) -> Result<()> {
    if user.is_some()
        && let Some(parent) = dir.parent()
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| io(parent, "cannot open", e))?;
    }
    Ok(())
}

/// Give `dir` and everything in it to the server's user (a restored base backup is ours).
fn chown_tree(dir: &Path, user: Option<(u32, u32)>) -> Result<()> {
    if user.is_none() {
        return Ok(());
    }
    chown(dir, user)?;
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, "cannot read", e))?;
    for e in entries {
        let e = e.map_err(|e| io(dir, "cannot read", e))?;
        let ft = e
            .file_type()
            .map_err(|err| io(&e.path(), "cannot read", err))?;
        if ft.is_dir() {
            chown_tree(&e.path(), user)?;
        } else if !ft.is_symlink() {
            chown(&e.path(), user)?;
        }
    }
    Ok(())
}

impl ScratchCluster {
    /// Make and start a cluster in `dir` (created; its parent must exist).
    pub fn start(dir: &Path) -> Result<ScratchCluster> {
        let user = server_user()?;
        open_parent(dir, user)?;
        std::fs::create_dir(dir).map_err(|e| io(dir, "cannot create", e))?;
        chown(dir, user)?;
        let password = random_password()?;
        let pwfile = dir.join("pwfile");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&pwfile)
                .map_err(|e| io(&pwfile, "cannot create", e))?;
            std::io::Write::write_all(&mut f, format!("{password}\n").as_bytes())
                .map_err(|e| io(&pwfile, "cannot write", e))?;
        }
        chown(&pwfile, user)?;
        let data = dir.join("data");
        let mut init = Command::new(tool("initdb")?);
        child_env::for_postgres(&mut init);
        init.arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .args(["--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(dir)
            .stdin(Stdio::null());
        child_env::as_user(&mut init, user);
        let out = init
            .output()
            .map_err(|e| Error::Input(format!("scratch PostgreSQL: cannot run initdb: {e}")))?;
        let _ = std::fs::remove_file(&pwfile);
        if !out.status.success() {
            return Err(Error::Input(format!(
                "scratch PostgreSQL: initdb {}: {}",
                out.status,
                crate::export::tail(&out.stderr)
            )));
        }
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let mut c = ScratchCluster {
                dir: dir.to_path_buf(),
                port,
                host: "127.0.0.1".into(),
                user: USER.into(),
                password: Some(password.clone()),
                child: None,
            };
            let settings = vec![
                "listen_addresses=127.0.0.1".to_string(),
                format!("port={port}"),
                "unix_socket_directories=".into(),
            ];
            match c.launch(&data, user, settings, READY) {
                Ok(()) => return Ok(c),
                // Another program took the port between the probe and the start: again.
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Input(format!(
            "scratch PostgreSQL did not start: {last}"
        )))
    }

    /// Start a server on the base backup laid out in `dir/data` (recovery settings
    /// written, WAL in `dir/wal`): it recovers to the end of that archive and promotes, and
    /// is ready when it accepts connections (at most `recovery` later). `superuser` is the
    /// source cluster's bootstrap superuser, the role checks connect as.
    pub fn adopt(dir: &Path, superuser: &str, recovery: Duration) -> Result<ScratchCluster> {
        let user = server_user()?;
        open_parent(dir, user)?;
        let sock = dir.join("sock");
        std::fs::create_dir(&sock).map_err(|e| io(&sock, "cannot create", e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io(&sock, "cannot close", e))?;
        }
        let conf = dir.join("postgresql.conf");
        let hba = dir.join("pg_hba.conf");
        let ident = dir.join("pg_ident.conf");
        for (path, text) in [
            (
                &conf,
                "# holdfast restore test: settings come from the command line\n",
            ),
            (&hba, "local all all trust\n"),
            (&ident, ""),
        ] {
            std::fs::write(path, text).map_err(|e| io(path, "cannot write", e))?;
        }
        chown_tree(dir, user)?;
        // The socket's name carries the port; the folder is private, so any port will do.
        let port = 5432;
        let mut c = ScratchCluster {
            dir: dir.to_path_buf(),
            port,
            host: sock.display().to_string(),
            user: superuser.to_string(),
            password: None,
            child: None,
        };
        let settings = vec![
            format!("config_file={}", conf.display()),
            format!("hba_file={}", hba.display()),
            format!("ident_file={}", ident.display()),
            "listen_addresses=".to_string(),
            format!("port={port}"),
            format!("unix_socket_directories={}", sock.display()),
            "unix_socket_permissions=0700".into(),
            // Never archive into the source's archive, never stream from its primary.
            "archive_mode=off".into(),
            "primary_conninfo=".into(),
            "hot_standby=off".into(),
            "restore_command=cp ../wal/%f %p".into(),
            "ssl=off".into(),
        ];
        c.launch(&dir.join("data"), user, settings, recovery)?;
        Ok(c)
    }

    fn launch(
        &mut self,
        data: &Path,
        user: Option<(u32, u32)>,
        mut settings: Vec<String>,
        ready_within: Duration,
    ) -> Result<()> {
        let log_path = self.dir.join("server.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| io(&log_path, "cannot create", e))?;
        let mut c = Command::new(tool("postgres")?);
        child_env::for_postgres(&mut c);
        c.arg("-D").arg(data);
        settings.extend([
            "fsync=off".into(),
            "synchronous_commit=off".into(),
            "full_page_writes=off".into(),
            "max_connections=40".into(),
            "max_wal_size=4GB".into(),
            "checkpoint_timeout=30min".into(),
            "logging_collector=off".into(),
        ]);
        for s in settings {
            c.arg("-c").arg(s);
        }
        c.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        {
            use std::os::unix::process::CommandExt;
            c.process_group(0);
        }
        child_env::as_user(&mut c, user);
        child_env::die_with_parent(&mut c, libc::SIGQUIT);
        let child = c
            .spawn()
            .map_err(|e| Error::Input(format!("scratch PostgreSQL: cannot run postgres: {e}")))?;
        self.child = Some(child);
        let ready = tool("pg_isready")?;
        let end = Instant::now() + ready_within;
        loop {
            if let Some(ch) = self.child.as_mut()
                && let Ok(Some(st)) = ch.try_wait()
            {
                self.child = None;
                return Err(Error::Input(format!(
                    "postgres {st}: {}",
                    crate::export::tail(&std::fs::read(&log_path).unwrap_or_default())
                )));
            }
            let mut p = Command::new(&ready);
            child_env::for_postgres(&mut p);
            let ok = p
                .args([
                    "-q",
                    "-h",
                    &self.host,
                    "-p",
                    &self.port.to_string(),
                    "-t",
                    "1",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() >= end {
                self.stop_server();
                return Err(Error::Input(format!(
                    "postgres did not accept connections within {}s: {}",
                    ready_within.as_secs(),
                    crate::export::tail(&std::fs::read(&log_path).unwrap_or_default())
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A connection to its maintenance database as the superuser (the password travels as
    /// `PGPASSWORD`).
    pub fn conn(&self) -> Result<PgConn> {
        PgConn::parse(&self.url())
    }

    /// Its URL, password included: for requests inside this process only (the tools get
    /// the password as `PGPASSWORD`), never for argv or logs.
    pub fn url(&self) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        match &self.password {
            Some(p) => format!(
                "postgresql://{}:{p}@127.0.0.1:{}/postgres",
                enc(&self.user),
                self.port
            ),
            None => format!(
                "postgresql://{}@/postgres?host={}&port={}",
                enc(&self.user),
                enc(&self.host),
                self.port
            ),
        }
    }

    /// Where it listens: `127.0.0.1`, or the socket folder of an adopted cluster.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The role checks connect as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The server's log so far (the last lines): what recovery said.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("server.log")).unwrap_or_default())
            .into_owned()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What a check command needs to connect: `PGHOST`, `PGPORT`, `PGUSER`, and
    /// `PGPASSWORD` unless the cluster was adopted.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("PGHOST".into(), self.host.clone()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), self.user.clone()),
        ];
        if let Some(p) = &self.password {
            v.push(("PGPASSWORD".into(), p.clone()));
        }
        v
    }

    /// Stop the server: fast shutdown, killed after 30 s.
    fn stop_server(&mut self) {
        let Some(mut ch) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(ch.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        child_env::wait_or_kill(&mut ch, Duration::from_secs(30));
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// Stop a server a dead process left running on the data folder `data` (its
/// `postmaster.pid` names it): immediate shutdown, killed after 10 s.
pub fn stop_leftover(data: &Path) {
    let Ok(text) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return;
    };
    // Only a postgres process whose data folder is this one.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy());
    if !ours {
        return;
    }
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGQUIT);
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
}
