//! `holdfast backup`.

use std::time::Instant;

use holdfast_engine::point::{Manifest, SourceInfo};
use holdfast_engine::writer::with_writer;
use holdfast_engine::{Error, Result};
use holdfast_sources::Source;
use holdfast_sources::cache::FileCache;
use holdfast_sources::export::{self, Export, ExportsSource};
use holdfast_sources::files::{Excludes, FilesSource};
use holdfast_sources::sqlite::SqliteSource;
use holdfast_sources::stream::StreamSource;
use holdfast_sources::{mysql, postgres};

use super::{Ctx, origin};
use crate::cli::BackupArgs;
use crate::{exit, output};

/// The local cache folder (`HOLDFAST_CACHE_DIR`, `$XDG_CACHE_HOME/holdfast`,
/// `~/.cache/holdfast`).
pub fn cache_dir() -> Option<std::path::PathBuf> {
    if let Some(d) = std::env::var_os("HOLDFAST_CACHE_DIR") {
        return Some(d.into());
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(std::path::PathBuf::from(d).join("holdfast"));
    }
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache").join("holdfast"))
}

pub fn backup(ctx: &Ctx, a: BackupArgs) -> Result<i32> {
    let time_ns = match &a.time {
        Some(t) => output::parse_time(t).ok_or_else(|| {
            Error::Input(format!(
                "--time {t:?}: use RFC 3339 or YYYY-MM-DD[ HH:MM:SS]"
            ))
        })?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0),
    };
    let other = a.postgres.is_some()
        || a.mysql.is_some()
        || a.sqlite.is_some()
        || a.command.is_some()
        || a.s3_source.is_some();
    if !a.stdin && !other && a.paths.is_empty() {
        return Err(Error::Input(
            "nothing to back up: give paths, --stdin, --postgres, --mysql, --sqlite, --command or --s3-source"
                .into(),
        ));
    }
    let (vault, session) = ctx.open_with_session("backup", true)?;
    let result = run(ctx, &a, &vault, session.as_ref(), time_ns);
    if let Some(s) = session {
        s.end();
    }
    result
}

fn run(
    ctx: &Ctx,
    a: &BackupArgs,
    vault: &holdfast_engine::Vault,
    session: Option<&holdfast_engine::session::Session>,
    time_ns: i64,
) -> Result<i32> {
    let start = Instant::now();
    let source: Box<dyn Source> = if a.stdin {
        Box::new(StreamSource::new(&a.stdin_name, std::io::stdin())?)
    } else if let Some(url) = &a.postgres {
        let conn = postgres::PgConn::parse(&source_url("--postgres", url)?)?;
        Box::new(postgres::logical_source(&conn, &a.databases)?)
    } else if let Some(url) = &a.mysql {
        let conn = mysql::MyConn::parse(&source_url("--mysql", url)?)?;
        Box::new(mysql::logical_source(&conn, &a.databases)?)
    } else if let Some(url) = &a.s3_source {
        let bucket = super::targets::open_bucket(ctx, url, a.s3_source_endpoint.clone())?;
        Box::new(holdfast_sources::s3src::S3Source::new(bucket))
    } else if let Some(f) = &a.sqlite {
        Box::new(SqliteSource::new(f)?)
    } else if let Some(line) = &a.command {
        let (program, args) = export::split_command(line)?;
        let name = if a.stdin_name == "stdin" {
            "command.out".to_string()
        } else {
            a.stdin_name.clone()
        };
        let mut facts = std::collections::BTreeMap::new();
        facts.insert("command".into(), line.clone());
        Box::new(ExportsSource::new(
            "command",
            vec![name.clone()],
            vec![Export {
                name,
                program,
                args,
                env: vec![],
                child: holdfast_sources::child_env::Child::Program,
            }],
            facts,
        )?)
    } else {
        let excludes = Excludes::new(&a.excludes)?;
        // Resolve paths first so the cache key and resource name use absolute paths.
        let probe = FilesSource::new(&a.paths, excludes.clone(), None)?;
        let resource_default = probe.paths().join(",");
        let cache = if a.no_cache {
            None
        } else {
            cache_dir().map(|d| {
                let key = format!(
                    "{}\0{}",
                    a.resource.as_deref().unwrap_or(""),
                    resource_default
                );
                FileCache::load(FileCache::path_for(&d, &vault.config().id_hex(), &key))
            })
        };
        Box::new(FilesSource::new(&a.paths, excludes, cache)?)
    };
    let resource = a.resource.clone().unwrap_or_else(|| match source.kind() {
        "stdin" => format!("stdin:{}", a.stdin_name),
        "files" => source.paths().join(","),
        kind => format!("{kind}:{}", source.paths().join(",")),
    });
    let (id, manifest, captured) = commit_point(
        ctx,
        vault,
        session,
        source.as_ref(),
        Meta {
            resource,
            tags: a.tags.clone(),
            time_ns,
            host: a.host.clone(),
        },
        start,
    )?;
    let summary = manifest.summary.clone();
    for w in &captured.warnings {
        eprintln!("holdfast: warning: {w}");
    }
    for e in &captured.errors {
        eprintln!("holdfast: error: cannot read {e}");
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "point": id.to_hex(),
            "resource": manifest.resource,
            "time": output::time_ns(time_ns),
            "partial": manifest.partial,
            "errors": manifest.errors,
            "warnings": captured.warnings,
            "summary": summary,
        }));
    } else if !ctx.quiet {
        println!(
            "recovery point {} saved ({})",
            id.short(),
            manifest.resource
        );
        println!(
            "files: {} new, {} changed, {} unchanged; {} dirs",
            summary.files_new, summary.files_changed, summary.files_unchanged, summary.dirs
        );
        println!(
            "read {}, added {} ({} stored) in {:.1}s",
            output::size(summary.bytes_read),
            output::size(summary.bytes_added),
            output::size(summary.stored_added),
            summary.duration_ms as f64 / 1000.0
        );
        if manifest.partial {
            println!(
                "partial: {} item(s) could not be read",
                manifest.errors.len()
            );
        }
    }
    Ok(if manifest.partial {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// A connection URL given as itself, as `env:VAR` (read from that environment variable) or
/// as `file:PATH` (the file's first line) — the latter two keep passwords out of argv. A
/// variable read this way holds a secret: no child program sees it.
pub fn source_url(flag: &str, given: &str) -> Result<String> {
    if let Some(var) = given.strip_prefix("env:") {
        holdfast_sources::child_env::mark_secret(var);
        return std::env::var(var).map_err(|_| {
            Error::Input(format!(
                "{flag} env:{var}: the environment variable {var} is not set"
            ))
        });
    }
    if let Some(path) = given.strip_prefix("file:") {
        let data = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        return Ok(data.lines().next().unwrap_or("").trim().to_string());
    }
    Ok(given.to_string())
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

/// Capture `source` through a writer, then claim the commit and save the manifest.
pub fn commit_point(
    ctx: &Ctx,
    vault: &holdfast_engine::Vault,
    session: Option<&holdfast_engine::session::Session>,
    source: &dyn Source,
    meta: Meta,
    start: Instant,
) -> Result<(holdfast_engine::Id, Manifest, holdfast_sources::Captured)> {
    vault.may_write(&meta.resource)?;
    let pb = output::progress(ctx.json, ctx.quiet, "backup");
    let progress = |n: u64| pb.inc(n);
    // Remote stores hide latency behind parallel uploads; a local disk needs one writer, and
    // every pack in flight costs its size in memory.
    let uploaders = if vault.storage().location().starts_with("s3://") {
        4
    } else {
        1
    };
    let (captured, stats) = with_writer(vault, uploaders, |w| source.capture(w, &progress))?;
    pb.finish_and_clear();
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
    // Commit: from here a prune can no longer declare this run abandoned.
    if let Some(s) = session {
        s.claim_commit()?;
    }
    let id = vault.save_point(&manifest)?;
    Ok((id, manifest, captured))
}
