//! Backup of every source kind: choose the source, capture it through a writer, build the
//! manifest, claim the commit and save the point.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use holdfast_engine::point::{Manifest, SourceInfo, Summary};
use holdfast_engine::session::Session;
use holdfast_engine::writer::with_writer;
use holdfast_engine::{Error, Id, Result, Vault};
use holdfast_sources::Source;
use holdfast_sources::cache::FileCache;
use holdfast_sources::export::{self, Export, ExportsSource};
use holdfast_sources::files::{Excludes, FilesSource};
use holdfast_sources::sqlite::SqliteSource;
use holdfast_sources::stream::StreamSource;
use holdfast_sources::{mysql, postgres};
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::session::origin;

/// What to back up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    /// Files and folders.
    Files {
        /// The paths (made absolute when the source opens).
        paths: Vec<PathBuf>,
        /// Globs of paths to skip; with a `/` a glob matches the whole path.
        #[serde(default)]
        excludes: Vec<String>,
        /// Read every file even if the local cache says it is unchanged.
        #[serde(default)]
        no_cache: bool,
    },
    /// This process's standard input, stored as one file.
    Stdin {
        /// The stored file's name.
        name: String,
    },
    /// PostgreSQL databases (pg_dump per database, and globals).
    Postgres {
        /// Connection URL, or `env:VAR` / `file:PATH` naming where it is.
        url: String,
        /// Only these databases (empty: all).
        #[serde(default)]
        databases: Vec<String>,
    },
    /// MariaDB/MySQL (mariadb-dump --single-transaction).
    Mysql {
        /// Connection URL, or `env:VAR` / `file:PATH` naming where it is.
        url: String,
        /// Only these databases (empty: all).
        #[serde(default)]
        databases: Vec<String>,
    },
    /// A live SQLite database, through its online backup API.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A program's standard output, stored as one file; a non-zero exit fails the point.
    Command {
        /// The command line (split like a shell does, not run by one).
        line: String,
        /// The stored file's name.
        name: String,
    },
    /// The objects of an S3 bucket/prefix, with content type and user metadata.
    S3 {
        /// `s3://BUCKET/PREFIX`.
        url: String,
        /// The bucket's endpoint (default: the vault's S3 settings).
        #[serde(default)]
        endpoint: Option<String>,
    },
}

/// A backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BackupRequest {
    /// What to back up.
    pub source: SourceSpec,
    /// The resource the point protects (default: named after the source, see
    /// [`default_resource`]).
    #[serde(default)]
    pub resource: Option<String>,
    /// Tags of the point.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The point's time, Unix nanoseconds (default: now).
    #[serde(default)]
    pub time_ns: Option<i64>,
    /// The host name to record (default: this machine's).
    #[serde(default)]
    pub host: Option<String>,
}

/// What a backup saved: the `--json` output of `holdfast backup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BackupReport {
    /// The new point's id (64 hex digits).
    pub point: String,
    /// Its resource.
    pub resource: String,
    /// Its time, RFC 3339.
    pub time: String,
    /// Whether some items could not be read.
    pub partial: bool,
    /// What could not be read.
    pub errors: Vec<String>,
    /// What was skipped on purpose (sockets, devices).
    pub warnings: Vec<String>,
    /// Counters.
    pub summary: Summary,
}

/// The local cache folder (`HOLDFAST_CACHE_DIR`, `$XDG_CACHE_HOME/holdfast`,
/// `~/.cache/holdfast`).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("HOLDFAST_CACHE_DIR") {
        return Some(d.into());
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("holdfast"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("holdfast"))
}

/// A connection URL given as itself, as `env:VAR` (read from that environment variable) or
/// as `file:PATH` (the file's first line) — the latter two keep passwords out of argv. A
/// variable read this way holds a secret: no child program sees it. `what` names the URL in
/// errors.
pub fn resolve_url(what: &str, given: &str) -> Result<String> {
    if let Some(var) = given.strip_prefix("env:") {
        holdfast_sources::child_env::mark_secret(var);
        return std::env::var(var).map_err(|_| {
            Error::Input(format!(
                "{what} env:{var}: the environment variable {var} is not set"
            ))
        });
    }
    if let Some(path) = given.strip_prefix("file:") {
        let data = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        return Ok(data.lines().next().unwrap_or("").trim().to_string());
    }
    Ok(given.to_string())
}

/// Open `s3://bucket/prefix` as plain objects (a source or restore target, not a vault).
pub fn open_bucket(
    ctx: &Context<'_>,
    url: &str,
    endpoint: Option<String>,
) -> Result<holdfast_storage::s3_objects::S3Bucket> {
    match holdfast_storage::url::Location::parse(url).map_err(|e| Error::Input(e.message))? {
        holdfast_storage::url::Location::S3 { bucket, prefix } => {
            let mut o = ctx.s3.clone();
            if endpoint.is_some() {
                o.endpoint = endpoint;
            }
            Ok(holdfast_storage::s3_objects::S3Bucket::open(
                &bucket, &prefix, &o,
            )?)
        }
        _ => Err(Error::Input(format!(
            "{url:?} is not an s3://BUCKET/PREFIX URL"
        ))),
    }
}

/// Open the source a request names.
pub fn open_source(
    ctx: &Context<'_>,
    vault: &Vault,
    req: &BackupRequest,
) -> Result<Box<dyn Source>> {
    Ok(match &req.source {
        SourceSpec::Stdin { name } => Box::new(StreamSource::new(name, std::io::stdin())?),
        SourceSpec::Postgres { url, databases } => {
            let conn = postgres::PgConn::parse(&resolve_url("the PostgreSQL URL", url)?)?;
            Box::new(postgres::logical_source(&conn, databases)?)
        }
        SourceSpec::Mysql { url, databases } => {
            let conn = mysql::MyConn::parse(&resolve_url("the MySQL URL", url)?)?;
            Box::new(mysql::logical_source(&conn, databases)?)
        }
        SourceSpec::S3 { url, endpoint } => {
            let bucket = open_bucket(ctx, url, endpoint.clone())?;
            Box::new(holdfast_sources::s3src::S3Source::new(bucket))
        }
        SourceSpec::Sqlite { path } => Box::new(SqliteSource::new(path)?),
        SourceSpec::Command { line, name } => {
            let (program, args) = export::split_command(line)?;
            let mut facts = BTreeMap::new();
            facts.insert("command".into(), line.clone());
            Box::new(ExportsSource::new(
                "command",
                vec![name.clone()],
                vec![Export {
                    name: name.clone(),
                    program,
                    args,
                    env: vec![],
                    child: holdfast_sources::child_env::Child::Program,
                }],
                facts,
            )?)
        }
        SourceSpec::Files {
            paths,
            excludes,
            no_cache,
        } => {
            let excludes = Excludes::new(excludes)?;
            // Resolve paths first so the cache key and resource name use absolute paths.
            let probe = FilesSource::new(paths, excludes.clone(), None)?;
            let resource_default = probe.paths().join(",");
            let cache = if *no_cache {
                None
            } else {
                cache_dir().map(|d| {
                    let key = format!(
                        "{}\0{}",
                        req.resource.as_deref().unwrap_or(""),
                        resource_default
                    );
                    FileCache::load(FileCache::path_for(&d, &vault.config().id_hex(), &key))
                })
            };
            Box::new(FilesSource::new(paths, excludes, cache)?)
        }
    })
}

/// The resource name of a point of `source` when the request names none: the joined
/// absolute paths of files, `stdin:NAME`, else `KIND:PATHS`.
pub fn default_resource(source: &dyn Source) -> String {
    match source.kind() {
        "stdin" => format!("stdin:{}", source.paths().join(",")),
        "files" => source.paths().join(","),
        kind => format!("{kind}:{}", source.paths().join(",")),
    }
}

/// Back up what `req` names into `vault` under `session`.
pub fn backup(
    ctx: &Context<'_>,
    vault: &Vault,
    session: Option<&Session>,
    req: &BackupRequest,
) -> Result<BackupReport> {
    let start = Instant::now();
    let time_ns = req.time_ns.unwrap_or_else(crate::time::now_ns);
    let source = open_source(ctx, vault, req)?;
    let resource = req
        .resource
        .clone()
        .unwrap_or_else(|| default_resource(source.as_ref()));
    let saved = commit_point(
        ctx,
        vault,
        session,
        source.as_ref(),
        Meta {
            resource,
            tags: req.tags.clone(),
            time_ns,
            host: req.host.clone(),
        },
        start,
    )?;
    let m = &saved.manifest;
    Ok(BackupReport {
        point: saved.id.to_hex(),
        resource: m.resource.clone(),
        time: crate::time::rfc3339_ns(time_ns),
        partial: m.partial,
        errors: m.errors.clone(),
        warnings: saved.warnings,
        summary: m.summary.clone(),
    })
}

/// Who, what and when of a new point.
pub struct Meta {
    /// Resource name.
    pub resource: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Point time.
    pub time_ns: i64,
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
}

/// A saved point.
pub struct Saved {
    /// Its id.
    pub id: Id,
    /// Its manifest.
    pub manifest: Manifest,
    /// What the source skipped on purpose.
    pub warnings: Vec<String>,
}

/// Capture `source` through a writer, then claim the commit and save the manifest.
pub fn commit_point(
    ctx: &Context<'_>,
    vault: &Vault,
    session: Option<&Session>,
    source: &dyn Source,
    meta: Meta,
    start: Instant,
) -> Result<Saved> {
    vault.may_write(&meta.resource)?;
    let progress = |n: u64| ctx.sink.bytes(n);
    // Remote stores hide latency behind parallel uploads; a local disk needs one writer, and
    // every pack in flight costs its size in memory.
    let uploaders = if vault.storage().location().starts_with("s3://") {
        4
    } else {
        1
    };
    let (captured, stats) = with_writer(vault, uploaders, |w| source.capture(w, &progress))?;
    let mut summary = captured.summary.clone();
    summary.blobs_added = stats.blobs_added;
    summary.bytes_added = stats.bytes_added;
    summary.stored_added = stats.stored_added;
    summary.duration_ms = start.elapsed().as_millis() as u64;
    let o = origin();
    let manifest = Manifest {
        version: 1,
        time_ns: meta.time_ns,
        host: meta.host.unwrap_or(o.host),
        user: o.user,
        resource: meta.resource,
        tags: meta.tags,
        paths: source.paths(),
        source: SourceInfo {
            kind: source.kind().to_string(),
            facts: captured.facts.clone(),
        },
        root: captured.root,
        partial: !captured.errors.is_empty(),
        errors: captured.errors.clone(),
        summary,
        program: format!("holdfast {}", env!("CARGO_PKG_VERSION")),
        copied_from: None,
        stored_ns: None,
        attribution: Default::default(),
    };
    ctx.cancel.check("the backup")?;
    // Commit: from here a prune can no longer declare this run abandoned.
    if let Some(s) = session {
        s.claim_commit()?;
    }
    let id = vault.save_point(&manifest)?;
    Ok(Saved {
        id,
        manifest,
        warnings: captured.warnings,
    })
}
