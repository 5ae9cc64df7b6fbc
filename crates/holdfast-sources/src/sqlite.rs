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
        crate::stream::single_file(w, &self.file_name(), size, content, facts)
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
