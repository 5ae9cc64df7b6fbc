//! `holdfast pg`: base backups, WAL archiving (`wal-push`/`wal-fetch`) and point-in-time
//! restore for PostgreSQL.

use holdfast_engine::point::Manifest;
use holdfast_engine::tree::NodeKind;
use holdfast_engine::{Error, Id, Result, Vault};
use holdfast_sources::pitr::{self, BASE_KIND, WAL_KIND};
use holdfast_sources::restore;

use super::Ctx;
use crate::cli::PgCommand;
use crate::{exit, output};

use holdfast_ops::pitr::{BaseBackupRequest, wal_resource};

/// Open the vault and take a base backup under a session.
pub fn basebackup(
    ctx: &Ctx,
    sink: &dyn holdfast_ops::Sink,
    req: &BaseBackupRequest,
) -> Result<holdfast_ops::pitr::BaseBackupReport> {
    let (vault, session) = ctx.open_with_session("backup", true)?;
    let r = ctx.with_ops(sink, |o| {
        holdfast_ops::pitr::basebackup(o, &vault, session.as_ref(), req)
    });
    if let Some(s) = session {
        s.end();
    }
    r
}

pub fn run(ctx: &Ctx, c: PgCommand) -> Result<i32> {
    match c {
        PgCommand::Basebackup { postgres, resource } => {
            let req = BaseBackupRequest { resource, postgres };
            let term = output::Term::plain(ctx.json, ctx.quiet);
            let r = basebackup(ctx, &term, &req)?;
            if ctx.json {
                ctx.print_report(&r);
            } else if !ctx.quiet {
                let f = &r.facts;
                println!(
                    "base backup {} saved: {} (LSN {} .. {}, timeline {})",
                    &r.point[..8],
                    output::size(r.summary.total_size),
                    f.get("start_lsn").map_or("?", String::as_str),
                    f.get("end_lsn").map_or("?", String::as_str),
                    f.get("timeline").map_or("?", String::as_str),
                );
            }
            Ok(exit::OK)
        }
        PgCommand::WalPush { path, resource } => {
            let (vault, session) = ctx.open_with_session("backup", true)?;
            let term = output::Term::plain(ctx.json, ctx.quiet);
            let r = ctx.with_ops(&term, |o| {
                holdfast_ops::pitr::wal_push(o, &vault, session.as_ref(), &path, &resource)
            });
            if let Some(s) = session {
                s.end();
            }
            let (id, name) = r?;
            if !ctx.quiet && !ctx.json {
                println!("{name} archived as {}", id.short());
            }
            Ok(exit::OK)
        }
        PgCommand::WalFetch {
            name,
            dest,
            resource,
        } => wal_fetch(ctx, &name, &dest, &resource),
        PgCommand::Restore {
            data_dir,
            target_time,
            target_lsn,
            target_xid,
            target_name,
            latest,
            base,
            resource,
        } => {
            let vault = ctx.open()?;
            // Base backups and WAL are chosen among trusted points only (docs/format.md 13.5).
            let (points, _) = holdfast_engine::trust::split(&vault, vault.list_points()?.0)?;
            let mut bases: Vec<&(Id, Manifest)> = points
                .iter()
                .filter(|(_, m)| m.source.kind == BASE_KIND && m.resource == resource)
                .collect();
            bases.sort_by_key(|(_, m)| m.time_ns);
            let fact = |m: &Manifest, k: &str| m.source.facts.get(k).cloned().unwrap_or_default();
            let chosen: (Id, Manifest) = if let Some(b) = &base {
                vault.find_point(b)?
            } else if let Some(t) = &target_time {
                let t_ns = output::parse_time(t).ok_or_else(|| {
                    Error::Input(format!(
                        "--target-time {t:?}: use RFC 3339 or YYYY-MM-DD HH:MM:SS"
                    ))
                })?;
                bases
                    .iter()
                    .rev()
                    .find(|(_, m)| {
                        fact(m, "end_time_ns")
                            .parse::<i64>()
                            .is_ok_and(|e| e <= t_ns)
                    })
                    .map(|p| (*p).clone())
                    .ok_or_else(|| {
                        Error::Input(format!("no base backup of {resource:?} ends before {t}"))
                    })?
            } else if let Some(l) = &target_lsn {
                let lsn = pitr::parse_lsn(l)
                    .ok_or_else(|| Error::Input(format!("--target-lsn {l:?}: use X/Y (hex)")))?;
                bases
                    .iter()
                    .rev()
                    .find(|(_, m)| pitr::parse_lsn(&fact(m, "end_lsn")).is_some_and(|e| e <= lsn))
                    .map(|p| (*p).clone())
                    .ok_or_else(|| {
                        Error::Input(format!(
                            "no base backup of {resource:?} ends before LSN {l}"
                        ))
                    })?
            } else if latest {
                bases.last().map(|p| (*p).clone()).ok_or_else(|| {
                    Error::Input(format!("no base backup of resource {resource:?}"))
                })?
            } else {
                bases.first().map(|p| (*p).clone()).ok_or_else(|| {
                    Error::Input(format!("no base backup of resource {resource:?}"))
                })?
            };
            let (bid, bm) = chosen;
            if bm.source.kind != BASE_KIND {
                return Err(Error::Input(format!(
                    "point {} is not a base backup",
                    bid.short()
                )));
            }
            let mut target: Vec<(String, String)> = Vec::new();
            if let Some(t) = &target_time {
                // PostgreSQL's own form, in UTC: it does not take every RFC 3339 spelling.
                let ns = output::parse_time(t).unwrap_or_default();
                let secs = ns.div_euclid(1_000_000_000);
                let micros = ns.rem_euclid(1_000_000_000) / 1000;
                target.push((
                    "recovery_target_time".into(),
                    format!("{}.{micros:06}+00", output::time_short(secs)),
                ));
            }
            if let Some(l) = target_lsn {
                target.push(("recovery_target_lsn".into(), l));
            }
            if let Some(x) = target_xid {
                target.push(("recovery_target_xid".into(), x));
            }
            if let Some(n) = target_name {
                target.push(("recovery_target_name".into(), n));
            }
            lay_out(ctx, &vault, &bid, &bm, &data_dir, &resource, &target)?;
            Ok(exit::OK)
        }
    }
}

fn wal_fetch(ctx: &Ctx, name: &str, dest: &std::path::Path, resource: &str) -> Result<i32> {
    if !pitr::valid_wal_name(name) {
        return Err(Error::Input(format!("{name:?} is not a WAL file name")));
    }
    let vault = ctx.open()?;
    let (points, _) = holdfast_engine::trust::split(&vault, vault.list_points()?.0)?;
    let wr = wal_resource(resource);
    let Some((id, m)) = points.iter().rev().find(|(_, m)| {
        m.source.kind == WAL_KIND
            && m.resource == wr
            && m.source.facts.get("wal_file").map(String::as_str) == Some(name)
    }) else {
        if !ctx.quiet {
            eprintln!("holdfast: {name} is not in the archive of {resource:?}");
        }
        return Ok(exit::ERROR);
    };
    let tree = vault.load_tree(&m.root)?;
    let node = tree
        .nodes
        .iter()
        .find(|n| n.name == name.as_bytes() && matches!(n.kind, NodeKind::File { .. }))
        .ok_or_else(|| Error::damaged(format!("point {}", id.short()), "WAL file missing"))?;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".holdfast-wal-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    restore::dump(&vault, node, tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(|e| Error::io(dest, e))?;
    tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    Ok(exit::OK)
}

fn lay_out(
    ctx: &Ctx,
    vault: &Vault,
    bid: &Id,
    bm: &Manifest,
    data_dir: &std::path::Path,
    resource: &str,
    target: &[(String, String)],
) -> Result<()> {
    if data_dir.exists()
        && std::fs::read_dir(data_dir)
            .map_err(|e| Error::io(data_dir, e))?
            .next()
            .is_some()
    {
        return Err(Error::Input(format!(
            "{} exists and is not empty; give a new or empty data folder",
            data_dir.display()
        )));
    }
    // The restore_command reads the secret from a file, never from the config.
    let secret = ["HOLDFAST_KEY_FILE", "HOLDFAST_PASSPHRASE_FILE"]
        .iter()
        .find_map(|k| std::env::var_os(k).map(|v| (*k, std::path::PathBuf::from(v))))
        .ok_or_else(|| {
            Error::Input(
                "pg restore writes a restore_command that must read the secret from a file: \
                 set HOLDFAST_PASSPHRASE_FILE or HOLDFAST_KEY_FILE"
                    .into(),
            )
        })?;
    let secret_path = std::fs::canonicalize(&secret.1).map_err(|e| Error::io(&secret.1, e))?;
    let tree = vault.load_tree(&bm.root)?;
    let node = tree
        .nodes
        .iter()
        .find(|n| n.name == b"base.tar")
        .ok_or_else(|| Error::damaged(format!("point {}", bid.short()), "no base.tar"))?;
    std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(data_dir, e))?;
    }
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tar = tempfile::Builder::new()
        .prefix(".holdfast-base-")
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    restore::dump(vault, node, tar.as_file_mut())?;
    pitr::unpack(tar.path(), data_dir)?;
    drop(tar);
    let exe = std::env::current_exe().map_err(|e| Error::io("holdfast", e))?;
    let vault_loc = vault.storage().location();
    let q = |s: &str| {
        shlex::try_quote(s)
            .map(|c| c.into_owned())
            .unwrap_or_default()
    };
    let mut cmd = format!(
        "HOLDFAST_VAULT={} {}={}",
        q(&vault_loc),
        secret.0,
        q(&secret_path.display().to_string())
    );
    for k in [
        "HOLDFAST_S3_ENDPOINT",
        "HOLDFAST_S3_REGION",
        "HOLDFAST_CACHE_DIR",
    ] {
        if let Ok(v) = std::env::var(k) {
            cmd.push_str(&format!(" {k}={}", q(&v)));
        }
    }
    cmd.push_str(&format!(
        " {} --quiet pg wal-fetch --resource {} %f %p",
        q(&exe.display().to_string()),
        q(resource)
    ));
    let settings = pitr::recovery_settings(&cmd, target);
    let auto = data_dir.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&auto)
        .map_err(|e| Error::io(&auto, e))?;
    std::io::Write::write_all(&mut f, settings.as_bytes()).map_err(|e| Error::io(&auto, e))?;
    let signal = data_dir.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(|e| Error::io(&signal, e))?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"base": bid.to_hex(), "data_dir": data_dir.display().to_string(), "target": target}));
    } else if !ctx.quiet {
        println!(
            "base backup {} laid out in {} with recovery to {}",
            bid.short(),
            data_dir.display(),
            if target.is_empty() {
                "the end of the archive".to_string()
            } else {
                target
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        println!(
            "next: make the folder the server user's (chown -R postgres), then start the server (pg_ctl -D {} start); it replays WAL from the vault and promotes at the target",
            data_dir.display()
        );
    }
    Ok(())
}
