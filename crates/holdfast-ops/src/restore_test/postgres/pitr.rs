//! Restore tests of PostgreSQL base backups: the base backup laid out as `holdfast pg
//! restore` lays it out, every archived WAL file it needs fetched beside it (phase `fetch`),
//! then a scratch server adopts the folder, replays the archive to its end and promotes
//! (phase `recovery`; the built-in check `recovery` says where replay ended); `pg_amcheck`
//! over every database follows.
//!
//! The RPO of such a test is measured from the newest WAL file replayed, not from the base
//! backup: a recovery now would reach the end of the archive.

use std::path::Path;
use std::time::{Duration, Instant};

use holdfast_engine::point::Manifest;
use holdfast_engine::{Error, Id, Result, Vault};
use holdfast_sources::pg_scratch::ScratchCluster;
use holdfast_sources::pitr::SUPERUSER_FACT;
use holdfast_sources::postgres;

use super::super::{CheckResult, Phase, phase};
use super::PgTarget;
use crate::pitr_restore::{self, PitrRestoreRequest, RecoveryTarget};

/// The longest a scratch server may take to replay the archive.
const RECOVERY: Duration = Duration::from_secs(6 * 3600);

/// What a recovered base backup gives the test: the target and the newest WAL time.
pub(in crate::restore_test) struct Recovered {
    /// The server and its databases (none: it did not recover).
    pub target: Option<PgTarget>,
    /// When the newest WAL file replayed was archived, Unix ns.
    pub newest_wal_ns: Option<i64>,
}

/// Lay out base backup `id` (`m`) in `scratch/pg`, fetch its WAL, recover and check. A
/// server that does not recover is a failed `recovery` check and `target: None`; an error
/// means the vault could not give the backup or its WAL.
pub(in crate::restore_test) fn prepare(
    vault: &Vault,
    id: &Id,
    m: &Manifest,
    scratch: &Path,
    phases: &mut Vec<Phase>,
    checks: &mut Vec<CheckResult>,
) -> Result<Recovered> {
    let t = Instant::now();
    let dir = scratch.join("pg");
    let wal = dir.join("wal");
    pitr_restore::restore(
        vault,
        &PitrRestoreRequest {
            resource: m.resource.clone(),
            data_dir: dir.join("data"),
            target: RecoveryTarget::End,
            base: Some(id.to_hex()),
            // Run in the data folder; the server's command line sets the same.
            restore_command: "cp ../wal/%f %p".into(),
        },
    )?;
    std::fs::create_dir(&wal).map_err(|e| Error::io(&wal, e))?;
    let fetched = pitr_restore::fetch_archive(vault, m, &wal)?;
    phases.push(phase("fetch", t));
    let t = Instant::now();
    let superuser = m
        .source
        .facts
        .get(SUPERUSER_FACT)
        .map_or("postgres", String::as_str);
    let started = ScratchCluster::adopt(&dir, superuser, RECOVERY);
    phases.push(phase("recovery", t));
    let cluster = match started {
        Ok(c) => c,
        Err(e) => {
            checks.push(CheckResult::timed(
                "recovery",
                t,
                Err(format!("base backup {} did not recover: {e}", id.short())),
            ));
            return Ok(Recovered {
                target: None,
                newest_wal_ns: fetched.newest_ns,
            });
        }
    };
    let databases = cluster.conn().and_then(|c| {
        postgres::query(
            &c,
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database \
             WHERE datallowconn AND NOT datistemplate",
        )
    });
    let (databases, detail) = match databases {
        Ok(list) => {
            let dbs: Vec<String> = list
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect();
            let detail = format!(
                "base backup {} and {} WAL file(s) ({} bytes) replayed; {}",
                id.short(),
                fetched.files,
                fetched.bytes,
                replay_summary(&cluster.log())
            );
            (Ok(dbs), detail)
        }
        Err(e) => (Err(()), e.to_string()),
    };
    let restored = databases.is_ok();
    checks.push(CheckResult {
        check: "recovery".into(),
        passed: restored,
        detail,
        seconds: t.elapsed().as_secs_f64(),
    });
    if restored {
        super::builtin_check(&cluster, phases, checks);
    }
    Ok(Recovered {
        target: Some(PgTarget {
            cluster,
            databases: databases.unwrap_or_default(),
            restored,
            physical: true,
        }),
        newest_wal_ns: fetched.newest_ns,
    })
}

/// Where replay ended, from the server's log: `redo done at …` and the last transaction's
/// time, as PostgreSQL printed them.
fn replay_summary(log: &str) -> String {
    let mut said = Vec::new();
    for l in log.lines() {
        for key in [
            "redo done at ",
            "last completed transaction was at log time ",
        ] {
            if let Some(i) = l.find(key) {
                said.push(l[i..].trim().to_string());
            }
        }
    }
    if said.is_empty() {
        "the server promoted after recovery".into()
    } else {
        said.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_summary_quotes_where_recovery_ended() {
        let log = "2026-12-07 LOG:  redo done at 0/3000060 system usage: CPU: user: 0.00 s\n\
                   2026-12-07 LOG:  last completed transaction was at log time 2026-12-07 18:00:00.1+00\n";
        let s = replay_summary(log);
        assert!(s.starts_with("redo done at 0/3000060"), "{s}");
        assert!(s.contains("log time 2026-12-07 18:00:00.1+00"), "{s}");
        assert_eq!(replay_summary(""), "the server promoted after recovery");
    }
}
