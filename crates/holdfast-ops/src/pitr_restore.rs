//! PostgreSQL point-in-time restore: choose the base backup for a recovery target, lay it out
//! in a new data folder with `recovery.signal` and the recovery settings; and `wal-fetch`,
//! which PostgreSQL's `restore_command` runs for each WAL segment it replays.
//!
//! Base backups and WAL are chosen among trusted points only (docs/format.md 13.5).

use std::path::{Path, PathBuf};

use holdfast_engine::point::Manifest;
use holdfast_engine::tree::NodeKind;
use holdfast_engine::{Error, Id, Result, Vault};
use holdfast_sources::pitr::{self, BASE_KIND, WAL_KIND};
use holdfast_sources::restore;
use serde::{Deserialize, Serialize};

use crate::pitr::wal_resource;

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum RecoveryTarget {
    /// The end of the archive (everything archived is replayed).
    End,
    /// The end of the archive, from the newest base backup.
    Latest,
    /// A time, Unix ns.
    Time {
        /// The target.
        ns: i64,
    },
    /// A WAL position (`X/Y`, hex).
    Lsn {
        /// The target.
        lsn: String,
    },
    /// A transaction id.
    Xid {
        /// The target.
        xid: String,
    },
    /// A restore point made with `pg_create_restore_point`.
    Name {
        /// The target.
        name: String,
    },
}

/// A point-in-time restore into a new data folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitrRestoreRequest {
    /// The cluster's resource name.
    pub resource: String,
    /// The data folder to create (new or empty).
    pub data_dir: PathBuf,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// This base backup (an id prefix) instead of the one the target chooses.
    pub base: Option<String>,
    /// The `restore_command` PostgreSQL runs for each WAL segment (`%f` and `%p` as
    /// PostgreSQL defines them); it must read the vault's secret from a file.
    pub restore_command: String,
}

/// What a point-in-time restore laid out: the `--json` output of `holdfast pg restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PitrRestoreReport {
    /// The base backup used.
    pub base: String,
    /// The data folder.
    pub data_dir: String,
    /// The recovery target settings written (name, value).
    pub target: Vec<(String, String)>,
}

fn fact(m: &Manifest, k: &str) -> String {
    m.source.facts.get(k).cloned().unwrap_or_default()
}

/// The base backup to restore from: the given one, else the newest that ends before the
/// target (time or LSN), else the newest (`Latest`), else the oldest (the whole archive).
pub fn choose_base(
    vault: &Vault,
    resource: &str,
    base: Option<&str>,
    target: &RecoveryTarget,
) -> Result<(Id, Manifest)> {
    let chosen = if let Some(b) = base {
        vault.find_point(b)?
    } else {
        let (points, _) = holdfast_engine::trust::split(vault, vault.list_points()?.0)?;
        let mut bases: Vec<&(Id, Manifest)> = points
            .iter()
            .filter(|(_, m)| m.source.kind == BASE_KIND && m.resource == resource)
            .collect();
        bases.sort_by_key(|(_, m)| m.time_ns);
        let none = || Error::NotFound(format!("no base backup of resource {resource:?}"));
        match target {
            RecoveryTarget::Time { ns } => bases
                .iter()
                .rev()
                .find(|(_, m)| {
                    fact(m, "end_time_ns")
                        .parse::<i64>()
                        .is_ok_and(|e| e <= *ns)
                })
                .map(|p| (*p).clone())
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "no base backup of {resource:?} ends before {}",
                        crate::time::rfc3339_ns(*ns)
                    ))
                })?,
            RecoveryTarget::Lsn { lsn } => {
                let want = pitr::parse_lsn(lsn)
                    .ok_or_else(|| Error::Input(format!("{lsn:?} is not an LSN (X/Y, hex)")))?;
                bases
                    .iter()
                    .rev()
                    .find(|(_, m)| pitr::parse_lsn(&fact(m, "end_lsn")).is_some_and(|e| e <= want))
                    .map(|p| (*p).clone())
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "no base backup of {resource:?} ends before LSN {lsn}"
                        ))
                    })?
            }
            RecoveryTarget::Latest => bases.last().map(|p| (*p).clone()).ok_or_else(none)?,
            _ => bases.first().map(|p| (*p).clone()).ok_or_else(none)?,
        }
    };
    if chosen.1.source.kind != BASE_KIND {
        return Err(Error::Input(format!(
            "point {} is not a base backup",
            chosen.0.short()
        )));
    }
    Ok(chosen)
}

/// The recovery target as PostgreSQL settings.
pub fn target_settings(target: &RecoveryTarget) -> Vec<(String, String)> {
    match target {
        RecoveryTarget::End | RecoveryTarget::Latest => vec![],
        RecoveryTarget::Time { ns } => {
            // PostgreSQL's own form, in UTC: it does not take every RFC 3339 spelling.
            let secs = ns.div_euclid(1_000_000_000);
            let micros = ns.rem_euclid(1_000_000_000) / 1000;
            let day = utc_seconds(secs);
            vec![(
                "recovery_target_time".into(),
                format!("{day}.{micros:06}+00"),
            )]
        }
        RecoveryTarget::Lsn { lsn } => vec![("recovery_target_lsn".into(), lsn.clone())],
        RecoveryTarget::Xid { xid } => vec![("recovery_target_xid".into(), xid.clone())],
        RecoveryTarget::Name { name } => vec![("recovery_target_name".into(), name.clone())],
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn utc_seconds(secs: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// Lay out the chosen base backup in `req.data_dir` with `recovery.signal` and the recovery
/// settings appended to `postgresql.auto.conf`. The folder must be new or empty.
pub fn restore(vault: &Vault, req: &PitrRestoreRequest) -> Result<PitrRestoreReport> {
    let data_dir = &req.data_dir;
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
    let (bid, bm) = choose_base(vault, &req.resource, req.base.as_deref(), &req.target)?;
    let target = target_settings(&req.target);
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
        .unwrap_or(Path::new("."));
    let mut tar = tempfile::Builder::new()
        .prefix(".holdfast-base-")
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    restore::dump(vault, node, tar.as_file_mut())?;
    pitr::unpack(tar.path(), data_dir)?;
    drop(tar);
    let settings = pitr::recovery_settings(&req.restore_command, &target);
    let auto = data_dir.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&auto)
        .map_err(|e| Error::io(&auto, e))?;
    std::io::Write::write_all(&mut f, settings.as_bytes()).map_err(|e| Error::io(&auto, e))?;
    let signal = data_dir.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(|e| Error::io(&signal, e))?;
    Ok(PitrRestoreReport {
        base: bid.to_hex(),
        data_dir: data_dir.display().to_string(),
        target,
    })
}

/// Write the archived WAL file `name` of `resource` to `dest` (atomically: a temporary file
/// beside it, synced, renamed). `Ok(false)` when the archive does not have it — PostgreSQL's
/// signal that recovery reached the end of the archive.
pub fn wal_fetch(vault: &Vault, resource: &str, name: &str, dest: &Path) -> Result<bool> {
    if !pitr::valid_wal_name(name) {
        return Err(Error::Input(format!("{name:?} is not a WAL file name")));
    }
    let (points, _) = holdfast_engine::trust::split(vault, vault.list_points()?.0)?;
    let wr = wal_resource(resource);
    let Some((id, m)) = points.iter().rev().find(|(_, m)| {
        m.source.kind == WAL_KIND
            && m.resource == wr
            && m.source.facts.get("wal_file").map(String::as_str) == Some(name)
    }) else {
        return Ok(false);
    };
    write_wal(vault, id, m, name, dest)?;
    Ok(true)
}

/// Write WAL file `name` of the WAL point `id` to `dest`, synced, through a temporary file.
fn write_wal(vault: &Vault, id: &Id, m: &Manifest, name: &str, dest: &Path) -> Result<u64> {
    let tree = vault.load_tree(&m.root)?;
    let node = tree
        .nodes
        .iter()
        .find(|n| n.name == name.as_bytes() && matches!(n.kind, NodeKind::File { .. }))
        .ok_or_else(|| Error::damaged(format!("point {}", id.short()), "WAL file missing"))?;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".holdfast-wal-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let n = restore::dump(vault, node, tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(|e| Error::io(dest, e))?;
    tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    Ok(n)
}

/// What [`fetch_archive`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedArchive {
    /// WAL files (segments, history and backup labels) written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When the newest of them was archived, Unix ns (none: no WAL after the base backup).
    pub newest_ns: Option<i64>,
}

/// Write every archived WAL file the base backup `base` needs into the folder `dir` (which
/// must exist): the segments from its first one onward on every timeline, and all history
/// files — what a recovery to the end of the archive replays, fetched ahead so the server's
/// `restore_command` is a copy.
pub fn fetch_archive(vault: &Vault, base: &Manifest, dir: &Path) -> Result<FetchedArchive> {
    let seg_size = base
        .source
        .facts
        .get("wal_segment_size")
        .and_then(|s| pitr::parse_size(s))
        .unwrap_or(16 << 20);
    let first = base
        .source
        .facts
        .get("start_lsn")
        .and_then(|l| pitr::base_first_segment(l, seg_size));
    let (points, _) = holdfast_engine::trust::split(vault, vault.list_points()?.0)?;
    let wr = wal_resource(&base.resource);
    let mut out = FetchedArchive::default();
    let mut seen = std::collections::HashSet::new();
    // Newest first: a file archived twice (a retried push) is taken once, the newest copy.
    for (id, m) in points.iter().rev() {
        if m.source.kind != WAL_KIND || m.resource != wr {
            continue;
        }
        let Some(name) = m.source.facts.get("wal_file") else {
            continue;
        };
        if !pitr::valid_wal_name(name) || !seen.insert(name.clone()) {
            continue;
        }
        let needed = match (pitr::wal_segment_number(name, seg_size), first) {
            (Some(n), Some(f)) => n >= f,
            _ => true,
        };
        if !needed {
            continue;
        }
        out.bytes += write_wal(vault, id, m, name, &dir.join(name))?;
        out.files += 1;
        out.newest_ns = Some(out.newest_ns.map_or(m.time_ns, |t| t.max(m.time_ns)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_become_postgresql_settings() {
        // 2024-02-29T01:00:00.123456789Z: PostgreSQL's own spelling, microseconds, UTC.
        let ns = 1_709_168_400_123_456_789;
        assert_eq!(
            target_settings(&RecoveryTarget::Time { ns }),
            [(
                "recovery_target_time".to_string(),
                "2024-02-29 01:00:00.123456+00".to_string()
            )]
        );
        assert_eq!(
            target_settings(&RecoveryTarget::Lsn {
                lsn: "0/3000060".into()
            }),
            [("recovery_target_lsn".to_string(), "0/3000060".to_string())]
        );
        assert!(target_settings(&RecoveryTarget::Latest).is_empty());
        assert!(target_settings(&RecoveryTarget::End).is_empty());
    }
}
