//! Reading commands: `points`, `ls`, `dump`, `restore`.

use std::io::Write;

use holdfast_engine::tree::NodeKind;
use holdfast_engine::walk::{self, Visit};
use holdfast_engine::{Error, Result};
use holdfast_ops::restore::{RestoreReport, RestoreRequest, RestoreTarget};
use holdfast_sources::restore;

use super::Ctx;
use crate::cli::{DumpArgs, LsArgs, PointsArgs, RestoreArgs};
use crate::{exit, output};

/// Open the vault and list the points `req` selects.
pub fn run_points(
    ctx: &Ctx,
    sink: &dyn holdfast_ops::Sink,
    req: &holdfast_ops::points::PointsRequest,
) -> Result<holdfast_ops::points::Listed> {
    let vault = ctx.open_to(sink)?;
    ctx.with_ops(sink, |o| holdfast_ops::points::points(o, &vault, req))
}

pub fn points(ctx: &Ctx, a: PointsArgs) -> Result<i32> {
    let req = holdfast_ops::points::PointsRequest {
        resource: a.resource.clone(),
        tags: a.tags.clone(),
    };
    let term = output::Term::plain(ctx.json, ctx.quiet);
    let listed = run_points(ctx, &term, &req)?;
    for d in &listed.damage {
        eprintln!("holdfast: warning: {} is damaged ({})", d.object, d.reason);
    }
    let code = if listed.damage.is_empty() {
        exit::OK
    } else {
        exit::DAMAGED
    };
    if ctx.json {
        ctx.print_report(&listed.points);
        return Ok(code);
    }
    println!(
        "{:<8}  {:<19}  {:<12}  {:<12}  {:<24}  {:<8}  {:<12}  {:>7}  {:>10}  {:>10}",
        "ID",
        "TIME (UTC)",
        "HOST",
        "WRITER",
        "RESOURCE",
        "SOURCE",
        "TAGS",
        "FILES",
        "SIZE",
        "ADDED"
    );
    for p in &listed.points {
        let s = &p.summary;
        let time = output::parse_time(&p.time).unwrap_or(0);
        println!(
            "{:<8}  {:<19}  {:<12}  {:<12}  {:<24}  {:<8}  {:<12}  {:>7}  {:>10}  {:>10}{}{}",
            &p.id[..p.id.len().min(8)],
            output::time_short(time.div_euclid(1_000_000_000)),
            p.host,
            p.writer.name(),
            p.resource,
            p.source.kind,
            p.tags.join(","),
            s.files_new + s.files_changed + s.files_unchanged,
            output::size(s.total_size),
            output::size(s.stored_added),
            if p.partial { "  (partial)" } else { "" },
            if p.untrusted_because.is_some() {
                "  UNTRUSTED"
            } else {
                ""
            }
        );
        if let Some(c) = &p.untrusted_because {
            println!("          untrusted: {c}");
        }
        if a.long {
            for (k, v) in &p.source.facts {
                println!("          {k}: {v}");
            }
            // Points written before 2026-12 carry this as a fact of their own.
            if let Some(how) = restore_with(&p.source.kind)
                && !p.source.facts.contains_key("restore")
            {
                println!("          restore: {how}");
            }
        }
    }
    println!("{} recovery point(s)", listed.points.len());
    Ok(code)
}

/// How a point of a source kind is restored, as a command line.
fn restore_with(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "postgres" => {
            "holdfast restore POINT --to-postgres URL [--database D] (pg_restore, PostgreSQL >= the dump's major version)"
        }
        "postgres-base" => {
            "holdfast pg restore --data-dir DIR [--target-time T | --target-lsn L | --target-xid X | --target-name N | --latest]"
        }
        "mysql" => "holdfast restore POINT --to-mysql URL (the dump creates its databases)",
        "sqlite" => "holdfast restore POINT --to-sqlite FILE (checks PRAGMA integrity_check)",
        "s3" => {
            "holdfast restore POINT --to-s3 s3://BUCKET/PREFIX (content type and user metadata restored)"
        }
        "files" => "holdfast restore POINT --target DIR [--include GLOB]",
        "stdin" | "command" => "holdfast restore POINT --to-command CMD, or --target DIR",
        _ => return None,
    })
}

fn type_char(k: &NodeKind) -> char {
    match k {
        NodeKind::File { .. } => '-',
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
    }
}

fn mode_string(mode: u32, k: &NodeKind) -> String {
    let mut s = String::with_capacity(10);
    s.push(type_char(k));
    for shift in [6u32, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<i32> {
    let vault = ctx.open()?;
    let (_, m) = vault.find_point(&a.point)?;
    let prefix = a
        .path
        .as_deref()
        .map(|p| p.trim_matches('/').to_string())
        .unwrap_or_default();
    let root = if prefix.is_empty() {
        m.root
    } else {
        match walk::lookup(&vault, &m.root, &prefix)? {
            Some(n) => match n.kind {
                NodeKind::Dir { subtree } => subtree,
                _ => {
                    return Err(Error::Input(format!(
                        "{prefix:?} is not a directory in the point"
                    )));
                }
            },
            None => return Err(Error::Input(format!("{prefix:?} is not in the point"))),
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut damaged = 0;
    walk::walk(&vault, &root, &mut |v| {
        match v {
            Visit::Node(rel, n) => {
                let mut path = String::from("/");
                if !prefix.is_empty() {
                    path.push_str(&prefix);
                    path.push('/');
                }
                path.push_str(&String::from_utf8_lossy(rel));
                let size = match &n.kind {
                    NodeKind::File { size, .. } => *size,
                    _ => 0,
                };
                let _ = if ctx.json {
                    let kind = match &n.kind {
                        NodeKind::File { .. } => "file",
                        NodeKind::Dir { .. } => "dir",
                        NodeKind::Symlink { .. } => "symlink",
                    };
                    let mut j = serde_json::json!({"path": path, "type": kind, "size": size, "mode": n.mode & 0o7777,
                        "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
                        "mtime": output::time_ns(n.mtime_sec * 1_000_000_000 + n.mtime_nsec as i64)});
                    if let NodeKind::Symlink { target } = &n.kind {
                        j["target"] = String::from_utf8_lossy(target).into();
                    }
                    writeln!(out, "{j}")
                } else if a.long {
                    writeln!(
                        out,
                        "{} {:>8} {:>8} {:>12} {} {}",
                        mode_string(n.mode, &n.kind),
                        if n.user.is_empty() {
                            n.uid.to_string()
                        } else {
                            n.user.clone()
                        },
                        if n.group.is_empty() {
                            n.gid.to_string()
                        } else {
                            n.group.clone()
                        },
                        size,
                        output::time_short(n.mtime_sec),
                        path
                    )
                } else {
                    writeln!(out, "{path}")
                };
            }
            Visit::Leave(..) => {}
            Visit::Damaged(rel, e) => {
                damaged += 1;
                eprintln!("holdfast: error: /{}: {e}", String::from_utf8_lossy(rel));
            }
        }
        true
    })?;
    let _ = out.flush();
    Ok(if damaged > 0 { exit::DAMAGED } else { exit::OK })
}

pub fn dump(ctx: &Ctx, a: DumpArgs) -> Result<i32> {
    let vault = ctx.open()?;
    let (_, m) = vault.find_point(&a.point)?;
    let node = walk::lookup(&vault, &m.root, &a.path)?
        .ok_or_else(|| Error::Input(format!("{:?} is not in the point", a.path)))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    restore::dump(&vault, &node, &mut out)?;
    out.flush().map_err(|e| Error::io("<stdout>", e))?;
    Ok(exit::OK)
}

/// The request `a` describes.
pub fn restore_request(a: &RestoreArgs) -> Result<RestoreRequest> {
    let target = if let Some(path) = &a.target {
        RestoreTarget::Dir {
            path: path.clone(),
            includes: a.includes.clone(),
        }
    } else if let Some(url) = &a.to_postgres {
        RestoreTarget::Postgres {
            url: url.clone(),
            databases: a.databases.clone(),
            as_database: a.as_database.clone(),
            jobs: a.jobs,
        }
    } else if let Some(url) = &a.to_mysql {
        RestoreTarget::Mysql { url: url.clone() }
    } else if let Some(path) = &a.to_sqlite {
        RestoreTarget::Sqlite { path: path.clone() }
    } else if let Some(url) = &a.to_s3 {
        RestoreTarget::S3 {
            url: url.clone(),
            endpoint: a.to_s3_endpoint.clone(),
        }
    } else if let Some(line) = &a.to_command {
        RestoreTarget::Command { line: line.clone() }
    } else {
        return Err(Error::Input(
            "say where to restore: --target DIR or one of the --to-* options".into(),
        ));
    };
    Ok(RestoreRequest {
        point: a.point.clone(),
        target,
    })
}

/// Open the vault and restore under a session.
pub fn run_restore(
    ctx: &Ctx,
    sink: &dyn holdfast_ops::Sink,
    req: &RestoreRequest,
) -> Result<RestoreReport> {
    let (vault, session) = ctx.open_with_session_to(sink, "restore", false)?;
    let r = ctx.with_ops(sink, |o| holdfast_ops::restore::restore(o, &vault, req));
    if let Some(s) = session {
        s.end();
    }
    r
}

pub fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<i32> {
    let req = restore_request(&a)?;
    let term = output::Term::new(ctx.json, ctx.quiet, "restore");
    let r = run_restore(ctx, &term, &req);
    term.finish();
    let r = r?;
    print_restore(ctx, &r);
    Ok(if r.partial() { exit::PARTIAL } else { exit::OK })
}

/// Print what a restore did.
pub fn print_restore(ctx: &Ctx, r: &RestoreReport) {
    match r {
        RestoreReport::Files(f) => {
            for d in &f.counts.damaged {
                eprintln!("holdfast: error: damaged, not restored: {d}");
            }
            for e in &f.counts.errors {
                eprintln!("holdfast: error: {e}");
            }
            if ctx.json {
                ctx.print_report(r);
            } else if !ctx.quiet {
                println!(
                    "restored {} files, {} dirs, {} symlinks ({}) from {} to {} in {:.1}s",
                    f.counts.files,
                    f.counts.dirs,
                    f.counts.symlinks,
                    output::size(f.counts.bytes),
                    &f.point[..f.point.len().min(8)],
                    f.target,
                    f.seconds
                );
                if !f.counts.damaged.is_empty() {
                    println!(
                        "{} item(s) damaged and not restored",
                        f.counts.damaged.len()
                    );
                }
            }
        }
        RestoreReport::Into(i) => {
            if ctx.json {
                ctx.print_report(r);
            } else if !ctx.quiet {
                for line in &i.said {
                    println!("{line}");
                }
            }
        }
    }
}
