//! `holdfast drill run NAME` and `holdfast drill report [NAME]`: disaster-recovery drills
//! from the copy vault alone (no catalog is read or written, the primary vault is not
//! opened), their reports written as files and kept in the vault as evidence; and `holdfast
//! runbook`, whose "last tested" lines come from those reports.

use std::path::{Path, PathBuf};

use holdfast_engine::{Error, Result};
use holdfast_ops::drill::{self, DrillReport};

use super::Ctx;
use crate::cli::{DrillCommand, PlanArgs, RunbookArgs};
use crate::{exit, output};

pub fn run(ctx: &Ctx, c: DrillCommand) -> Result<i32> {
    match c {
        DrillCommand::Run {
            name,
            report_dir,
            plan,
        } => run_drill(ctx, &name, report_dir.as_deref(), &plan),
        DrillCommand::Report { name, last, plan } => report(ctx, name.as_deref(), last, &plan),
    }
}

fn run_drill(ctx: &Ctx, name: &str, dir: Option<&Path>, a: &PlanArgs) -> Result<i32> {
    let loaded = super::schedule::load_plan(a.plan.clone(), a.state_dir.as_ref())?;
    let req = holdfast_daemon::commands::drill(&loaded, name)
        .map_err(super::restore_test::prepare_error)?;
    let term = output::Term::plain(ctx.json, ctx.quiet);
    // Only the drill's vault, with the plan's secret for it: what is left after the primary
    // site is lost.
    let r =
        super::restore_test::in_plan_vault(ctx, &loaded, &req.vault, "drill", &term, |o, v| {
            drill::run(o, v, &req)
        })?;
    let files = write_files(&r, dir.unwrap_or(Path::new(".")))?;
    if ctx.json {
        ctx.print_report(&r);
    } else if !ctx.quiet {
        print(&r);
        for f in &files {
            println!("  report: {}", f.display());
        }
    }
    Ok(if r.passed { exit::OK } else { exit::DAMAGED })
}

/// `drill-NAME-YYYYMMDDTHHMMSSZ.{md,json,html}` in `dir`.
fn write_files(r: &DrillReport, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let stamp: String = r
        .started
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let safe: String = r
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = format!("drill-{safe}-{stamp}Z");
    let json = serde_json::to_string_pretty(r)
        .map_err(|e| Error::Internal(format!("drill report: {e}")))?;
    let mut out = Vec::new();
    for (ext, text) in [
        ("md", drill::markdown(r)),
        ("json", json),
        ("html", drill::html(r)),
    ] {
        let p = dir.join(format!("{base}.{ext}"));
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
        out.push(p);
    }
    Ok(out)
}

fn secs(s: Option<f64>) -> String {
    s.map_or("-".into(), holdfast_ops::time::humanize_secs)
}

fn print(r: &DrillReport) {
    for x in &r.resources {
        let verdict = x.outcome.label();
        println!(
            "{}: {verdict}; point {}, RPO {}, RTO {}",
            x.resource,
            x.point.as_deref().map_or("-", |p| &p[..p.len().min(12)]),
            secs(x.rpo_seconds),
            secs(x.rto_seconds)
        );
        if let Some(e) = &x.error {
            println!("  {e}");
        }
        for c in x.checks.iter().filter(|c| !c.passed) {
            println!("  FAIL {}: {}", c.check, c.detail);
        }
    }
    println!(
        "drill {:?} from vault {:?}: {}; total RTO {} (target {}{})",
        r.name,
        r.vault,
        if r.passed { "passed" } else { "FAILED" },
        secs(Some(r.total_rto_seconds)),
        r.max_rto_seconds
            .map_or("-".into(), |m| secs(Some(m as f64))),
        if r.rto_met { "" } else { ": MISSED" }
    );
}

fn report(ctx: &Ctx, name: Option<&str>, last: usize, a: &PlanArgs) -> Result<i32> {
    let term = output::Term::plain(ctx.json, ctx.quiet);
    // The drill's own vault when the plan names it; else the vault of --vault / HOLDFAST_VAULT.
    let from_plan = name.and_then(|n| {
        let loaded = super::schedule::load_plan(a.plan.clone(), a.state_dir.as_ref()).ok()?;
        let v = loaded.resolved.drills.get(n)?.test.from.clone()?;
        Some((loaded, v))
    });
    let vault = match &from_plan {
        Some((loaded, v)) => {
            holdfast_daemon::preflight::open_named_vault(&loaded.plan, v, &ctx.s3)?
        }
        None => ctx.open_to(&term)?,
    };
    let drills = holdfast_ops::evidence::drills(&vault, name, last)?;
    if ctx.json {
        let v: Vec<serde_json::Value> = drills
            .iter()
            .map(|(id, r)| serde_json::json!({ "evidence": id.to_hex(), "report": r }))
            .collect();
        ctx.print_report(&v);
        return Ok(exit::OK);
    }
    if drills.is_empty() {
        println!("no drill reports in this vault");
        return Ok(exit::OK);
    }
    println!(
        "{:<20}  {:<16}  {:<8}  {:>10}  {:>10}  EVIDENCE",
        "STARTED (UTC)", "DRILL", "RESULT", "TOTAL RTO", "TARGET"
    );
    for (id, r) in &drills {
        println!(
            "{:<20}  {:<16}  {:<8}  {:>10}  {:>10}  {}",
            r.started.chars().take(19).collect::<String>(),
            r.name,
            if r.passed { "passed" } else { "FAILED" },
            secs(Some(r.total_rto_seconds)),
            r.max_rto_seconds
                .map_or("-".into(), |m| secs(Some(m as f64))),
            &id.to_hex()[..12]
        );
    }
    // The trend: each resource's recovery time, drill by drill (oldest first).
    let mut resources: Vec<&str> = Vec::new();
    for (_, r) in &drills {
        for x in &r.resources {
            if !resources.contains(&x.resource.as_str()) {
                resources.push(&x.resource);
            }
        }
    }
    println!("\nRTO per resource, oldest drill first:");
    for res in resources {
        let trend: Vec<String> = drills
            .iter()
            .map(|(_, r)| {
                r.resources
                    .iter()
                    .find(|x| x.resource == res)
                    .map_or("·".into(), |x| match x.outcome {
                        drill::Outcome::Recovered => secs(x.rto_seconds),
                        drill::Outcome::Failed => format!("{} FAIL", secs(x.rto_seconds)),
                        drill::Outcome::NotRecoverable => "NOT RECOVERABLE".into(),
                    })
            })
            .collect();
        println!("  {res:<20}  {}", trend.join("  →  "));
    }
    Ok(exit::OK)
}

/// `holdfast runbook`: the plan's recovery procedures, with each resource's newest drill.
pub fn runbook(ctx: &Ctx, a: RunbookArgs) -> Result<i32> {
    let loaded = super::schedule::load_plan(a.plan.plan.clone(), a.plan.state_dir.as_ref())?;
    if let Some(r) = &a.resource
        && !loaded.plan.resources.contains_key(r)
    {
        return Err(Error::NotFound(format!(
            "resource {r:?} is not in the plan"
        )));
    }
    let facts = if a.no_evidence {
        holdfast_daemon::runbook::DrillFacts::new()
    } else {
        drill_facts(ctx, &loaded)
    };
    let md = holdfast_daemon::runbook::markdown(&loaded, a.resource.as_deref(), &facts);
    if a.format == "html" {
        print!("{}", holdfast_daemon::runbook::html(&md));
    } else {
        print!("{md}");
    }
    Ok(exit::OK)
}

/// Per resource, what the newest drill report covering it says (from each drill's vault).
fn drill_facts(
    ctx: &Ctx,
    loaded: &holdfast_daemon::LoadedPlan,
) -> holdfast_daemon::runbook::DrillFacts {
    use holdfast_daemon::runbook::LastDrill;
    let mut facts = holdfast_daemon::runbook::DrillFacts::new();
    for (name, d) in &loaded.resolved.drills {
        let Some(v) = d.test.from.clone() else {
            continue;
        };
        let reports = holdfast_daemon::preflight::open_named_vault(&loaded.plan, &v, &ctx.s3)
            .and_then(|vault| holdfast_ops::evidence::drills(&vault, Some(name), 0));
        for res in &d.test.resources {
            let fact = match &reports {
                Err(e) => Err(format!(
                    "the vault {v:?} of drill {name:?} could not be read ({e})"
                )),
                Ok(list) => {
                    let newest = list.iter().rev().find_map(|(_, r)| {
                        r.resources
                            .iter()
                            .find(|x| x.resource == *res)
                            .map(|x| (r, x))
                    });
                    let Some((r, x)) = newest else { continue };
                    let last_passed = list.iter().rev().find_map(|(_, r)| {
                        r.resources
                            .iter()
                            .any(|x| x.resource == *res && x.outcome == drill::Outcome::Recovered)
                            .then(|| r.started.clone())
                    });
                    Ok(LastDrill {
                        drill: name.clone(),
                        vault: v.clone(),
                        started: r.started.clone(),
                        outcome: x.outcome.label().into(),
                        rto_seconds: x.rto_seconds,
                        last_passed,
                    })
                }
            };
            // A resource in several drills: the newest report wins.
            let newer = match (facts.get(res), &fact) {
                (Some(Ok(old)), Ok(new)) => new.started > old.started,
                (Some(Ok(_)), Err(_)) => false,
                _ => true,
            };
            if newer {
                facts.insert(res.clone(), fact);
            }
        }
    }
    facts
}
