//! MariaDB / MySQL, logical: `mariadb-dump` (or `mysqldump`) with `--single-transaction
//! --routines --events --triggers`, streamed into one recovery point; restore pipes it into
//! the `mariadb` (or `mysql`) client. The password travels in `MYSQL_PWD`, never in argv;
//! each tool's environment is scrubbed of holdfast's own secrets first
//! ([`crate::child_env::for_mysql`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use holdfast_engine::{Error, Result};

use crate::child_env::{self, Child};
use crate::export::{Export, ExportsSource, run_capture};

/// A MySQL/MariaDB connection without its password.
#[derive(Clone)]
pub struct MyConn {
    user: Option<String>,
    password: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    socket: Option<String>,
    database: Option<String>,
}

impl std::fmt::Debug for MyConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

impl MyConn {
    /// Parse `mysql://[user[:password]@][host][:port][/db][?socket=/path]` (or `mariadb://`).
    pub fn parse(s: &str) -> Result<Self> {
        let url = url::Url::parse(s).map_err(|e| {
            Error::Input(format!(
                "not a mysql:// URL ({e}); e.g. mysql://root@127.0.0.1:3306/app"
            ))
        })?;
        if !matches!(url.scheme(), "mysql" | "mariadb") {
            return Err(Error::Input(format!(
                "the URL scheme must be mysql://, not {}://",
                url.scheme()
            )));
        }
        let db = url.path().trim_start_matches('/');
        Ok(MyConn {
            user: (!url.username().is_empty()).then(|| decode(url.username())),
            password: url.password().map(decode),
            host: url.host_str().filter(|h| !h.is_empty()).map(str::to_string),
            port: url.port(),
            socket: url
                .query_pairs()
                .find(|(k, _)| k == "socket")
                .map(|(_, v)| v.into_owned()),
            database: (!db.is_empty()).then(|| decode(db)),
        })
    }

    /// Display form (no password).
    pub fn display(&self) -> String {
        match (&self.socket, &self.host) {
            (Some(s), _) => format!("mysql://{}", s),
            (None, h) => format!(
                "mysql://{}{}",
                h.as_deref().unwrap_or("localhost"),
                self.port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
        }
    }

    /// Client arguments (no password).
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(u) = &self.user {
            a.push(format!("--user={u}"));
        }
        if let Some(s) = &self.socket {
            a.push(format!("--socket={s}"));
        } else {
            if let Some(h) = &self.host {
                a.push(format!("--host={h}"));
            }
            if let Some(p) = self.port {
                a.push(format!("--port={p}"));
            }
        }
        a
    }

    /// The environment that carries the secret.
    pub fn env(&self) -> Vec<(String, String)> {
        self.password
            .iter()
            .map(|p| ("MYSQL_PWD".to_string(), p.clone()))
            .collect()
    }

    /// The database named in the URL.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }
}

/// The first of `names` found on PATH.
pub fn tool(names: &[&str]) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for n in names {
        for d in std::env::split_paths(&path) {
            let p = d.join(n);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::Input(format!(
        "{} not found (install the MariaDB or MySQL client)",
        names.join(" / ")
    )))
}

fn client(conn: &MyConn) -> Result<Command> {
    let mut c = Command::new(tool(&["mariadb", "mysql"])?);
    child_env::for_mysql(&mut c).args(conn.args());
    for (k, v) in conn.env() {
        c.env(k, v);
    }
    Ok(c)
}

/// Run one SQL statement and return its tab-separated output.
pub fn query(conn: &MyConn, sql: &str) -> Result<String> {
    let mut c = client(conn)?;
    c.args(["--batch", "--skip-column-names", "-e", sql]);
    run_capture(c, &format!("mysql {}", conn.display()))
}

/// The logical backup of `databases` (the URL's database, or all if none).
pub fn logical_source(conn: &MyConn, databases: &[String]) -> Result<ExportsSource> {
    let version = query(conn, "SELECT VERSION()")?;
    let dump = tool(&["mariadb-dump", "mysqldump"])?;
    let dump_version = run_capture(
        {
            let mut c = Command::new(&dump);
            child_env::for_mysql(&mut c).arg("--version");
            c
        },
        "mysqldump",
    )?;
    let mut dbs: Vec<String> = databases.to_vec();
    if dbs.is_empty()
        && let Some(d) = conn.database()
    {
        dbs.push(d.to_string());
    }
    let mut args = conn.args();
    args.extend(
        [
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
            "--hex-blob",
        ]
        .map(String::from),
    );
    if dbs.is_empty() {
        args.push("--all-databases".into());
    } else {
        args.push("--databases".into());
        args.extend(dbs.iter().cloned());
    }
    let mut facts = BTreeMap::new();
    facts.insert("server_version".into(), version);
    facts.insert("dump_version".into(), dump_version);
    facts.insert(
        "databases".into(),
        if dbs.is_empty() {
            "(all)".into()
        } else {
            dbs.join(",")
        },
    );
    ExportsSource::new(
        "mysql",
        vec![conn.display()],
        vec![Export {
            name: "dump.sql".into(),
            program: dump,
            args,
            env: conn.env(),
            child: Child::Mysql,
        }],
        facts,
    )
}

/// A client that reads SQL from standard input (for restore).
pub fn restore_command(conn: &MyConn) -> Result<Command> {
    client(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_password_out_of_argv() {
        let c = MyConn::parse("mysql://root:p%40ss@127.0.0.1:3307/app").unwrap();
        assert_eq!(c.env(), vec![("MYSQL_PWD".to_string(), "p@ss".to_string())]);
        assert_eq!(
            c.args(),
            vec!["--user=root", "--host=127.0.0.1", "--port=3307"]
        );
        assert_eq!(c.database(), Some("app"));
        assert!(!c.display().contains("p@ss"));
        let s = MyConn::parse("mysql://root@localhost/?socket=/tmp/my.sock").unwrap();
        assert_eq!(s.args(), vec!["--user=root", "--socket=/tmp/my.sock"]);
        assert!(MyConn::parse("postgresql://x").is_err());
    }
}
