//! Restore tests: a recovery point restored into a throwaway target that this operation makes
//! and removes, then checked — "an integrity hash is not a recovery test".
//!
//! The target is a private temporary folder (`holdfast-restore-test-*`, mode 0700) that is
//! removed when the test ends however it ends; a test killed before it could remove it leaves
//! a folder [`sweep_leftovers`] removes on the next run. Per point kind:
//!
//! - `files`: the point is restored into the folder, then every restored file is read back
//!   and compared with the point chunk by chunk (keyed BLAKE3 of each chunk against the
//!   point's chunk ids), every directory and link checked for presence and target.
//! - `sqlite`: the database is restored to a file in the folder and `PRAGMA
//!   integrity_check` must say `ok`; `row_counts` compares exact row counts per table with
//!   the ones recorded at backup time, and the schema fingerprint with the recorded one.
//! - `postgres` (logical): a scratch server is started in the folder (phase `start`), every
//!   database restored into it (`pg_restore`), and `pg_amcheck` checks every table and B-tree
//!   index; `row_counts` compares with the counts and schema taken in the dump's snapshot.
//!
//! User checks: `sql` (database points: the query must return a true value; PostgreSQL: in
//! every restored database but `postgres`), `command` (run by `/bin/sh -c` with the target in
//! `HOLDFAST_RESTORE_DIR` / `HOLDFAST_RESTORE_DB`, or `PGHOST`, `PGPORT`, `PGUSER`,
//! `PGPASSWORD`, `PGDATABASE`; it must exit 0), `row_counts`. The report times each phase, measures the RTO (the wall time from
//! the start of the test to the end of its checks) against the objective, and the RPO at test
//! time (the point's age) against the category's.

use std::path::PathBuf;
use std::time::Instant;

use holdfast_engine::point::Manifest;
use holdfast_engine::{Error, Id, Result, Vault};
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::restore::{RestoreReport, RestoreRequest, RestoreTarget, restore};

mod checks;
mod files;
mod mariadb;
mod postgres;
mod sweep;

use checks::{clip, run_check};
pub use files::{TreeComparison, compare_tree};
pub use sweep::sweep_leftovers;

/// The prefix of every scratch folder a restore test makes in the temporary directory.
pub const SCRATCH_PREFIX: &str = "holdfast-restore-test-";

/// The variable that marks a check's processes with their test's scratch folder, so the
/// sweep of a dead test's folder finds what it left running.
pub const SCRATCH_ENV: &str = "HOLDFAST_RESTORE_SCRATCH";

/// Which of a resource's points a restore test restores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Select {
    /// The newest trusted point.
    #[default]
    Latest,
    /// The oldest trusted point.
    Oldest,
    /// A random trusted point no older than this span before the newest (`30d`).
    RandomWithin {
        /// The span.
        within: String,
    },
    /// Exactly this point (an id prefix).
    Point {
        /// The id prefix.
        id: String,
    },
}

/// A check run against the restored target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// A query that must return a true value (SQLite points).
    Sql(String),
    /// Row counts per table equal to the ones recorded at backup time (`"match"`).
    RowCounts(String),
    /// A command that must exit 0; it gets the target in its environment.
    Command(String),
}

/// A restore test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestoreTestRequest {
    /// The resource whose points are tested.
    pub resource: String,
    /// Which point.
    #[serde(default)]
    pub select: Select,
    /// Checks beyond the built-in one of the point's kind.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// The recovery time objective, seconds (the test fails when it takes longer).
    #[serde(default)]
    pub max_rto_seconds: Option<u64>,
    /// The recovery point objective, seconds (reported against the point's age).
    #[serde(default)]
    pub rpo_seconds: Option<u64>,
    /// The folder scratch targets are made in (default: the system's temporary folder).
    #[serde(default)]
    pub scratch_dir: Option<PathBuf>,
    /// The test's name in the plan, recorded with its evidence.
    #[serde(default)]
    pub test: Option<String>,
}

/// One timed phase of a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Phase {
    /// `select`, `restore`, `checks`, `cleanup`.
    pub name: String,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckResult {
    /// What was checked (`files`, `integrity_check`, `row_counts`, `sql: …`, `command: …`).
    pub check: String,
    /// Whether it passed.
    pub passed: bool,
    /// What it found (at most 4 KiB of a command's output).
    pub detail: String,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// What a restore test found: the `--json` output of `holdfast restore-test run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestoreTestReport {
    /// The resource.
    pub resource: String,
    /// The point restored (64 hex).
    pub point: String,
    /// Its source kind.
    pub kind: String,
    /// When the point was taken, Unix nanoseconds.
    pub point_time_ns: i64,
    /// Each phase, in order.
    pub phases: Vec<Phase>,
    /// The measured recovery time: start of the test to the end of its checks, seconds.
    pub rto_seconds: f64,
    /// The objective it is held to.
    pub max_rto_seconds: Option<u64>,
    /// Whether the measured RTO is within the objective (true without one).
    pub rto_met: bool,
    /// The point's age when the test started, seconds: the data a recovery now would lose
    /// (for a base backup, the age of the newest WAL file replayed).
    pub rpo_seconds: f64,
    /// A base backup: when the newest WAL file replayed after it was archived, Unix ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_to_ns: Option<i64>,
    /// The category's RPO.
    pub max_rpo_seconds: Option<u64>,
    /// Whether the point's age is within the RPO (true without one).
    pub rpo_met: bool,
    /// Every check, built-in first.
    pub checks: Vec<CheckResult>,
    /// Every check passed and the RTO was met.
    pub passed: bool,
    /// The evidence record this report was stored as in the tested vault (`holdfast evidence
    /// show ID`); none when it could not be stored (a warning says why).
    #[serde(default)]
    pub evidence: Option<String>,
}

impl CheckResult {
    /// The result of check `check` started at `since`: passed with `Ok(detail)`.
    pub(crate) fn timed(
        check: &str,
        since: Instant,
        result: std::result::Result<String, String>,
    ) -> CheckResult {
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        CheckResult {
            check: check.into(),
            passed,
            detail,
            seconds: since.elapsed().as_secs_f64(),
        }
    }
}

impl RestoreTestReport {
    /// The checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

/// Run a restore test against `vault` (a full key is needed; the index must be loaded).
/// An error means the test could not run (no point, the vault unreadable); a check that
/// fails is a report with `passed: false`.
pub fn run(
    ctx: &Context<'_>,
    vault: &Vault,
    req: &RestoreTestRequest,
) -> Result<RestoreTestReport> {
    let start = Instant::now();
    let now_ns = crate::time::now_ns();
    let mut phases = Vec::new();
    let (id, m) = select(vault, &req.resource, &req.select)?;
    phases.push(phase("select", start));
    let base = match &req.scratch_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    sweep_leftovers(&base);
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(|e| Error::io(&base, e))?;
    let mut checks = Vec::new();
    let mut recovered_to_ns = None;
    let t = Instant::now();
    let target = match m.source.kind.as_str() {
        "sqlite" => {
            let db = scratch.path().join("restored.sqlite");
            let r = restore(
                ctx,
                vault,
                &request(&id, RestoreTarget::Sqlite { path: db.clone() }),
            );
            phases.push(phase("restore", t));
            let c = Instant::now();
            // The restore ran integrity_check: a damaged file fails it.
            checks.push(CheckResult {
                check: "integrity_check".into(),
                passed: r.is_ok(),
                detail: match &r {
                    Ok(_) => "ok".into(),
                    Err(e) => e.to_string(),
                },
                seconds: c.elapsed().as_secs_f64(),
            });
            Target::Sqlite(db)
        }
        "files" => {
            let dir = scratch.path().join("restored");
            let target = RestoreTarget::Dir {
                path: dir.clone(),
                includes: vec![],
            };
            let r = restore(ctx, vault, &request(&id, target))?;
            phases.push(phase("restore", t));
            let c = Instant::now();
            let partial = match &r {
                RestoreReport::Files(f) => {
                    let mut v: Vec<String> = f.counts.damaged.clone();
                    v.extend(f.counts.errors.iter().cloned());
                    v
                }
                RestoreReport::Into(_) => vec![],
            };
            let (passed, detail) = match compare_tree(vault, &m.root, &dir) {
                Ok(found) if partial.is_empty() && found.mismatches.is_empty() => (
                    true,
                    format!(
                        "{} files, {} bytes, {} directories and {} links as in the point",
                        found.files, found.bytes, found.dirs, found.links
                    ),
                ),
                Ok(found) => {
                    let mut all = partial;
                    all.extend(found.mismatches);
                    (false, summarize(&all))
                }
                Err(e) => (false, e.to_string()),
            };
            checks.push(CheckResult {
                check: "files".into(),
                passed,
                detail,
                seconds: c.elapsed().as_secs_f64(),
            });
            Target::Dir(dir)
        }
        holdfast_sources::pitr::BASE_KIND => {
            let r =
                postgres::pitr::prepare(vault, &id, &m, scratch.path(), &mut phases, &mut checks)?;
            recovered_to_ns = r.newest_wal_ns.filter(|t| *t > m.time_ns);
            match r.target {
                Some(t) => Target::Postgres(Box::new(t)),
                None => Target::Unrecovered,
            }
        }
        "mysql" => Target::Mysql(Box::new(mariadb::prepare(
            ctx,
            vault,
            &id,
            scratch.path(),
            &mut phases,
            &mut checks,
        )?)),
        "postgres" => Target::Postgres(Box::new(postgres::prepare(
            ctx,
            vault,
            &id,
            scratch.path(),
            &mut phases,
            &mut checks,
        )?)),
        other => {
            return Err(Error::Unsupported(format!(
                "restore tests of {other} points are not supported yet (files, sqlite, \
                 postgres, postgres-base and mysql are)"
            )));
        }
    };
    let c = Instant::now();
    for check in &req.checks {
        ctx.cancel.check("the restore test")?;
        checks.push(run_check(
            check,
            &target,
            scratch.path(),
            &m,
            checks.first().is_some_and(|b| b.passed),
        ));
    }
    phases.push(phase("checks", c));
    let rto = start.elapsed().as_secs_f64();
    let c = Instant::now();
    // A scratch server stops before its folder goes.
    drop(target);
    let cleaned = scratch.close();
    phases.push(phase("cleanup", c));
    if let Err(e) = cleaned {
        ctx.sink
            .warning(&format!("the scratch folder could not be removed: {e}"));
    }
    let rpo = ((now_ns - recovered_to_ns.unwrap_or(m.time_ns)).max(0) as f64) / 1e9;
    let rto_met = req.max_rto_seconds.is_none_or(|max| rto <= max as f64);
    let rpo_met = req.rpo_seconds.is_none_or(|max| rpo <= max as f64);
    let passed = rto_met && checks.iter().all(|c| c.passed);
    let mut report = RestoreTestReport {
        resource: req.resource.clone(),
        point: id.to_hex(),
        kind: m.source.kind.clone(),
        point_time_ns: m.time_ns,
        phases,
        rto_seconds: rto,
        max_rto_seconds: req.max_rto_seconds,
        rto_met,
        rpo_seconds: rpo,
        recovered_to_ns,
        max_rpo_seconds: req.rpo_seconds,
        rpo_met,
        checks,
        passed,
        evidence: None,
    };
    // The proof is kept in the vault it proves, readable with nothing but the vault and key.
    match crate::evidence::record_restore_test(vault, req.test.as_deref(), &report) {
        Ok(id) => report.evidence = Some(id.to_hex()),
        Err(e) => ctx.sink.warning(&format!(
            "the evidence of this test could not be stored: {e}"
        )),
    }
    Ok(report)
}

/// Where a test restored to.
enum Target {
    Dir(PathBuf),
    Sqlite(PathBuf),
    Postgres(Box<postgres::PgTarget>),
    Mysql(Box<mariadb::MyTarget>),
    /// A base backup whose server did not recover: every check fails.
    Unrecovered,
}

fn request(id: &Id, target: RestoreTarget) -> RestoreRequest {
    RestoreRequest {
        point: id.to_hex(),
        target,
    }
}

fn phase(name: &str, since: Instant) -> Phase {
    Phase {
        name: name.into(),
        seconds: since.elapsed().as_secs_f64(),
    }
}

/// The first mismatches, one per line, and how many more.
fn summarize(all: &[String]) -> String {
    let mut s = all.iter().take(10).cloned().collect::<Vec<_>>().join("; ");
    if all.len() > 10 {
        s.push_str(&format!("; and {} more", all.len() - 10));
    }
    s
}

/// The point of `resource` that `sel` names, among the trusted points (by id: any point).
pub fn select(vault: &Vault, resource: &str, sel: &Select) -> Result<(Id, Manifest)> {
    if let Select::Point { id } = sel {
        let (id, m) = vault.find_point(id)?;
        if m.resource != resource {
            return Err(Error::Input(format!(
                "point {} is of resource {:?}, not {resource:?}",
                id.short(),
                m.resource
            )));
        }
        return Ok((id, m));
    }
    let (points, _) = vault.list_points()?;
    let (mut trusted, _) = holdfast_engine::trust::split(
        vault,
        points
            .into_iter()
            .filter(|(_, m)| m.resource == resource)
            .collect(),
    )?;
    trusted.sort_by_key(|(id, m)| (m.time_ns, *id));
    let none = || Error::NotFound(format!("no recovery point of resource {resource:?}"));
    match sel {
        Select::Latest => trusted.pop().ok_or_else(none),
        Select::Oldest => trusted.into_iter().next().ok_or_else(none),
        Select::RandomWithin { within } => {
            let span = holdfast_retention::parse_span(within)
                .map_err(|e| Error::Input(format!("random_within {within:?}: {e}")))?;
            let newest = trusted.last().map(|(_, m)| m.time_ns).ok_or_else(none)?;
            let from = holdfast_retention::add_span(newest, -span);
            let mut window: Vec<_> = trusted
                .into_iter()
                .filter(|(_, m)| m.time_ns >= from)
                .collect();
            let r = u64::from_le_bytes(holdfast_engine::random_bytes::<8>());
            let i = (r % window.len().max(1) as u64) as usize;
            Ok(window.swap_remove(i))
        }
        Select::Point { .. } => Err(none()),
    }
}
