//! Restore tests of PostgreSQL logical points: a scratch server
//! ([`holdfast_sources::pg_scratch`]) started in the test's folder, every database of the
//! point restored into it with `pg_restore` (globals first), `pg_amcheck` over every
//! database as the built-in check; `sql`, `row_counts` (against the facts taken in the
//! dump's snapshot, [`holdfast_sources::pg_facts`]) and `command` checks against it.
//!
//! Base backups ([`pitr`]) are recovered instead: laid out with the WAL they need, the server
//! replays the archive to its end, then the same checks run (`row_counts` excepted).

pub(super) mod pitr;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use holdfast_engine::point::Manifest;
use holdfast_engine::{Id, Result, Vault};
use holdfast_sources::pg_facts::{self, DbFacts};
use holdfast_sources::pg_scratch::ScratchCluster;
use holdfast_sources::postgres;

use super::{CheckResult, Phase, phase, request};
use crate::Context;
use crate::restore::{RestoreReport, RestoreTarget, restore};

/// A restored scratch server and the databases in it.
pub(super) struct PgTarget {
    /// The server (stopped when dropped).
    pub cluster: ScratchCluster,
    /// The point's databases, restored.
    pub databases: Vec<String>,
    /// Whether the restore succeeded.
    pub restored: bool,
    /// A base backup recovered from the archive (no row counts to compare with).
    pub physical: bool,
}

impl PgTarget {
    /// The databases SQL checks run in: all but `postgres`, unless it is the only one.
    fn user_databases(&self) -> Vec<&str> {
        let others: Vec<&str> = self
            .databases
            .iter()
            .map(String::as_str)
            .filter(|d| *d != "postgres")
            .collect();
        if others.is_empty() {
            self.databases.iter().map(String::as_str).collect()
        } else {
            others
        }
    }

    /// The environment of a check command: `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
    /// `PGDATABASE` (the first user database) and `HOLDFAST_RESTORE_DATABASES` (all, comma
    /// separated).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = self.cluster.env();
        if let Some(db) = self.user_databases().first() {
            v.push(("PGDATABASE".into(), db.to_string()));
        }
        v.push((
            "HOLDFAST_RESTORE_DATABASES".into(),
            self.databases.join(","),
        ));
        v
    }
}

/// Start the scratch server in `scratch/pg`, restore point `id` into it and run
/// `pg_amcheck`: phases `start`, `restore` and `builtin_check`; the built-in checks
/// `pg_restore` and `pg_amcheck`.
pub(super) fn prepare(
    ctx: &Context<'_>,
    vault: &Vault,
    id: &Id,
    scratch: &Path,
    phases: &mut Vec<Phase>,
    checks: &mut Vec<CheckResult>,
) -> Result<PgTarget> {
    let t = Instant::now();
    let cluster = ScratchCluster::start(&scratch.join("pg"))?;
    phases.push(phase("start", t));
    let t = Instant::now();
    // The URL carries the scratch password; the restore hands it to the tools as PGPASSWORD.
    let url = cluster.url();
    let r = restore(
        ctx,
        vault,
        &request(
            id,
            RestoreTarget::Postgres {
                url,
                databases: vec![],
                as_database: None,
                jobs: 2,
            },
        ),
    );
    phases.push(phase("restore", t));
    let (databases, restored) = match &r {
        Ok(RestoreReport::Into(i)) => (i.restored.clone(), true),
        _ => (vec![], false),
    };
    checks.push(CheckResult {
        check: "pg_restore".into(),
        passed: restored,
        detail: match &r {
            Ok(_) => format!(
                "{} database(s) restored: {}",
                databases.len(),
                databases.join(", ")
            ),
            Err(e) => e.to_string(),
        },
        seconds: t.elapsed().as_secs_f64(),
    });
    if restored {
        builtin_check(&cluster, phases, checks);
    }
    Ok(PgTarget {
        cluster,
        databases,
        restored,
        physical: false,
    })
}

/// The built-in check, `pg_amcheck`, as check and phase `builtin_check`.
pub(super) fn builtin_check(
    cluster: &ScratchCluster,
    phases: &mut Vec<Phase>,
    checks: &mut Vec<CheckResult>,
) {
    let c = Instant::now();
    let result = cluster
        .conn()
        .map_err(|e| e.to_string())
        .and_then(|conn| amcheck(&conn, cluster));
    checks.push(CheckResult::timed("pg_amcheck", c, result));
    phases.push(phase("builtin_check", c));
}

/// `pg_amcheck --all --install-missing`: every table and B-tree index of every database.
fn amcheck(
    conn: &postgres::PgConn,
    cluster: &ScratchCluster,
) -> std::result::Result<String, String> {
    let tool = postgres::tool("pg_amcheck").map_err(|e| e.to_string())?;
    let mut c = conn.command(&tool);
    c.args(["--all", "--install-missing", "-h", cluster.host(), "-p"])
        .arg(cluster.port().to_string())
        .args(["-U", cluster.user()]);
    c.stdin(std::process::Stdio::null());
    let out = c
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let text = text.trim();
    if out.status.success() && text.is_empty() {
        Ok("no corruption found in any table or B-tree index".into())
    } else if out.status.success() {
        Ok(super::clip(text))
    } else {
        Err(format!("{}: {}", out.status, super::clip(text)))
    }
}

fn ready(t: &PgTarget) -> std::result::Result<postgres::PgConn, String> {
    if !t.restored {
        return Err("the databases were not restored".into());
    }
    t.cluster.conn().map_err(|e| e.to_string())
}

/// A query that must return a true value in every user database.
pub(super) fn sql(t: &PgTarget, q: &str) -> std::result::Result<String, String> {
    let conn = ready(t)?;
    let mut said = Vec::new();
    for db in t.user_databases() {
        let v = postgres::query(&conn, db, q).map_err(|e| format!("{db}: {e}"))?;
        let v = v.lines().next().unwrap_or("").trim();
        let ok = super::checks::truthy(v).map_err(|e| format!("{db}: {e}"))?;
        said.push(format!("{db}: {ok}"));
    }
    Ok(said.join("; "))
}

/// Row counts and schema of every database against the facts of the dump's snapshot.
pub(super) fn row_counts(t: &PgTarget, m: &Manifest) -> std::result::Result<String, String> {
    if t.physical {
        return Err(
            "row_counts needs a logical point: a base backup recovers to the end of \
                    the archive, past any counts taken at backup (use sql checks)"
                .into(),
        );
    }
    let conn = ready(t)?;
    let facts = &m.source.facts;
    let recorded =
        facts
            .get(pg_facts::ROW_COUNTS_FACT)
            .ok_or_else(|| match facts.get("facts_skipped") {
                Some(why) => format!("the point recorded no row counts: {why}"),
                None => {
                    "the point recorded no row counts (it was written by an older holdfast)".into()
                }
            })?;
    let rows: BTreeMap<String, BTreeMap<String, u64>> =
        serde_json::from_str(recorded).map_err(|e| format!("the recorded row counts: {e}"))?;
    let schemas: BTreeMap<String, String> = facts
        .get(pg_facts::SCHEMA_FACT)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    // Type names and index definitions are printed by the server: compare them only when
    // the scratch server is the point's major version.
    let here =
        postgres::query(&conn, "postgres", "SHOW server_version").map_err(|e| e.to_string())?;
    let same_major = facts
        .get("server_version")
        .and_then(|v| pg_facts::major(v))
        .is_some_and(|m| Some(m) == pg_facts::major(&here));
    let mut diffs = Vec::new();
    let (mut tables, mut total) = (0usize, 0u64);
    for (db, want_rows) in &rows {
        if !t.databases.contains(db) {
            diffs.push(format!("{db}: not restored"));
            continue;
        }
        let got = pg_facts::facts(&conn, db).map_err(|e| e.to_string())?;
        let want = DbFacts {
            rows: want_rows.clone(),
            schema: schemas.get(db).cloned().unwrap_or_default(),
        };
        let schema = same_major && schemas.contains_key(db);
        diffs.extend(pg_facts::differences(&want, &got, db, schema));
        tables += got.rows.len();
        total += got.rows.values().sum::<u64>();
    }
    if diffs.is_empty() {
        Ok(format!(
            "{} database(s), {tables} tables, {total} rows, as at backup{}",
            rows.len(),
            if same_major {
                ", schema as at backup"
            } else {
                " (schema not compared: another major version)"
            }
        ))
    } else {
        Err(super::summarize(&diffs))
    }
}
