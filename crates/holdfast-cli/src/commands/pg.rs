//! `holdfast pg`: base backups, WAL archiving (`wal-push`/`wal-fetch`) and point-in-time
//! restore for PostgreSQL.

use holdfast_engine::{Error, Result, Vault};
use holdfast_ops::pitr_restore::{self, PitrRestoreRequest, RecoveryTarget};
use holdfast_sources::pitr;

use super::Ctx;
use crate::cli::PgCommand;
use crate::{exit, output};

use holdfast_ops::pitr::BaseBackupRequest;

/// Open the vault and take a base backup under a session.
pub fn basebackup(
    ctx: &Ctx,
    sink: &dyn holdfast_ops::Sink,
    req: &BaseBackupRequest,
) -> Result<holdfast_ops::pitr::BaseBackupReport> {
    let (vault, session) = ctx.open_with_session_to(sink, "backup", true)?;
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
        } => {
            // Checked before the vault is opened: PostgreSQL also asks for history files.
            if !pitr::valid_wal_name(&name) {
                return Err(Error::Input(format!("{name:?} is not a WAL file name")));
            }
            let vault = ctx.open()?;
            if pitr_restore::wal_fetch(&vault, &resource, &name, &dest)? {
                Ok(exit::OK)
            } else {
                if !ctx.quiet {
                    eprintln!("holdfast: {name} is not in the archive of {resource:?}");
                }
                Ok(exit::ERROR)
            }
        }
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
            let target = if let Some(t) = &target_time {
                let ns = output::parse_time(t).ok_or_else(|| {
                    Error::Input(format!(
                        "--target-time {t:?}: use RFC 3339 or YYYY-MM-DD HH:MM:SS"
                    ))
                })?;
                RecoveryTarget::Time { ns }
            } else if let Some(l) = target_lsn {
                if pitr::parse_lsn(&l).is_none() {
                    return Err(Error::Input(format!("--target-lsn {l:?}: use X/Y (hex)")));
                }
                RecoveryTarget::Lsn { lsn: l }
            } else if let Some(xid) = target_xid {
                RecoveryTarget::Xid { xid }
            } else if let Some(name) = target_name {
                RecoveryTarget::Name { name }
            } else if latest {
                RecoveryTarget::Latest
            } else {
                RecoveryTarget::End
            };
            let vault = ctx.open()?;
            let req = PitrRestoreRequest {
                restore_command: restore_command(&vault, &resource)?,
                resource,
                data_dir,
                target,
                base,
            };
            let r = pitr_restore::restore(&vault, &req)?;
            if ctx.json {
                ctx.print_report(&r);
            } else if !ctx.quiet {
                println!(
                    "base backup {} laid out in {} with recovery to {}",
                    &r.base[..8],
                    r.data_dir,
                    if r.target.is_empty() {
                        "the end of the archive".to_string()
                    } else {
                        r.target
                            .iter()
                            .map(|(k, v)| format!("{k} = {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
                println!(
                    "next: make the folder the server user's (chown -R postgres), then start the server (pg_ctl -D {} start); it replays WAL from the vault and promotes at the target",
                    r.data_dir
                );
            }
            Ok(exit::OK)
        }
    }
}

/// The `restore_command` PostgreSQL runs for each WAL segment: this binary's `pg wal-fetch`
/// against this vault, reading the secret from the file this command was given it in.
fn restore_command(vault: &Vault, resource: &str) -> Result<String> {
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
    let exe = std::env::current_exe().map_err(|e| Error::io("holdfast", e))?;
    let q = |s: &str| {
        shlex::try_quote(s)
            .map(|c| c.into_owned())
            .unwrap_or_default()
    };
    let mut cmd = format!(
        "HOLDFAST_VAULT={} {}={}",
        q(&vault.storage().location()),
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
    Ok(cmd)
}
