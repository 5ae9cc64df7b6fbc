//! `holdfast backup`: the arguments become a [`BackupRequest`], the operation runs, the
//! report is printed.

use holdfast_engine::{Error, Result};
use holdfast_ops::backup::{BackupReport, BackupRequest, SourceSpec};

use super::Ctx;
use crate::cli::BackupArgs;
use crate::{exit, output};

/// The request `a` describes.
pub fn request(a: &BackupArgs) -> Result<BackupRequest> {
    let time_ns = match &a.time {
        Some(t) => Some(output::parse_time(t).ok_or_else(|| {
            Error::Input(format!(
                "--time {t:?}: use RFC 3339 or YYYY-MM-DD[ HH:MM:SS]"
            ))
        })?),
        None => None,
    };
    let source = if a.stdin {
        SourceSpec::Stdin {
            name: a.stdin_name.clone(),
        }
    } else if let Some(url) = &a.postgres {
        SourceSpec::Postgres {
            url: url.clone(),
            databases: a.databases.clone(),
        }
    } else if let Some(url) = &a.mysql {
        SourceSpec::Mysql {
            url: url.clone(),
            databases: a.databases.clone(),
        }
    } else if let Some(url) = &a.s3_source {
        SourceSpec::S3 {
            url: url.clone(),
            endpoint: a.s3_source_endpoint.clone(),
        }
    } else if let Some(f) = &a.sqlite {
        SourceSpec::Sqlite { path: f.clone() }
    } else if let Some(line) = &a.command {
        SourceSpec::Command {
            line: line.clone(),
            name: if a.stdin_name == "stdin" {
                "command.out".to_string()
            } else {
                a.stdin_name.clone()
            },
        }
    } else if !a.paths.is_empty() {
        SourceSpec::Files {
            paths: a.paths.clone(),
            excludes: a.excludes.clone(),
            no_cache: a.no_cache,
        }
    } else {
        return Err(Error::Input(
            "nothing to back up: give paths, --stdin, --postgres, --mysql, --sqlite, --command or --s3-source"
                .into(),
        ));
    };
    Ok(BackupRequest {
        source,
        resource: a.resource.clone(),
        tags: a.tags.clone(),
        time_ns,
        host: a.host.clone(),
    })
}

/// Open the vault and run the backup `req` under a session.
pub fn run(ctx: &Ctx, sink: &dyn holdfast_ops::Sink, req: &BackupRequest) -> Result<BackupReport> {
    let (vault, session) = ctx.open_with_session_to(sink, "backup", true)?;
    let result = ctx.with_ops(sink, |o| {
        holdfast_ops::backup::backup(o, &vault, session.as_ref(), req)
    });
    if let Some(s) = session {
        s.end();
    }
    result
}

pub fn backup(ctx: &Ctx, a: BackupArgs) -> Result<i32> {
    let req = request(&a)?;
    let term = output::Term::new(ctx.json, ctx.quiet, "backup");
    let result = run(ctx, &term, &req);
    term.finish();
    let r = result?;
    print(ctx, &r);
    Ok(if r.partial { exit::PARTIAL } else { exit::OK })
}

fn print(ctx: &Ctx, r: &BackupReport) {
    for w in &r.warnings {
        eprintln!("holdfast: warning: {w}");
    }
    for e in &r.errors {
        eprintln!("holdfast: error: cannot read {e}");
    }
    if ctx.json {
        ctx.print_report(r);
    } else if !ctx.quiet {
        let summary = &r.summary;
        println!(
            "recovery point {} saved ({})",
            &r.point[..r.point.len().min(8)],
            r.resource
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
        if r.partial {
            println!("partial: {} item(s) could not be read", r.errors.len());
        }
    }
}
