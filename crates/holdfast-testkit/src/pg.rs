//! A throwaway PostgreSQL cluster: `initdb` into a temporary folder, a server on a free
//! port with its socket in that folder, stopped (immediate) on drop. As root, everything runs
//! as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, in_ci};

/// A running cluster.
pub struct PgCluster {
    /// Its folder (data in `data/`, socket in the folder itself).
    pub dir: tempfile::TempDir,
    /// Port.
    pub port: u16,
    bin: PathBuf,
}

/// Whether this process runs as root (then servers run as `postgres`).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// As root, give a folder (recursively) to the `postgres` user.
pub fn chown_to_postgres(p: &Path) {
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(p)
            .status()
            .expect("chown");
        assert!(st.success());
    }
}

/// The folder of the PostgreSQL server binaries (beside `initdb`), if installed.
pub fn pg_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("initdb"))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

impl PgCluster {
    /// Start a cluster, or `None` (with a message) when PostgreSQL is not installed outside CI.
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = pg_bin() else {
            assert!(!in_ci(), "initdb not found: PostgreSQL is needed in CI");
            eprintln!("SKIP: PostgreSQL (initdb) not found");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("holdfast-pg-")
            .tempdir()
            .expect("tempdir");
        chown_to_postgres(dir.path());
        let port = free_port();
        let c = PgCluster { dir, port, bin };
        let data = c.dir.path().join("data");
        c.run_ok(
            &c.bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let conf = format!(
            "port = {port}\nunix_socket_directories = '{}'\nlisten_addresses = ''\nfsync = off\n\
             wal_level = replica\narchive_mode = off\nmax_wal_senders = 4\n",
            c.dir.path().display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
            .expect("postgresql.conf");
        c.pg_ctl_start();
        Some(c)
    }

    /// A temporary folder the server user owns (for data folders made by other tools).
    pub fn owned_tempdir() -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("holdfast-pg-")
            .tempdir()
            .expect("tempdir");
        chown_to_postgres(dir.path());
        dir
    }

    /// Start a server on a data folder made elsewhere (`dir/data`, e.g. by `holdfast pg
    /// restore`), on a new port with its socket in `dir`; `settings` are appended to
    /// `postgresql.auto.conf` (they win over postgresql.conf).
    pub fn adopt(dir: tempfile::TempDir, settings: &str) -> Option<PgCluster> {
        let bin = pg_bin()?;
        chown_to_postgres(dir.path());
        let port = free_port();
        let c = PgCluster { dir, port, bin };
        let conf = format!(
            "\nport = {port}\nunix_socket_directories = '{}'\n{settings}\n",
            c.dir.path().display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(c.data().join("postgresql.auto.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
            .expect("postgresql.auto.conf");
        chown_to_postgres(c.dir.path());
        c.pg_ctl_start();
        Some(c)
    }

    /// Wait until the server has left recovery (promoted); panics after `secs`.
    pub fn wait_promoted(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let o = self.psql_raw("postgres", "SELECT pg_is_in_recovery()");
            if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "f" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still in recovery; log: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stop and start again (settings such as archive_mode need a restart).
    pub fn restart(&self) {
        self.stop();
        self.pg_ctl_start();
    }

    /// Append settings to postgresql.conf (takes effect at the next start).
    pub fn configure(&self, lines: &str) {
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, lines.as_bytes()))
            .expect("postgresql.conf");
    }

    /// The data folder.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn cmd(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        c.args(args).stdin(Stdio::null());
        c
    }

    fn run_ok(&self, program: &Path, args: &[&str]) -> Output {
        let o = self.cmd(program, args).output().expect("run");
        assert!(
            o.status.success(),
            "{} {args:?}: {}",
            program.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// Start the server and wait until it accepts connections.
    pub fn pg_ctl_start(&self) {
        let log = self.dir.path().join("server.log");
        let o = self
            .cmd(
                &self.bin.join("pg_ctl"),
                &[
                    "-D",
                    self.data().to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            )
            .output()
            .expect("pg_ctl");
        assert!(
            o.status.success(),
            "pg_ctl start: {}\nserver log:\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.psql_raw("postgres", "SELECT 1").status.success() {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server (fast shutdown).
    pub fn stop(&self) {
        let _ = self
            .cmd(
                &self.bin.join("pg_ctl"),
                &[
                    "-D",
                    self.data().to_str().unwrap(),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
            )
            .output();
    }

    /// `postgresql:///DB?host=DIR&port=PORT&user=postgres`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres@/{db}?host={}&port={}",
            self.dir.path().display(),
            self.port
        )
    }

    fn psql_raw(&self, db: &str, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("psql")
    }

    /// Run SQL and return its output; panics on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let o = self.psql_raw(db, sql);
        assert!(
            o.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A PostgreSQL tool from the server's folder (pg_dump, pgbench, …).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Connection arguments for client tools.
    pub fn conn_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.dir.path().display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            "postgres".into(),
        ]
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .cmd(
                &self.bin.join("pg_ctl"),
                &[
                    "-D",
                    self.data().to_str().unwrap_or(""),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            )
            .output();
    }
}
