//! A throwaway MariaDB server: `mariadb-install-db` into a temporary folder, `mariadbd` on a
//! free port with its socket there, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, in_ci};

/// A running server (root without password over the socket and TCP on 127.0.0.1).
pub struct MariaDb {
    /// Its folder.
    pub dir: tempfile::TempDir,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin"].map(PathBuf::from));
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

impl MariaDb {
    /// Start a server, or `None` (with a message) when MariaDB is not installed outside CI.
    pub fn start() -> Option<MariaDb> {
        let (Some(install), Some(server)) = (
            find(&["mariadb-install-db", "mysql_install_db"]),
            find(&["mariadbd", "mysqld"]),
        ) else {
            assert!(
                !in_ci(),
                "MariaDB not found: .ci/run installs mariadb-server"
            );
            eprintln!("SKIP: MariaDB not found");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("holdfast-mariadb-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        let user = if nix::unistd::geteuid().is_root() {
            "--user=root".to_string()
        } else {
            format!("--user={}", std::env::var("USER").unwrap_or_default())
        };
        let o = Command::new(install)
            .arg(format!("--datadir={}", data.display()))
            .arg(&user)
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .expect("mariadb-install-db");
        assert!(
            o.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let port = free_port();
        let socket = dir.path().join("mysqld.sock");
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(&user)
            .arg("--innodb-buffer-pool-size=32M")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        let m = MariaDb { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !m.sql_raw("SELECT 1").status.success() {
            assert!(Instant::now() < deadline, "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(m)
    }

    /// `mysql://root@localhost/?socket=…`.
    pub fn url(&self) -> String {
        format!("mysql://root@localhost/?socket={}", self.socket().display())
    }

    /// The socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    fn sql_raw(&self, sql: &str) -> std::process::Output {
        Command::new(find(&["mariadb", "mysql"]).expect("mariadb client"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .expect("mariadb")
    }

    /// Run SQL and return its output; panics on failure.
    pub fn sql(&self, sql: &str) -> String {
        let o = self.sql_raw(sql);
        assert!(
            o.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
