//! `holdfast restore-test run NAME`: the plan's restore test run now, in this process, against
//! each resource's vault (or the test's `from` vault) opened with the plan's secret source.

use holdfast_daemon::commands::PrepareError;
use holdfast_engine::{Error, Result};
use holdfast_ops::restore_test::{self, RestoreTestReport};
use holdfast_ops::time::humanize_secs as humanize;
use serde::Serialize;

use super::Ctx;
use crate::cli::PlanArgs;
use crate::{exit, output};

/// The `--json` output: every resource's report, and the resources that could not be tested.
#[derive(Serialize)]
struct TestOutput<'a> {
    test: &'a str,
    passed: bool,
    results: Vec<RestoreTestReport>,
    errors: Vec<TestError>,
}

#[derive(Serialize)]
struct TestError {
    resource: String,
    vault: String,
    error: String,
}

pub(super) fn prepare_error(e: PrepareError) -> Error {
    match e {
        PrepareError::Missing { .. } => Error::NotFound(e.to_string()),
        PrepareError::SecretEnv { .. } => Error::Input(e.to_string()),
    }
}

pub fn run(ctx: &Ctx, name: &str, a: &PlanArgs) -> Result<i32> {
    let loaded = super::schedule::load_plan(a.plan.clone(), a.state_dir.as_ref())?;
    let runs = holdfast_daemon::commands::restore_test(&loaded, name).map_err(prepare_error)?;
    let term = output::Term::plain(ctx.json, ctx.quiet);
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let mut last_error = None;
    for run in runs {
        let outcome = test_one(ctx, &loaded, &term, &run);
        match outcome {
            Ok(r) => {
                if !ctx.json && !ctx.quiet {
                    print_report(&r, &run.vault);
                }
                results.push(r);
            }
            Err(e) => {
                eprintln!(
                    "holdfast: error: restore test {name:?}, resource {:?} from vault {:?}: {e} (hint: {})",
                    run.resource,
                    run.vault,
                    exit::hint(&e)
                );
                errors.push(TestError {
                    resource: run.resource.clone(),
                    vault: run.vault.clone(),
                    error: e.to_string(),
                });
                last_error = Some(e);
            }
        }
    }
    let passed = errors.is_empty() && results.iter().all(|r| r.passed);
    let failed_checks = results.iter().any(|r| !r.passed);
    if ctx.json {
        ctx.print_report(&TestOutput {
            test: name,
            passed,
            results,
            errors,
        });
    } else if !ctx.quiet {
        println!(
            "restore test {name:?}: {}",
            if passed { "passed" } else { "FAILED" }
        );
    }
    Ok(match (last_error, failed_checks) {
        (Some(e), _) => exit::code(&e),
        (None, true) => exit::DAMAGED,
        (None, false) => exit::OK,
    })
}

/// A restore test as the worker runs it: the vault from the environment, as every worker job.
pub fn run_request(
    ctx: &Ctx,
    sink: &dyn holdfast_ops::Sink,
    req: &holdfast_ops::restore_test::RestoreTestRequest,
) -> Result<RestoreTestReport> {
    let (vault, session) = ctx.open_with_session_to(sink, "restore test", false)?;
    let r = ctx.with_ops(sink, |o| restore_test::run(o, &vault, req));
    if let Some(s) = session {
        s.end();
    }
    r
}

fn test_one(
    ctx: &Ctx,
    loaded: &holdfast_daemon::LoadedPlan,
    term: &output::Term,
    run: &holdfast_daemon::commands::TestRun,
) -> Result<RestoreTestReport> {
    in_plan_vault(ctx, loaded, &run.vault, "restore test", term, |o, vault| {
        restore_test::run(o, vault, &run.request)
    })
}

/// Open the plan's vault `name`, then run `f` on it inside a session of `purpose` with its
/// index loaded (a restore test, a drill).
pub(super) fn in_plan_vault<T>(
    ctx: &Ctx,
    loaded: &holdfast_daemon::LoadedPlan,
    name: &str,
    purpose: &str,
    term: &output::Term,
    f: impl FnOnce(&holdfast_ops::Context<'_>, &holdfast_engine::Vault) -> Result<T>,
) -> Result<T> {
    let vault = holdfast_daemon::preflight::open_named_vault(&loaded.plan, name, &ctx.s3)?;
    holdfast_ops::session::within(&vault, purpose, false, |_| {
        holdfast_ops::session::load_index(&vault, term)?;
        ctx.with_ops(term, |o| f(o, &vault))
    })
}

fn print_report(r: &RestoreTestReport, vault: &str) {
    println!(
        "{} ({}): point {} from vault {vault:?}, {} old",
        r.resource,
        r.kind,
        &r.point[..r.point.len().min(12)],
        humanize(r.rpo_seconds)
    );
    for c in &r.checks {
        println!(
            "  {} {}: {}",
            if c.passed { "ok  " } else { "FAIL" },
            c.check,
            c.detail
        );
    }
    let rto = objective("RTO", r.rto_seconds, r.max_rto_seconds, r.rto_met);
    let rpo = objective("RPO", r.rpo_seconds, r.max_rpo_seconds, r.rpo_met);
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|p| format!("{} {:.2}s", p.name, p.seconds))
        .collect();
    println!("  {rto}, {rpo}; {}", phases.join(", "));
    if let Some(e) = &r.evidence {
        println!(
            "  evidence {} kept in vault {vault:?} (holdfast evidence show {})",
            &e[..e.len().min(12)],
            &e[..e.len().min(12)]
        );
    }
}

/// `RTO 2s (objective 15m)`, `… : MISSED)`, or without an objective `RTO 2s`.
fn objective(what: &str, measured: f64, max: Option<u64>, met: bool) -> String {
    match max {
        Some(m) => format!(
            "{what} {} (objective {}{})",
            humanize(measured),
            humanize(m as f64),
            if met { "" } else { ": MISSED" }
        ),
        None => format!("{what} {} (no objective)", humanize(measured)),
    }
}
