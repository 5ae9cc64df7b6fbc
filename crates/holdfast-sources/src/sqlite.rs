//! SQLite: a consistent copy of a live database through SQLite's online backup API (not a
//! file copy, which can tear under concurrent writes), stored as one file; restore writes
//! the file and checks `PRAGMA integrity_check`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use holdfast_engine::writer::BlobWriter;
use holdfast_engine::{Error, Result};
use rusqlite::{Connection, OpenFlags};

use crate::{Captured, Progress, Source};

fn db_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Input(format!("sqlite {}: {e}", path.display()))
}

/// A live SQLite database.
pub struct SqliteSource {
    path: PathBuf,
}

impl SqliteSource {
    /// The database at `path` (must exist).
    pub fn new(path: &Path) -> Result<Self> {
        let path = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        Ok(SqliteSource { path })
    }

    /// The file name stored in the point.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database.sqlite".into())
    }
}

impl Source for SqliteSource {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn paths(&self) -> Vec<String> {
        vec![self.path.display().to_string()]
    }

    fn capture(&self, w: &BlobWriter<'_>, progress: Progress<'_>) -> Result<Captured> {
        let src = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_err(&self.path, e))?;
        src.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| db_err(&self.path, e))?;
        // The copy lives in a private temporary folder only while it is stored.
        let tmp = tempfile::Builder::new()
            .prefix("holdfast-sqlite-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let copy = tmp.path().join("copy.sqlite");
        {
            let mut dst = Connection::open(&copy).map_err(|e| db_err(&copy, e))?;
            let backup =
                rusqlite::backup::Backup::new(&src, &mut dst).map_err(|e| db_err(&self.path, e))?;
            // All pages in one step (-1): one read transaction, hence one consistent
            // snapshot. Busy or locked: wait and try again.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
            loop {
                match backup.step(-1).map_err(|e| db_err(&self.path, e))? {
                    rusqlite::backup::StepResult::Done => break,
                    _ if std::time::Instant::now() > deadline => {
                        return Err(Error::Input(format!(
                            "sqlite {}: the database stayed locked for 5 minutes",
                            self.path.display()
                        )));
                    }
                    _ => std::thread::sleep(std::time::Duration::from_millis(50)),
                }
            }
        }
        let (row_counts, schema) = snapshot_facts(&copy)?;
        let version: String = src
            .query_row("SELECT sqlite_version()", [], |r| r.get(0))
            .map_err(|e| db_err(&self.path, e))?;
        let f = std::fs::File::open(&copy).map_err(|e| Error::io(&copy, e))?;
        let hint = f.metadata().ok().map(|m| m.len());
        let io_err = |e: std::io::Error| Error::io(&copy, e);
        let (content, size) = crate::content::store_stream(w, f, hint, progress, &io_err)?;
        let mut facts = BTreeMap::new();
        facts.insert("sqlite_version".into(), version);
        facts.insert("method".into(), "online backup API".into());
        facts.insert(ROW_COUNTS_FACT.into(), row_counts);
        facts.insert(SCHEMA_FACT.into(), schema);
        crate::stream::single_file(w, &self.file_name(), size, content, facts)
    }
}

/// The fact holding exact row counts per table, taken from the stored copy (the backup's own
/// snapshot): a JSON object `{"table": rows, …}` (docs/format.md 11.2).
pub const ROW_COUNTS_FACT: &str = "row_counts";
/// The fact holding the schema fingerprint: BLAKE3 (hex) of every schema object's `type`,
/// `name` and `sql`, in name order (docs/format.md 11.2).
pub const SCHEMA_FACT: &str = "schema_blake3";

/// Exact row counts per table and the schema fingerprint of the database file at `path`
/// (opened read-only), as the facts [`ROW_COUNTS_FACT`] and [`SCHEMA_FACT`] hold them.
pub fn snapshot_facts(path: &Path) -> Result<(String, String)> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| db_err(path, e))?;
    let counts = row_counts(&c).map_err(|e| db_err(path, e))?;
    let json = serde_json::to_string(&counts)
        .map_err(|e| Error::Internal(format!("row counts of {}: {e}", path.display())))?;
    let schema = schema_fingerprint(&c).map_err(|e| db_err(path, e))?;
    Ok((json, schema))
}

/// Exact row counts of every user table (not `sqlite_*` ones), by name.
pub fn row_counts(c: &Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut stmt = c.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = BTreeMap::new();
    for name in names {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let n: i64 = c.query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))?;
        out.insert(name, n.max(0) as u64);
    }
    Ok(out)
}

/// BLAKE3 (hex) over every schema object's `type`, `name` and `sql`, in name order.
pub fn schema_fingerprint(c: &Connection) -> rusqlite::Result<String> {
    let mut stmt = c.prepare(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_schema \
         WHERE name NOT LIKE 'sqlite_%' ORDER BY name, type",
    )?;
    let mut h = blake3::Hasher::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (ty, name, sql) = row?;
        for part in [ty, name, sql] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    Ok(h.finalize().to_hex().to_string())
}

/// The first column of the first row `sql` returns on the database at `path` (opened
/// read-only), as text (`NULL` for null, `no rows` when it returns none).
pub fn query_value(path: &Path, sql: &str) -> Result<String> {
    use rusqlite::types::ValueRef;
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| db_err(path, e))?;
    let mut stmt = c.prepare(sql).map_err(|e| db_err(path, e))?;
    let mut rows = stmt.query([]).map_err(|e| db_err(path, e))?;
    let Some(row) = rows.next().map_err(|e| db_err(path, e))? else {
        return Ok("no rows".into());
    };
    let v = row.get_ref(0).map_err(|e| db_err(path, e))?;
    Ok(match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("<{} byte blob>", b.len()),
    })
}

/// Whether a value [`query_value`] gave is true: a non-zero number, or `true`/`t`/`yes`.
pub fn is_true(v: &str) -> bool {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" => true,
        other => other.parse::<f64>().is_ok_and(|n| n != 0.0),
    }
}

/// Run `PRAGMA integrity_check` on a database file: `Ok` if it says `ok`, otherwise an error
/// quoting what it found.
pub fn integrity_check(path: &Path) -> Result<()> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| db_err(path, e))?;
    let mut stmt = c
        .prepare("PRAGMA integrity_check")
        .map_err(|e| db_err(path, e))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| db_err(path, e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| db_err(path, e))?;
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(Error::damaged(
            path.display().to_string(),
            format!("integrity_check: {}", rows.join("; ")),
        ))
    }
}
