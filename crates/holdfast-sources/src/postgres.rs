//! PostgreSQL, logical: `pg_dump` (custom format) per database plus `pg_dumpall
//! --globals-only`, streamed into one recovery point; restore with `pg_restore` in parallel
//! into a new or empty database.
//!
//! Connections are `postgresql://` URLs (including `?host=/socket/dir`). The password —
//! written as userinfo (`user:pw@host`) or as a `?password=` parameter — is taken out of the
//! URL and handed to the tools as `PGPASSWORD`, never as an argument; a URL with
//! `sslpassword` (which no environment variable carries) is refused. Each tool's environment
//! is scrubbed of holdfast's own secrets first ([`crate::child_env::for_postgres`]).
//! Tools are found in `HOLDFAST_PG_BIN`, on `PATH`, or beside `initdb`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use holdfast_engine::{Error, Result};

use crate::child_env::{self, Child};
use crate::export::{Export, ExportsSource, run_capture};
use crate::pg_facts::{self, SnapshotHolder};

/// A PostgreSQL connection without its password.
#[derive(Clone)]
pub struct PgConn {
    url: url::Url,
    password: Option<String>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl PgConn {
    /// Parse `postgresql://[user[:password]@][host][:port][/db][?params]`.
    pub fn parse(s: &str) -> Result<Self> {
        // libpq accepts `postgresql://user:pass@/db?host=/socket`; a URL parser does not
        // (empty host with credentials): move the credentials out first.
        if let Some((scheme, rest)) = s.split_once("://")
            && let Some((userinfo, after)) = rest.split_once("@/")
            && !userinfo.contains('/')
        {
            let mut c = PgConn::parse(&format!("{scheme}:///{after}"))?;
            let (user, pass) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(percent_decode(p))),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                c.url
                    .query_pairs_mut()
                    .append_pair("user", &percent_decode(user));
            }
            // As libpq: a `?password=` parameter overrides the userinfo's.
            c.password = c.password.or(pass);
            return Ok(c);
        }
        let mut url = url::Url::parse(s).map_err(|e| {
            Error::Input(format!(
                "not a postgresql:// URL ({e}); e.g. postgresql://user@host:5432/db"
            ))
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(Error::Input(format!(
                "the URL scheme must be postgresql://, not {}://",
                url.scheme()
            )));
        }
        let mut password = url.password().map(percent_decode);
        let _ = url.set_password(None);
        if let Some(p) = take_query_password(&mut url)? {
            password = Some(p);
        }
        Ok(PgConn { url, password })
    }

    /// A command running the PostgreSQL tool `program` for this connection: the environment
    /// scrubbed of holdfast's secrets, then `PGPASSWORD` (if any) and a connect timeout.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        child_env::for_postgres(&mut c);
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    /// The database named in the URL, if any.
    pub fn database(&self) -> Option<String> {
        let p = self.url.path().trim_start_matches('/');
        (!p.is_empty()).then(|| percent_decode(p))
    }

    /// The connection string for database `db` (no password).
    pub fn for_db(&self, db: &str) -> String {
        let mut u = self.url.clone();
        u.set_path(&format!("/{}", utf8_percent_encode(db)));
        u.to_string()
    }

    /// A display form for resources and messages (no password, no query).
    pub fn display(&self) -> String {
        let mut u = self.url.clone();
        u.set_query(None);
        u.set_path("");
        let host = self
            .url
            .query_pairs()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| v.into_owned());
        match host {
            Some(h) if u.host_str().unwrap_or("").is_empty() => format!("postgresql://{h}"),
            _ => u.to_string(),
        }
    }

    /// The environment that carries the secret.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = vec![("PGCONNECT_TIMEOUT".to_string(), "15".to_string())];
        if let Some(p) = &self.password {
            v.push(("PGPASSWORD".into(), p.clone()));
        }
        v
    }
}

/// Take the `password` parameter out of the URL's query (libpq reads a password there too,
/// and the URL is handed to the tools as an argument); refuse `sslpassword`.
fn take_query_password(url: &mut url::Url) -> Result<Option<String>> {
    let Some(q) = url.query() else {
        return Ok(None);
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut password = None;
    for part in q.split('&') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match percent_decode(k).as_str() {
            "password" => password = Some(percent_decode(v)),
            "sslpassword" => {
                return Err(Error::Input(
                    "the PostgreSQL URL carries sslpassword, which would reach the tools' command \
                     line; use a client key without a passphrase, or a connection service file \
                     (service=NAME in the URL, sslpassword in pg_service.conf)"
                        .into(),
                ));
            }
            _ => kept.push(part),
        }
    }
    if password.is_some() {
        let kept = kept.join("&");
        url.set_query((!kept.is_empty()).then_some(kept.as_str()));
    }
    Ok(password)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn utf8_percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Find a PostgreSQL client tool.
pub fn tool(name: &str) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("HOLDFAST_PG_BIN") {
        dirs.push(PathBuf::from(d));
    } else {
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        // Debian keeps the client tools beside initdb (/usr/lib/postgresql/15/bin).
        if let Some(initdb) = dirs.iter().map(|d| d.join("initdb")).find(|p| p.is_file())
            && let Ok(real) = std::fs::canonicalize(initdb)
            && let Some(parent) = real.parent()
        {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Input(format!(
                "{name} not found (install the PostgreSQL client tools, or set HOLDFAST_PG_BIN)"
            ))
        })
}

fn psql(conn: &PgConn, db: &str, sql: &str) -> Result<Command> {
    let mut c = conn.command(&tool("psql")?);
    c.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(conn.for_db(db))
        .arg("-c")
        .arg(sql);
    Ok(c)
}

/// Run one SQL statement with psql and return its unaligned output.
pub fn query(conn: &PgConn, db: &str, sql: &str) -> Result<String> {
    run_capture(
        psql(conn, db, sql)?,
        &format!("postgres {}", conn.display()),
    )
}

fn maintenance_db(conn: &PgConn) -> String {
    conn.database().unwrap_or_else(|| "postgres".into())
}

/// The logical backup of `databases` (all connectable ones if empty) plus globals.
pub fn logical_source(conn: &PgConn, databases: &[String]) -> Result<ExportsSource> {
    let admin = maintenance_db(conn);
    let server = query(conn, &admin, "SHOW server_version")?;
    let dbs: Vec<String> = if databases.is_empty() {
        query(
            conn,
            &admin,
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
        )?
        .lines()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .collect()
    } else {
        databases.to_vec()
    };
    if dbs.is_empty() {
        return Err(Error::Input("no database to back up".into()));
    }
    let pg_dump = tool("pg_dump")?;
    let pg_dumpall = tool("pg_dumpall")?;
    let dump_version = run_capture(
        {
            let mut c = Command::new(&pg_dump);
            child_env::for_postgres(&mut c).arg("--version");
            c
        },
        "pg_dump",
    )?;
    let mut exports = vec![Export {
        name: "globals.sql".into(),
        program: pg_dumpall,
        args: vec![
            "--globals-only".into(),
            "--no-role-passwords".into(),
            "-d".into(),
            conn.for_db(&admin),
        ],
        env: conn.env(),
        child: Child::Postgres,
    }];
    // Each database's dump reads the snapshot its facts were taken in (pg_facts).
    let mut holders = Vec::new();
    let mut rows = BTreeMap::new();
    let mut schemas = BTreeMap::new();
    let mut skipped = Vec::new();
    for db in &dbs {
        let mut args: Vec<String> = vec!["-Fc".into(), "-Z".into(), "0".into()];
        match SnapshotHolder::open(conn, db) {
            Ok(h) => {
                args.push(format!("--snapshot={}", h.snapshot));
                rows.insert(db.clone(), h.facts.rows.clone());
                schemas.insert(db.clone(), h.facts.schema.clone());
                holders.push(h);
            }
            // The dump does not depend on the facts: it runs without them (a restore test's
            // row-count check then says the point has none).
            Err(e) => skipped.push(format!("{db}: {e}")),
        }
        args.extend(["-d".into(), conn.for_db(db)]);
        exports.push(Export {
            name: format!("{}.dump", file_name_for(db)),
            program: pg_dump.clone(),
            args,
            env: conn.env(),
            child: Child::Postgres,
        });
    }
    let mut facts = BTreeMap::new();
    if !rows.is_empty() {
        facts.insert(
            pg_facts::ROW_COUNTS_FACT.into(),
            serde_json::to_string(&rows).unwrap_or_default(),
        );
        facts.insert(
            pg_facts::SCHEMA_FACT.into(),
            serde_json::to_string(&schemas).unwrap_or_default(),
        );
    }
    if !skipped.is_empty() {
        facts.insert("facts_skipped".into(), skipped.join("; "));
    }
    facts.insert("server_version".into(), server);
    facts.insert("pg_dump_version".into(), dump_version);
    facts.insert("databases".into(), dbs.join(","));
    facts.insert(
        "format".into(),
        "pg_dump custom (-Fc, uncompressed), pg_dumpall --globals-only".into(),
    );
    Ok(ExportsSource::new("postgres", vec![conn.display()], exports, facts)?.holding(holders))
}

/// The file name of a database's dump in the point (database names may hold `/`).
pub fn file_name_for(db: &str) -> String {
    utf8_percent_encode(db)
}

/// The database name of a dump file in the point.
pub fn db_for_file(name: &str) -> Option<String> {
    name.strip_suffix(".dump").map(percent_decode)
}

/// Restore one database dump (a file on local disk) into `db`, which must not exist or be
/// empty; runs `pg_restore -j jobs`.
pub fn restore_database(conn: &PgConn, db: &str, dump: &Path, jobs: usize) -> Result<()> {
    let admin = maintenance_db(conn);
    let exists = query(
        conn,
        &admin,
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            sql_literal(db)
        ),
    )? == "1";
    if exists {
        let user_tables = query(
            conn,
            db,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p','v','m','S','f') AND n.nspname NOT IN \
             ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
        )?;
        if user_tables != "0" {
            return Err(Error::Input(format!(
                "database {db:?} exists and is not empty; restore into a new or empty database \
                 (--database picks the source database; drop or rename the target first)"
            )));
        }
    } else {
        query(conn, &admin, &format!("CREATE DATABASE {}", sql_ident(db)))?;
    }
    let mut c = conn.command(&tool("pg_restore")?);
    c.args(["--exit-on-error", "--no-owner", "-j"])
        .arg(jobs.max(1).to_string())
        .arg("-d")
        .arg(conn.for_db(db))
        .arg(dump);
    run_capture(c, &format!("pg_restore into {db}"))?;
    Ok(())
}

/// Apply `globals.sql` (roles, tablespaces); statements that fail because the object
/// exists are reported, not fatal.
pub fn restore_globals(conn: &PgConn, globals: &Path) -> Result<String> {
    let mut c = conn.command(&tool("psql")?);
    c.args(["-X", "-q", "-d"])
        .arg(conn.for_db(&maintenance_db(conn)))
        .arg("-f")
        .arg(globals);
    let out = c
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Input(format!("psql: {e}")))?;
    Ok(crate::export::tail(&out.stderr))
}

/// `'text'` with quotes doubled.
pub fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `"ident"` with quotes doubled.
pub fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_and_keep_the_rest() {
        let c = PgConn::parse("postgresql://app:s%40cret@db.example:5433/shop?sslmode=require")
            .unwrap();
        assert_eq!(c.password.as_deref(), Some("s@cret"));
        assert!(!c.for_db("x").contains("cret"));
        assert_eq!(
            c.for_db("my db"),
            "postgresql://app@db.example:5433/my%20db?sslmode=require"
        );
        assert_eq!(c.database().as_deref(), Some("shop"));
        assert_eq!(c.display(), "postgresql://app@db.example:5433");
        assert!(!format!("{c:?}").contains("cret"));
        let s = PgConn::parse("postgresql:///postgres?host=/tmp/pg&port=5999").unwrap();
        assert_eq!(s.display(), "postgresql:///tmp/pg");
        let s = PgConn::parse("postgresql://app:pw@/shop?host=/tmp/pg&port=5999").unwrap();
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(
            s.for_db("shop"),
            "postgresql:///shop?host=/tmp/pg&port=5999&user=app"
        );
        assert!(PgConn::parse("mysql://x").is_err());
        assert!(PgConn::parse("not a url").is_err());
    }

    #[test]
    fn query_passwords_leave_the_url_too() {
        let c = PgConn::parse(
            "postgresql://app@db.example/shop?sslmode=require&password=qu%26ery-pw&application_name=x",
        )
        .unwrap();
        assert_eq!(c.password.as_deref(), Some("qu&ery-pw"));
        assert_eq!(
            c.for_db("shop"),
            "postgresql://app@db.example/shop?sslmode=require&application_name=x"
        );
        assert!(!format!("{c:?}").contains("ery-pw"));
        // Only the password: no query left at all.
        let c = PgConn::parse("postgresql://app@db/shop?password=only").unwrap();
        assert_eq!(c.for_db("shop"), "postgresql://app@db/shop");
        assert_eq!(c.password.as_deref(), Some("only"));
        // The parameter overrides the userinfo, as in libpq; both leave the URL.
        let c = PgConn::parse("postgresql://app:old@db/shop?password=new").unwrap();
        assert_eq!(c.password.as_deref(), Some("new"));
        assert!(!c.for_db("shop").contains("old") && !c.for_db("shop").contains("new"));
        // The libpq socket form.
        let c = PgConn::parse("postgresql://app@/shop?host=/tmp/pg&password=sock-pw").unwrap();
        assert_eq!(c.password.as_deref(), Some("sock-pw"));
        assert_eq!(c.for_db("shop"), "postgresql:///shop?host=/tmp/pg&user=app");
        let c = PgConn::parse("postgresql://app:ui@/shop?host=/tmp/pg").unwrap();
        assert_eq!(c.password.as_deref(), Some("ui"));
        let e = PgConn::parse("postgresql://app@db/shop?sslpassword=k").unwrap_err();
        assert!(e.to_string().contains("sslpassword"), "{e}");
        assert!(!e.to_string().contains("=k"), "{e}");
        // A parameter merely named like it stays.
        let c = PgConn::parse("postgresql://app@db/shop?passwordless=1").unwrap();
        assert!(c.password.is_none());
        assert!(c.for_db("shop").ends_with("?passwordless=1"));
    }

    #[test]
    fn names_round_trip() {
        for db in ["app", "a/b", "día", "x.dump"] {
            assert_eq!(
                db_for_file(&format!("{}.dump", file_name_for(db))).unwrap(),
                db
            );
        }
        assert_eq!(sql_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(sql_literal("o'k"), "'o''k'");
    }
}
