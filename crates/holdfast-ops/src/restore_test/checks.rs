//! The user's checks against a restored target: `sql`, `row_counts` and `command`, per kind
//! of target.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use holdfast_engine::point::Manifest;
use holdfast_sources::sqlite;

use super::{Check, CheckResult, SCRATCH_ENV, Target, mariadb, postgres, summarize};

/// At most this much of a command's output goes into its check's detail.
const OUTPUT_LIMIT: usize = 4096;

/// `text`, cut to [`OUTPUT_LIMIT`] bytes (on a character boundary, marked with `…`).
pub(super) fn clip(text: &str) -> String {
    let mut text = text.to_string();
    if text.len() > OUTPUT_LIMIT {
        let mut cut = OUTPUT_LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// What a check against a base backup that did not recover says.
const UNRECOVERED: &str = "the base backup did not recover (see the recovery check)";

/// A check's name in the report.
fn describe(check: &Check) -> String {
    match check {
        Check::Sql(q) => format!("sql: {q}"),
        Check::RowCounts(_) => "row_counts".into(),
        Check::Command(line) => format!("command: {line}"),
    }
}

pub(super) fn run_check(
    check: &Check,
    target: &Target,
    scratch: &Path,
    m: &Manifest,
    restored: bool,
) -> CheckResult {
    let t = Instant::now();
    let result = match (check, target) {
        (_, Target::Unrecovered) => Err(UNRECOVERED.into()),
        (Check::Sql(q), Target::Postgres(p)) => postgres::sql(p, q),
        (Check::RowCounts(_), Target::Postgres(p)) => postgres::row_counts(p, m),
        (Check::Sql(q), Target::Mysql(t)) => mariadb::sql(t, q),
        (Check::RowCounts(_), Target::Mysql(_)) => Err(
            "row_counts needs a sqlite or postgres point: MariaDB dumps record no row counts"
                .into(),
        ),
        (Check::Sql(q), _) => sql_check(target, q, restored),
        (Check::RowCounts(_), _) => row_counts_check(target, m, restored),
        (Check::Command(line), _) => command_check(target, scratch, line),
    };
    CheckResult::timed(&describe(check), t, result)
}

/// A query's first value `v` as a check: passed when it is true.
pub(super) fn truthy(v: &str) -> std::result::Result<String, String> {
    if sqlite::is_true(v) {
        Ok(format!("returned {v}"))
    } else {
        Err(format!("returned {v:?}, not true"))
    }
}

fn sqlite_target(target: &Target, restored: bool) -> std::result::Result<&Path, String> {
    match target {
        Target::Sqlite(p) if restored => Ok(p),
        Target::Sqlite(_) => Err("the database was not restored".into()),
        Target::Dir(_) => Err("a SQL check needs a database point (this one holds files)".into()),
        Target::Postgres(_) | Target::Mysql(_) => Err("not a SQLite database".into()),
        Target::Unrecovered => Err(UNRECOVERED.into()),
    }
}

fn sql_check(target: &Target, q: &str, restored: bool) -> std::result::Result<String, String> {
    let db = sqlite_target(target, restored)?;
    let v = sqlite::query_value(db, q).map_err(|e| e.to_string())?;
    if sqlite::is_true(&v) {
        Ok(format!("returned {v}"))
    } else {
        Err(format!("returned {v}, not true"))
    }
}

fn row_counts_check(
    target: &Target,
    m: &Manifest,
    restored: bool,
) -> std::result::Result<String, String> {
    let db = sqlite_target(target, restored)?;
    let recorded = m
        .source
        .facts
        .get(sqlite::ROW_COUNTS_FACT)
        .ok_or("the point recorded no row counts (it was written by an older holdfast)")?;
    let want: BTreeMap<String, u64> =
        serde_json::from_str(recorded).map_err(|e| format!("the recorded row counts: {e}"))?;
    let (json, schema) = sqlite::snapshot_facts(db).map_err(|e| e.to_string())?;
    let got: BTreeMap<String, u64> = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let mut diffs = Vec::new();
    for name in want
        .keys()
        .chain(got.keys().filter(|k| !want.contains_key(*k)))
    {
        match (want.get(name), got.get(name)) {
            (Some(w), Some(g)) if w == g => {}
            (Some(w), Some(g)) => diffs.push(format!("{name}: {g} rows, {w} at backup")),
            (Some(_), None) => diffs.push(format!("{name}: missing")),
            (None, _) => diffs.push(format!("{name}: not in the backup")),
        }
    }
    if let Some(fp) = m.source.facts.get(sqlite::SCHEMA_FACT)
        && *fp != schema
    {
        diffs.push("the schema differs from the one recorded at backup".into());
    }
    if diffs.is_empty() {
        let rows: u64 = got.values().sum();
        Ok(format!("{} tables, {rows} rows, as at backup", got.len()))
    } else {
        Err(summarize(&diffs))
    }
}

fn command_check(
    target: &Target,
    scratch: &Path,
    line: &str,
) -> std::result::Result<String, String> {
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(line).stdin(std::process::Stdio::null());
    holdfast_sources::child_env::for_program(&mut cmd);
    // A test that is killed takes its check with it.
    holdfast_sources::child_env::die_with_parent(&mut cmd, libc::SIGKILL);
    cmd.env(SCRATCH_ENV, scratch);
    match target {
        Target::Dir(d) => cmd.env("HOLDFAST_RESTORE_DIR", d),
        Target::Sqlite(p) => cmd.env("HOLDFAST_RESTORE_DB", p),
        Target::Postgres(p) => cmd.envs(p.env()),
        Target::Mysql(t) => cmd.envs(t.server.env()),
        Target::Unrecovered => return Err(UNRECOVERED.into()),
    };
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let text = clip(text.trim());
    if out.status.success() {
        Ok(if text.is_empty() {
            "exit 0".into()
        } else {
            text
        })
    } else {
        Err(format!(
            "{}{}",
            out.status,
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
        ))
    }
}
