//! Facts of a PostgreSQL database that a restore test compares with what it restored: the
//! exact row count of every user table and a fingerprint of the schema (columns and
//! indexes), taken **inside the snapshot the dump reads**.
//!
//! At backup, [`SnapshotHolder::open`] starts `psql` on the database, begins a `REPEATABLE
//! READ, READ ONLY` transaction, exports its snapshot (`pg_export_snapshot()`), and computes
//! the facts in that transaction; `pg_dump --snapshot=ID` then dumps exactly the data that was
//! counted, however busy the server is. The transaction stays open (psql waits on its
//! standard input) until the holder is dropped after the dump; if holdfast dies, psql reads
//! end-of-file and ends the transaction.
//!
//! At restore-test time, [`facts`] runs the same queries against the restored database.
//! Tables and indexes of extensions, `pg_catalog`, `information_schema` and the
//! `pg_toast*` / `pg_temp_*` schemas are left out. Every row comes back as one line of JSON,
//! so no name (newlines included) can break the parsing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Stdio};

use holdfast_engine::{Error, Result};

use crate::postgres::{PgConn, tool};

/// The facts' names, as SQLite points use them; a PostgreSQL point's `row_counts` is
/// `{"DB": {"SCHEMA.TABLE": ROWS, …}, …}` and its `schema_blake3` `{"DB": "64 hex", …}` (see
/// [`DbFacts::schema`]).
pub use crate::sqlite::{ROW_COUNTS_FACT, SCHEMA_FACT};

/// What one database held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbFacts {
    /// Exact row count per table, keyed `schema.table`.
    pub rows: BTreeMap<String, u64>,
    /// BLAKE3 (64 hex) over the schema rows (columns in table and column order with their
    /// type and NOT NULL; then indexes with their definition), each row's JSON text as its
    /// length (u64 little-endian) and its bytes.
    pub schema: String,
}

/// User relations only (a condition on `c` pg_class and `n` pg_namespace).
const USER: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
    AND n.nspname !~ '^pg_(toast|temp_)' \
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
    AND d.objid = c.oid AND d.deptype = 'e')";

const END: &str = "holdfast-facts-end";
const SNAPSHOT: &str = "holdfast-snapshot ";

/// The psql script that prints the facts, one JSON row per line, then the end marker.
fn script() -> String {
    format!(
        "SELECT format('SELECT json_build_array(''rows'', %L::text, count(*))::text FROM %I.%I', \
           n.nspname || '.' || c.relname, n.nspname, c.relname) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND {USER} ORDER BY n.nspname, c.relname\n\\gexec\n\
         SELECT json_build_array('column', n.nspname, c.relname, a.attname, \
           format_type(a.atttypid, a.atttypmod), a.attnotnull)::text \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
           AND {USER} ORDER BY n.nspname, c.relname, a.attnum;\n\
         SELECT json_build_array('index', n.nspname, c.relname, pg_get_indexdef(c.oid))::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('i', 'I') AND {USER} ORDER BY n.nspname, c.relname;\n\
         SELECT '{END}';\n"
    )
}

/// Read the facts' lines (up to the end marker) into [`DbFacts`]; `what` names the source
/// in errors.
fn parse(lines: impl Iterator<Item = String>, what: &str) -> Result<DbFacts> {
    let bad = |l: &str| Error::Internal(format!("{what}: unexpected output {l:?}"));
    let mut f = DbFacts::default();
    let mut h = blake3::Hasher::new();
    let mut ended = false;
    for line in lines {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if line == END {
            ended = true;
            break;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|_| bad(line))?;
        match v.get(0).and_then(|k| k.as_str()) {
            Some("rows") => {
                let name = v.get(1).and_then(|x| x.as_str()).ok_or_else(|| bad(line))?;
                let n = v.get(2).and_then(|x| x.as_u64()).ok_or_else(|| bad(line))?;
                f.rows.insert(name.to_string(), n);
            }
            Some("column" | "index") => {
                h.update(&(line.len() as u64).to_le_bytes());
                h.update(line.as_bytes());
            }
            _ => return Err(bad(line)),
        }
    }
    if !ended {
        return Err(Error::Internal(format!(
            "{what}: the facts ended early (no end marker)"
        )));
    }
    f.schema = h.finalize().to_hex().to_string();
    Ok(f)
}

/// The facts of database `db` as it is now (a restored database, at restore-test time).
pub fn facts(conn: &PgConn, db: &str) -> Result<DbFacts> {
    let mut c = conn.command(&tool("psql")?);
    c.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(conn.for_db(db))
        .stdin(Stdio::piped());
    let what = format!("facts of database {db:?}");
    let out = run_with_input(c, &script(), &what)?;
    parse(out.lines().map(str::to_string), &what)
}

fn run_with_input(mut c: std::process::Command, input: &str, what: &str) -> Result<String> {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Input(format!("{what}: cannot run psql: {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        // psql reads all of it before it prints much; a write error shows as its exit.
        let _ = i.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Input(format!("{what}: psql: {e}")))?;
    if !out.status.success() {
        return Err(Error::Input(format!(
            "{what}: psql {}: {}",
            out.status,
            crate::export::tail(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An open transaction whose snapshot a dump reads, with the facts taken in it.
pub struct SnapshotHolder {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The exported snapshot's id (`pg_dump --snapshot=ID`).
    pub snapshot: String,
    /// The facts, as of that snapshot.
    pub facts: DbFacts,
}

impl std::fmt::Debug for SnapshotHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotHolder")
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

impl SnapshotHolder {
    /// Begin the transaction on `db`, export its snapshot and take the facts in it.
    pub fn open(conn: &PgConn, db: &str) -> Result<SnapshotHolder> {
        let what = format!("snapshot of database {db:?}");
        let mut c = conn.command(&tool("psql")?);
        c.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conn.for_db(db))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| Error::Input(format!("{what}: cannot run psql: {e}")))?;
        let mut stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let input = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n\
             SELECT '{SNAPSHOT}' || pg_export_snapshot();\n{}",
            script()
        );
        let wrote = stdin
            .as_mut()
            .map(|i| i.write_all(input.as_bytes()).and_then(|()| i.flush()));
        let (Some(out), Some(Ok(()))) = (stdout, wrote) else {
            return Err(Self::failed(child, &what));
        };
        let mut lines = BufReader::new(out).lines().map_while(|l| l.ok());
        let snapshot = match lines.next() {
            Some(l) if l.starts_with(SNAPSHOT) => l[SNAPSHOT.len()..].trim().to_string(),
            _ => return Err(Self::failed(child, &what)),
        };
        let facts = match parse(&mut lines, &what) {
            Ok(f) => f,
            Err(e) => {
                return Err(match Self::failed(child, &what) {
                    Error::Input(m) if m.contains("psql exited") => Error::Input(m),
                    _ => e,
                });
            }
        };
        Ok(SnapshotHolder {
            child,
            stdin,
            snapshot,
            facts,
        })
    }

    /// psql stopped before it answered: its exit and its last error line.
    fn failed(mut child: Child, what: &str) -> Error {
        drop(child.stdin.take());
        let mut err = Vec::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_end(&mut err);
        }
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        Error::Input(format!(
            "{what}: psql exited ({status}): {}",
            crate::export::tail(&err)
        ))
    }
}

impl Drop for SnapshotHolder {
    fn drop(&mut self) {
        // End of input: psql ends the (read-only) transaction and exits.
        drop(self.stdin.take());
        crate::child_env::wait_or_kill(&mut self.child, std::time::Duration::from_secs(10));
    }
}

/// The server's major version (`15` of `15.8 (Debian …)`).
pub fn major(server_version: &str) -> Option<u32> {
    server_version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
}

/// Compare restored facts with the recorded ones: the differences, one per item.
pub fn differences(want: &DbFacts, got: &DbFacts, db: &str, schema: bool) -> Vec<String> {
    let mut diffs = Vec::new();
    for name in want
        .rows
        .keys()
        .chain(got.rows.keys().filter(|k| !want.rows.contains_key(*k)))
    {
        match (want.rows.get(name), got.rows.get(name)) {
            (Some(w), Some(g)) if w == g => {}
            (Some(w), Some(g)) => diffs.push(format!("{db}.{name}: {g} rows, {w} at backup")),
            (Some(_), None) => diffs.push(format!("{db}.{name}: missing")),
            (None, _) => diffs.push(format!("{db}.{name}: not in the backup")),
        }
    }
    if schema && want.schema != got.schema {
        diffs.push(format!(
            "{db}: the schema differs from the one recorded at backup"
        ));
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_parse_and_fingerprint_the_schema_rows_only() {
        let lines = [
            r#"["rows", "public.orders", 10]"#,
            r#"["rows", "public.odd\nname", 0]"#,
            r#"["column", "public", "orders", "id", "integer", true]"#,
            r#"["index", "public", "orders_pkey", "CREATE UNIQUE INDEX …"]"#,
            END,
            "ignored after the end",
        ];
        let f = parse(lines.iter().map(|s| s.to_string()), "t").unwrap();
        assert_eq!(f.rows["public.orders"], 10);
        assert_eq!(f.rows["public.odd\nname"], 0);
        // Row counts do not enter the fingerprint; the schema rows do.
        let g = parse([lines[2], lines[3], END].iter().map(|s| s.to_string()), "t").unwrap();
        assert_eq!(f.schema, g.schema);
        let h = parse([lines[2], END].iter().map(|s| s.to_string()), "t").unwrap();
        assert_ne!(f.schema, h.schema);
        assert!(parse([lines[0]].iter().map(|s| s.to_string()), "t").is_err());
        assert!(parse(["garbage", END].iter().map(|s| s.to_string()), "t").is_err());
    }

    #[test]
    fn differences_name_each_table() {
        let want = DbFacts {
            rows: [("public.a".to_string(), 3), ("public.b".to_string(), 1)].into(),
            schema: "x".into(),
        };
        let got = DbFacts {
            rows: [("public.a".to_string(), 2), ("public.c".to_string(), 1)].into(),
            schema: "y".into(),
        };
        assert_eq!(
            differences(&want, &got, "shop", true),
            vec![
                "shop.public.a: 2 rows, 3 at backup",
                "shop.public.b: missing",
                "shop.public.c: not in the backup",
                "shop: the schema differs from the one recorded at backup",
            ]
        );
        assert!(differences(&want, &want, "shop", true).is_empty());
        assert_eq!(major("15.8 (Debian 15.8-0+deb12u1)"), Some(15));
        assert_eq!(major("16beta1"), Some(16));
    }
}
