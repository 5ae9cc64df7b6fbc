//! Reading commands: `points`, `ls`, `dump`, `restore`.

use std::io::Write;

use holdfast_engine::tree::NodeKind;
use holdfast_engine::walk::{self, Visit};
use holdfast_engine::{Error, Result};
use holdfast_sources::restore::{self, Includes};

use super::Ctx;
use crate::cli::{DumpArgs, LsArgs, PointsArgs, RestoreArgs};
use crate::{exit, output};

pub fn points(ctx: &Ctx, a: PointsArgs) -> Result<i32> {
    let vault = ctx.open()?;
    let (points, damage) = vault.list_points()?;
    let sel: Vec<_> = points
        .into_iter()
        .filter(|(_, m)| a.resource.as_ref().is_none_or(|r| &m.resource == r))
        .filter(|(_, m)| a.tags.iter().all(|t| m.tags.contains(t)))
        .collect();
    for d in &damage {
        eprintln!("holdfast: warning: {} is damaged ({})", d.object, d.reason);
    }
    // Trust needs the writer registry; a damaged protection chain must not hide the list.
    let judge = holdfast_engine::trust::Judge::with(
        holdfast_engine::protect::current(&vault).unwrap_or_else(|e| {
            eprintln!("holdfast: warning: {e} (quarantines unknown; unsigned points untrusted)");
            Default::default()
        }),
    );
    let concerns: Vec<_> = sel.iter().map(|(_, m)| judge.concern(m)).collect();
    if ctx.json {
        let v: Vec<_> = sel
            .iter()
            .zip(&concerns)
            .map(|((id, m), c)| {
                serde_json::json!({
                    "id": id.to_hex(), "time": output::time_ns(m.time_ns), "host": m.host, "user": m.user,
                    "resource": m.resource, "tags": m.tags, "paths": m.paths, "source": m.source,
                    "partial": m.partial, "summary": m.summary, "program": m.program,
                    "writer": m.attribution, "trusted": c.is_none(), "untrusted_because": c,
                })
            })
            .collect();
        ctx.print_json(&serde_json::Value::Array(v));
        return Ok(if damage.is_empty() {
            exit::OK
        } else {
            exit::DAMAGED
        });
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
    for ((id, m), concern) in sel.iter().zip(&concerns) {
        let s = &m.summary;
        println!(
            "{:<8}  {:<19}  {:<12}  {:<12}  {:<24}  {:<8}  {:<12}  {:>7}  {:>10}  {:>10}{}{}",
            id.short(),
            output::time_short(m.time_ns.div_euclid(1_000_000_000)),
            m.host,
            m.attribution.name(),
            m.resource,
            m.source.kind,
            m.tags.join(","),
            s.files_new + s.files_changed + s.files_unchanged,
            output::size(s.total_size),
            output::size(s.stored_added),
            if m.partial { "  (partial)" } else { "" },
            if concern.is_some() { "  UNTRUSTED" } else { "" }
        );
        if let Some(c) = concern {
            println!("          untrusted: {c}");
        }
        if a.long {
            for (k, v) in &m.source.facts {
                println!("          {k}: {v}");
            }
        }
    }
    println!("{} recovery point(s)", sel.len());
    Ok(if damage.is_empty() {
        exit::OK
    } else {
        exit::DAMAGED
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

pub fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<i32> {
    let (vault, session) = ctx.open_with_session("restore", false)?;
    let r = restore_in(ctx, a, &vault);
    if let Some(s) = session {
        s.end();
    }
    r
}

fn restore_in(ctx: &Ctx, a: RestoreArgs, vault: &holdfast_engine::Vault) -> Result<i32> {
    let Some(target) = a.target.clone() else {
        return super::targets::restore_to(ctx, &a, vault);
    };
    let (id, m) = vault.find_point(&a.point)?;
    let includes = Includes::new(&a.includes)?;
    let pb = output::progress(ctx.json, ctx.quiet, "restore");
    let progress = |n: u64| pb.inc(n);
    let start = std::time::Instant::now();
    let r = restore::restore(vault, &m.root, &target, &includes, &progress)?;
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    for d in &r.damaged {
        eprintln!("holdfast: error: damaged, not restored: {d}");
    }
    for e in &r.errors {
        eprintln!("holdfast: error: {e}");
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "point": id.to_hex(), "target": target.display().to_string(), "files": r.files, "dirs": r.dirs,
            "symlinks": r.symlinks, "bytes": r.bytes, "damaged": r.damaged, "errors": r.errors, "seconds": secs,
        }));
    } else if !ctx.quiet {
        println!(
            "restored {} files, {} dirs, {} symlinks ({}) from {} to {} in {:.1}s",
            r.files,
            r.dirs,
            r.symlinks,
            output::size(r.bytes),
            id.short(),
            target.display(),
            secs
        );
        if !r.damaged.is_empty() {
            println!("{} item(s) damaged and not restored", r.damaged.len());
        }
    }
    Ok(if r.damaged.is_empty() && r.errors.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}
