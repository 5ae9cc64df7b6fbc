//! The job catalog: an embedded SQLite database in the daemon's state directory
//! (`catalog.sqlite`, WAL journal). Every job — backup, copy, retention, prune — is a row
//! from the moment it is created; its state only moves forward (created → running →
//! completed | partial | failed | expired | aborted). Incidents (open alert conditions, for
//! notification de-duplication) and per-resource facts (newest point) live beside the jobs.
//!
//! Crash safety is SQLite's: a committed transition survives kill -9. A daemon that starts
//! finds jobs its predecessor left `created` or `running` and records them `aborted`
//! ([`Catalog::abort_unfinished`]) — no job stays "running" forever.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::job::{JobKind, JobState};

mod outbox;
mod restore_tests;
use outbox::enqueue;
pub use outbox::{OutboxRecord, OutboxRow, Outgoing};
pub use restore_tests::TestResult;

/// A catalog error.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The state directory cannot be created.
    #[error("state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A state file cannot be created or given its mode.
    #[error("state file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite refused.
    #[error("job catalog {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// A stored value is not understood (a newer holdfast wrote it?).
    #[error("job catalog {path}: {what}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What.
        what: String,
    },
}

/// One job, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// Catalog id.
    pub id: i64,
    /// What it does.
    pub kind: JobKind,
    /// The resource (or `*` for vault-wide jobs such as prune).
    pub resource: String,
    /// The vault it works on (the destination, for copies).
    pub vault: String,
    /// Where it is.
    pub state: JobState,
    /// Why it ran: `schedule`, `catch-up`, `manual`, `api`, or the parent job's kind.
    pub trigger: String,
    /// The scheduled time it serves (Unix ns), for scheduled runs.
    pub scheduled_ns: Option<i64>,
    /// Created (Unix ns).
    pub created_ns: i64,
    /// Started (Unix ns).
    pub started_ns: Option<i64>,
    /// Ended (Unix ns).
    pub ended_ns: Option<i64>,
    /// Attempts made.
    pub attempts: u32,
    /// Bytes added to the vault.
    pub bytes_added: Option<u64>,
    /// The recovery point made (backup, copy).
    pub point: Option<String>,
    /// The point's time (Unix ns).
    pub point_ns: Option<i64>,
    /// Why it failed, expired or was aborted; what retention did.
    pub message: Option<String>,
    /// The job that caused this one (a copy's backup).
    pub parent: Option<i64>,
    /// Bytes processed so far, as the running operation last reported.
    pub progress_bytes: Option<u64>,
    /// The operation's report (its `--json` document; docs/schema/), once it is done.
    pub report: Option<serde_json::Value>,
    /// The restore test a `restore_test` job belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
}

/// Which jobs to list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this job.
    pub id: Option<i64>,
    /// Only this resource.
    pub resource: Option<String>,
    /// Only this vault.
    pub vault: Option<String>,
    /// Only these states (empty: any).
    pub states: Vec<JobState>,
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Created at or after (Unix ns).
    pub since_ns: Option<i64>,
    /// Only jobs of this restore test.
    pub test: Option<String>,
    /// At most this many, newest first (0: all).
    pub limit: usize,
}

impl Filter {
    /// The SQL condition (never empty) and its arguments.
    fn condition(&self) -> (String, Vec<rusqlite::types::Value>) {
        let mut sql = String::from("1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut eq = |column: &str, v: rusqlite::types::Value| {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(v);
        };
        if let Some(id) = self.id {
            eq("id", id.into());
        }
        if let Some(r) = &self.resource {
            eq("resource", r.clone().into());
        }
        if let Some(v) = &self.vault {
            eq("vault", v.clone().into());
        }
        if let Some(k) = self.kind {
            eq("kind", k.as_str().to_string().into());
        }
        if let Some(t) = &self.test {
            eq("test", t.clone().into());
        }
        if !self.states.is_empty() {
            let marks = vec!["?"; self.states.len()].join(", ");
            sql.push_str(&format!(" AND state IN ({marks})"));
            args.extend(self.states.iter().map(|s| s.as_str().to_string().into()));
        }
        if let Some(t) = self.since_ns {
            sql.push_str(" AND created_ns >= ?");
            args.push(t.into());
        }
        (sql, args)
    }
}

/// The catalog; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Catalog {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Version 2 added the notification outbox; version 3 the jobs' progress and reports;
/// version 4 the restore test a job belongs to.
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    vault TEXT NOT NULL,
    state TEXT NOT NULL,
    trigger TEXT NOT NULL,
    scheduled_ns INTEGER,
    created_ns INTEGER NOT NULL,
    started_ns INTEGER,
    ended_ns INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    bytes_added INTEGER,
    point TEXT,
    point_ns INTEGER,
    message TEXT,
    parent INTEGER REFERENCES jobs(id),
    pid INTEGER,
    progress_bytes INTEGER,
    report TEXT,
    test TEXT
);
CREATE INDEX IF NOT EXISTS jobs_resource ON jobs(resource, kind, created_ns);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS incidents (
    resource TEXT NOT NULL,
    condition TEXT NOT NULL,
    opened_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (resource, condition)
);
CREATE TABLE IF NOT EXISTS resources (
    resource TEXT PRIMARY KEY,
    first_seen_ns INTEGER NOT NULL,
    last_point_ns INTEGER
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ns INTEGER NOT NULL,
    last_error TEXT,
    delivered_ns INTEGER,
    dropped_ns INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(channel, id)
    WHERE delivered_ns IS NULL AND dropped_ns IS NULL;
";

/// Owner-only modes of the state directory and of every file in it.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Give `path` exactly `mode` (whatever the umask made of it) — if it is ours: a catalog
/// another user reads (`holdfast jobs` run by someone else) is left as its owner made it.
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(path)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me && meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Create the state directory (0700) and the database file (0600) before SQLite opens it:
/// SQLite creates its `-wal` and `-shm` files with the database file's mode. Never called
/// once a connection is open: closing another descriptor of the database file would drop
/// this process's SQLite locks (POSIX record locks belong to the process).
fn prepare_files(dir: &Path, db: &Path) -> Result<(), CatalogError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir_err = |source| CatalogError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(dir_err)?;
        restrict(dir, DIR_MODE).map_err(dir_err)?;
    }
    if std::fs::symlink_metadata(db).is_err() {
        let created = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(db);
        match created {
            // Another process created it first: fine.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CatalogError::File {
                    path: db.to_path_buf(),
                    source,
                });
            }
            Ok(_) => {}
        }
    }
    restrict_files(db)
}

/// Give the database file and its `-wal`, `-shm` and `-journal` files mode 0600, by path
/// (no descriptor is opened).
fn restrict_files(db: &Path) -> Result<(), CatalogError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let f = PathBuf::from(name);
        match restrict(&f, FILE_MODE) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(CatalogError::File { path: f, source }),
        }
    }
    Ok(())
}

/// An opened incident, when it closes.
#[derive(Debug, Clone)]
pub struct Closed {
    /// When it opened (Unix ns).
    pub opened_ns: i64,
    /// How many times the condition was seen.
    pub count: i64,
}

fn state_of(s: &str) -> Option<JobState> {
    JobState::ALL.into_iter().find(|x| x.as_str() == s)
}

fn kind_of(s: &str) -> Option<JobKind> {
    JobKind::ALL.into_iter().find(|x| x.as_str() == s)
}

impl Catalog {
    /// Open (creating) `DIR/catalog.sqlite`. A directory it creates is made 0700; the
    /// database and its `-wal` / `-shm` files are 0600 whatever the umask (an existing
    /// catalog with wider modes is narrowed).
    pub fn open(dir: &Path) -> Result<Self, CatalogError> {
        let path = dir.join("catalog.sqlite");
        prepare_files(dir, &path)?;
        let err = |source| CatalogError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "wal")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "full")
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(CatalogError::Corrupt {
                path,
                what: format!(
                    "schema version {version} is newer than this holdfast understands ({SCHEMA_VERSION})"
                ),
            });
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        // Versions 3 and 4: columns an older catalog's jobs table lacks.
        for (column, ty) in [
            ("progress_bytes", "INTEGER"),
            ("report", "TEXT"),
            ("test", "TEXT"),
        ] {
            let has: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = ?1",
                    params![column],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if has == 0 {
                conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {column} {ty}"))
                    .map_err(err)?;
            }
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err)?;
        // The WAL and shared-memory files exist now: make sure of their modes too.
        restrict_files(&path)?;
        Ok(Catalog {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, CatalogError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|source| CatalogError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Record a new job (state `created`).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        kind: JobKind,
        resource: &str,
        vault: &str,
        trigger: &str,
        scheduled_ns: Option<i64>,
        parent: Option<i64>,
        now_ns: i64,
    ) -> Result<i64, CatalogError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO jobs (kind, resource, vault, state, trigger, scheduled_ns, created_ns, parent, pid)
                 VALUES (?1, ?2, ?3, 'created', ?4, ?5, ?6, ?7, ?8)",
                params![kind.as_str(), resource, vault, trigger, scheduled_ns, now_ns, parent, std::process::id()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// The job starts (again: `attempts` counts).
    pub fn start(&self, id: i64, now_ns: i64) -> Result<(), CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'running', started_ns = COALESCE(started_ns, ?2),
                 attempts = attempts + 1 WHERE id = ?1",
                params![id, now_ns],
            )
            .map(|_| ())
        })
    }

    /// Note an attempt's failure while retries remain.
    pub fn note(&self, id: i64, message: &str) -> Result<(), CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET message = ?2 WHERE id = ?1",
                params![id, message],
            )
            .map(|_| ())
        })
    }

    /// The running job's progress: `bytes` processed so far.
    pub fn progress(&self, id: i64, bytes: u64) -> Result<(), CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET progress_bytes = ?2 WHERE id = ?1",
                params![id, i64::try_from(bytes).unwrap_or(i64::MAX)],
            )
            .map(|_| ())
        })
    }

    /// The job's operation report (its JSON document).
    pub fn set_report(&self, id: i64, report: &serde_json::Value) -> Result<(), CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET report = ?2 WHERE id = ?1",
                params![id, report.to_string()],
            )
            .map(|_| ())
        })
    }

    /// The job ends in `state`.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &self,
        id: i64,
        state: JobState,
        bytes_added: Option<u64>,
        point: Option<&str>,
        point_ns: Option<i64>,
        message: Option<&str>,
        now_ns: i64,
    ) -> Result<(), CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = ?2, ended_ns = ?3, bytes_added = ?4, point = ?5,
                 point_ns = ?6, message = ?7 WHERE id = ?1",
                params![
                    id,
                    state.as_str(),
                    now_ns,
                    bytes_added.map(|b| b as i64),
                    point,
                    point_ns,
                    message
                ],
            )?;
            if let (Some(p), true) = (point_ns, state.succeeded()) {
                c.execute(
                    "UPDATE resources SET last_point_ns = MAX(COALESCE(last_point_ns, 0), ?2)
                     WHERE resource = (SELECT resource FROM jobs WHERE id = ?1 AND kind = 'backup')",
                    params![id, p],
                )?;
            }
            Ok(())
        })
    }

    /// Record every job left `created` or `running` by a process that is gone (a daemon or
    /// `holdfast run` that was killed) as `aborted`; returns them as they were.
    pub fn abort_unfinished(&self, now_ns: i64) -> Result<Vec<JobRecord>, CatalogError> {
        let pids: Vec<(i64, Option<i64>)> = self.with(|c| {
            let mut st =
                c.prepare("SELECT id, pid FROM jobs WHERE state IN ('created', 'running')")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        let me = i64::from(std::process::id());
        let mut gone = Vec::new();
        for (id, pid) in pids {
            let alive = pid.is_some_and(|p| {
                p != me
                    && i32::try_from(p).is_ok_and(|p| {
                        // SAFETY: signal 0 only checks that the process exists.
                        unsafe { libc::kill(p, 0) == 0 }
                    })
            });
            if !alive && let Some(j) = self.get(id)? {
                gone.push(j);
            }
        }
        for j in &gone {
            self.with(|c| {
                c.execute(
                    "UPDATE jobs SET state = 'aborted', ended_ns = ?2,
                     message = 'the process running this job stopped before it ended' || COALESCE(' (last error: ' || message || ')', '')
                     WHERE id = ?1",
                    params![j.id, now_ns],
                )
                .map(|_| ())
            })?;
        }
        Ok(gone)
    }

    /// Mark an aborted backup job as completed after all: its point was found in the vault.
    pub fn adopt_point(
        &self,
        id: i64,
        point: &str,
        point_ns: i64,
        now_ns: i64,
    ) -> Result<(), CatalogError> {
        self.finish(
            id,
            JobState::Completed,
            None,
            Some(point),
            Some(point_ns),
            Some("the daemon stopped after the point was saved; found in the vault on restart"),
            now_ns,
        )
    }

    /// Jobs, newest first.
    pub fn list(&self, f: &Filter) -> Result<Vec<JobRecord>, CatalogError> {
        let path = self.path.clone();
        let rows = self.with(|c| {
            let (cond, args) = f.condition();
            // The condition holds only column names and `?` marks; every value, the limit
            // too, is a bound parameter (a negative LIMIT is no limit in SQLite).
            let sql = format!(
                "SELECT id, kind, resource, vault, state, trigger, scheduled_ns, created_ns,
                 started_ns, ended_ns, attempts, bytes_added, point, point_ns, message, parent,
                 progress_bytes, report, test
                 FROM jobs WHERE {cond} ORDER BY id DESC LIMIT ?"
            );
            let mut args = args;
            let limit = match f.limit {
                0 => -1,
                n => i64::try_from(n).unwrap_or(i64::MAX),
            };
            args.push(limit.into());
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get::<_, Option<i64>>(11)?,
                    (
                        r.get::<_, Option<String>>(12)?,
                        r.get::<_, Option<i64>>(13)?,
                        r.get::<_, Option<String>>(14)?,
                        r.get::<_, Option<i64>>(15)?,
                    ),
                    (
                        r.get::<_, Option<i64>>(16)?,
                        r.get::<_, Option<String>>(17)?,
                        r.get::<_, Option<String>>(18)?,
                    ),
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|r| {
                let (point, point_ns, message, parent) = r.12;
                let (progress, report, test) = r.13;
                Ok(JobRecord {
                    id: r.0,
                    kind: kind_of(&r.1).ok_or_else(|| CatalogError::Corrupt {
                        path: path.clone(),
                        what: format!("job {}: unknown kind {:?}", r.0, r.1),
                    })?,
                    resource: r.2,
                    vault: r.3,
                    state: state_of(&r.4).ok_or_else(|| CatalogError::Corrupt {
                        path: path.clone(),
                        what: format!("job {}: unknown state {:?}", r.0, r.4),
                    })?,
                    trigger: r.5,
                    scheduled_ns: r.6,
                    created_ns: r.7,
                    started_ns: r.8,
                    ended_ns: r.9,
                    attempts: u32::try_from(r.10).unwrap_or(0),
                    bytes_added: r.11.map(|b| b.max(0) as u64),
                    point,
                    point_ns,
                    message,
                    parent,
                    progress_bytes: progress.map(|b| b.max(0) as u64),
                    report: report.and_then(|t| serde_json::from_str(&t).ok()),
                    test,
                })
            })
            .collect()
    }

    /// One job.
    pub fn get(&self, id: i64) -> Result<Option<JobRecord>, CatalogError> {
        self.newest(Filter {
            id: Some(id),
            ..Filter::default()
        })
    }

    /// How many jobs match.
    pub fn count(&self, f: &Filter) -> Result<usize, CatalogError> {
        let (cond, args) = f.condition();
        self.with(|c| {
            c.query_row(
                &format!("SELECT COUNT(*) FROM jobs WHERE {cond}"),
                rusqlite::params_from_iter(args),
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| usize::try_from(n).unwrap_or(0))
    }

    /// The newest job that matches (`f.limit` is ignored).
    pub fn newest(&self, f: Filter) -> Result<Option<JobRecord>, CatalogError> {
        Ok(self.list(&Filter { limit: 1, ..f })?.into_iter().next())
    }

    /// The latest scheduled time a matching job served.
    fn last_scheduled_of(&self, f: &Filter) -> Result<Option<i64>, CatalogError> {
        let (cond, args) = f.condition();
        self.with(|c| {
            c.query_row(
                &format!("SELECT MAX(scheduled_ns) FROM jobs WHERE {cond}"),
                rusqlite::params_from_iter(args),
                |r| r.get::<_, Option<i64>>(0),
            )
        })
    }

    /// The latest scheduled time a backup job of `resource` served.
    pub fn last_scheduled(&self, resource: &str) -> Result<Option<i64>, CatalogError> {
        self.last_scheduled_of(&Filter {
            resource: Some(resource.to_string()),
            kind: Some(JobKind::Backup),
            ..Filter::default()
        })
    }

    /// The latest scheduled time a verify job of `vault` served.
    pub fn last_scheduled_verify(&self, vault: &str) -> Result<Option<i64>, CatalogError> {
        self.last_scheduled_of(&Filter {
            vault: Some(vault.to_string()),
            kind: Some(JobKind::Verify),
            ..Filter::default()
        })
    }

    /// The newest finished verify job of `vault` (any end state but aborted).
    pub fn last_verify(&self, vault: &str) -> Result<Option<JobRecord>, CatalogError> {
        self.newest(Filter {
            vault: Some(vault.to_string()),
            kind: Some(JobKind::Verify),
            states: vec![JobState::Completed, JobState::Failed, JobState::Expired],
            ..Filter::default()
        })
    }

    /// The newest successful job of `kind` for `resource`.
    pub fn last_success(
        &self,
        resource: &str,
        kind: JobKind,
    ) -> Result<Option<JobRecord>, CatalogError> {
        self.newest(Filter {
            resource: Some(resource.to_string()),
            kind: Some(kind),
            states: JobState::ALL
                .into_iter()
                .filter(|s| s.succeeded())
                .collect(),
            ..Filter::default()
        })
    }

    /// Count of jobs by (kind, state).
    pub fn counts(&self) -> Result<Vec<(String, String, i64)>, CatalogError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// Note that `resource` is declared; returns (first seen, newest point).
    pub fn see_resource(
        &self,
        resource: &str,
        now_ns: i64,
    ) -> Result<(i64, Option<i64>), CatalogError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO resources (resource, first_seen_ns) VALUES (?1, ?2)",
                params![resource, now_ns],
            )?;
            c.query_row(
                "SELECT first_seen_ns, last_point_ns FROM resources WHERE resource = ?1",
                params![resource],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }

    /// Record the newest point of `resource` found in its vault.
    pub fn set_last_point(&self, resource: &str, point_ns: i64) -> Result<(), CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE resources SET last_point_ns = MAX(COALESCE(last_point_ns, 0), ?2) WHERE resource = ?1",
                params![resource, point_ns],
            )
            .map(|_| ())
        })
    }

    /// Open an incident (or count another occurrence). True when it is newly opened.
    pub fn open_incident(
        &self,
        resource: &str,
        condition: &str,
        now_ns: i64,
    ) -> Result<bool, CatalogError> {
        self.open_incident_with(resource, condition, now_ns, Vec::new)
    }

    /// Open an incident (or count another occurrence); when it is newly opened, queue the
    /// notifications `alerts` makes in the outbox, in the same transaction (so an incident
    /// is never open without its alert queued). True when it is newly opened.
    pub fn open_incident_with(
        &self,
        resource: &str,
        condition: &str,
        now_ns: i64,
        alerts: impl FnOnce() -> Vec<Outgoing>,
    ) -> Result<bool, CatalogError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT count FROM incidents WHERE resource = ?1 AND condition = ?2",
                    params![resource, condition],
                    |r| r.get(0),
                )
                .optional()?;
            let opened = if existing.is_some() {
                tx.execute(
                    "UPDATE incidents SET count = count + 1, last_ns = ?3 WHERE resource = ?1 AND condition = ?2",
                    params![resource, condition, now_ns],
                )?;
                false
            } else {
                tx.execute(
                    "INSERT INTO incidents (resource, condition, opened_ns, last_ns, count) VALUES (?1, ?2, ?3, ?3, 1)",
                    params![resource, condition, now_ns],
                )?;
                enqueue(&tx, &alerts(), now_ns)?;
                true
            };
            tx.commit()?;
            Ok(opened)
        })
    }

    /// Close an incident; returns it if one was open.
    pub fn close_incident(
        &self,
        resource: &str,
        condition: &str,
    ) -> Result<Option<Closed>, CatalogError> {
        self.close_incident_with(resource, condition, 0, |_| Vec::new())
    }

    /// Close an incident and queue the notifications `alerts` makes of it (the recovery
    /// message) in the same transaction; returns it if one was open.
    pub fn close_incident_with(
        &self,
        resource: &str,
        condition: &str,
        now_ns: i64,
        alerts: impl FnOnce(&Closed) -> Vec<Outgoing>,
    ) -> Result<Option<Closed>, CatalogError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let found = tx
                .query_row(
                    "SELECT opened_ns, count FROM incidents WHERE resource = ?1 AND condition = ?2",
                    params![resource, condition],
                    |r| {
                        Ok(Closed {
                            opened_ns: r.get(0)?,
                            count: r.get(1)?,
                        })
                    },
                )
                .optional()?;
            if let Some(closed) = &found {
                tx.execute(
                    "DELETE FROM incidents WHERE resource = ?1 AND condition = ?2",
                    params![resource, condition],
                )?;
                enqueue(&tx, &alerts(closed), now_ns)?;
            }
            tx.commit()?;
            Ok(found)
        })
    }

    /// Whether an incident is open.
    pub fn incident_open(&self, resource: &str, condition: &str) -> Result<bool, CatalogError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM incidents WHERE resource = ?1 AND condition = ?2",
                params![resource, condition],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_move_forward_and_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(d.path()).unwrap();
        c.see_resource("db", 1).unwrap();
        let id = c
            .create(
                JobKind::Backup,
                "db",
                "main",
                "schedule",
                Some(100),
                None,
                5,
            )
            .unwrap();
        c.start(id, 6).unwrap();
        c.finish(
            id,
            JobState::Completed,
            Some(42),
            Some("abcd"),
            Some(6),
            None,
            9,
        )
        .unwrap();
        let stuck = c
            .create(JobKind::Copy, "db", "dr", "backup", None, Some(id), 10)
            .unwrap();
        c.start(stuck, 11).unwrap();
        drop(c);
        let c = Catalog::open(d.path()).unwrap();
        let aborted = c.abort_unfinished(20).unwrap();
        assert_eq!(aborted.len(), 1);
        assert_eq!(c.get(stuck).unwrap().unwrap().state, JobState::Aborted);
        let j = c.get(id).unwrap().unwrap();
        assert_eq!(
            (j.state, j.bytes_added, j.attempts),
            (JobState::Completed, Some(42), 1)
        );
        assert_eq!(c.see_resource("db", 99).unwrap(), (1, Some(6)));
        assert_eq!(c.last_scheduled("db").unwrap(), Some(100));
        assert!(c.open_incident("db", "backup", 1).unwrap());
        assert!(!c.open_incident("db", "backup", 2).unwrap());
        assert_eq!(c.close_incident("db", "backup").unwrap().unwrap().count, 2);
        assert!(c.close_incident("db", "backup").unwrap().is_none());
        let only_failed = c
            .list(&Filter {
                states: vec![JobState::Aborted],
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(only_failed.len(), 1);
    }

    fn row(channel: &str, text: &str) -> Outgoing {
        Outgoing {
            channel: channel.into(),
            event: serde_json::json!({ "text": text }).to_string(),
        }
    }

    #[test]
    fn state_files_are_owner_only_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("state");
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0) };
        let c = Catalog::open(&dir);
        unsafe { libc::umask(old) };
        let c = c.unwrap();
        c.see_resource("db", 1).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        for f in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        // A catalog left with wide modes is narrowed when opened.
        drop(c);
        let db = dir.join("catalog.sqlite");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        Catalog::open(&dir).unwrap();
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn every_limit_is_a_bound_parameter() {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(d.path()).unwrap();
        c.create(JobKind::Backup, "db", "main", "api", None, None, 1)
            .unwrap();
        for limit in [0, 1, usize::MAX] {
            let f = Filter {
                limit,
                ..Filter::default()
            };
            assert_eq!(c.list(&f).unwrap().len(), 1, "{limit}");
        }
        assert_eq!(c.outbox_list(false, usize::MAX).unwrap().len(), 0);
    }

    #[test]
    fn alerts_are_queued_with_their_incident_and_delivered_in_order_per_channel() {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(d.path()).unwrap();
        assert!(
            c.open_incident_with("db", "backup", 10, || vec![
                row("ops", "down"),
                row("mail", "down")
            ])
            .unwrap()
        );
        // A second failure of the same incident queues nothing.
        assert!(
            !c.open_incident_with("db", "backup", 11, || vec![row("ops", "again")])
                .unwrap()
        );
        assert_eq!(c.outbox_pending().unwrap(), 2);
        let closed = c
            .close_incident_with("db", "backup", 12, |cl| {
                vec![row("ops", &format!("up after {}", cl.count))]
            })
            .unwrap()
            .unwrap();
        assert_eq!(closed.count, 2);
        assert_eq!(c.outbox_pending().unwrap(), 3);
        // One row per channel at a time, oldest first; a claimed row is leased.
        let first = c.outbox_claim(20, 1_000, 16).unwrap();
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|r| r.event.contains("down")));
        assert!(c.outbox_claim(20, 1_000, 16).unwrap().is_empty(), "leased");
        let ops = first.iter().find(|r| r.channel == "ops").unwrap();
        c.outbox_failed(ops.id, "the webhook answered 500", 50)
            .unwrap();
        // The recovery waits behind the undelivered alert of its channel.
        assert!(c.outbox_claim(30, 1_000, 16).unwrap().is_empty());
        assert_eq!(c.outbox_next_due().unwrap(), Some(50));
        drop(c);
        // Undelivered rows survive a reopen and a restart makes them due at once.
        let c = Catalog::open(d.path()).unwrap();
        assert_eq!(c.outbox_retry_now(40).unwrap(), 2);
        let again = c.outbox_claim(40, 1_000, 16).unwrap();
        let ops = again.iter().find(|r| r.channel == "ops").unwrap();
        assert_eq!((ops.attempts, ops.event.contains("down")), (1, true));
        c.outbox_delivered(ops.id, 41).unwrap();
        let next = c.outbox_claim(42, 1_000, 16).unwrap();
        assert_eq!(next.len(), 1);
        assert!(next[0].event.contains("up after 2"), "{:?}", next[0]);
        c.outbox_delivered(next[0].id, 43).unwrap();
        let mail = again.iter().find(|r| r.channel == "mail").unwrap();
        c.outbox_drop(mail.id, "the channel left the plan", 44)
            .unwrap();
        assert_eq!(c.outbox_pending().unwrap(), 0);
        let all = c.outbox_list(false, 0).unwrap();
        assert_eq!(all.len(), 3);
        assert!(c.outbox_list(true, 0).unwrap().is_empty());
    }
}
