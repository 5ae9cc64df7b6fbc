//! `holdfast plan check`.

use std::path::PathBuf;

use holdfast_engine::{Error, Result};

use super::{Ctx, now_ns};
use crate::exit;

pub fn check(ctx: &Ctx, file: Option<PathBuf>, connect: bool) -> Result<i32> {
    let file = super::schedule::plan_path(file);
    let src = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
    let checked = holdfast_plan::check(&src).and_then(|plan| {
        if !connect {
            return Ok(plan);
        }
        let resolved = holdfast_plan::ResolvedPlan::of(&plan).map_err(|e| {
            vec![holdfast_plan::Problem {
                line: 1,
                message: e.to_string(),
                fix: "this is a bug in plan check: please report it with the plan".into(),
            }]
        })?;
        let problems = holdfast_daemon::preflight::check(&src, &plan, &resolved, &ctx.s3, now_ns());
        if problems.is_empty() {
            Ok(plan)
        } else {
            Err(problems)
        }
    });
    match checked {
        Ok(plan) => {
            if ctx.json {
                ctx.print_json(&serde_json::json!({"ok": true, "file": file.display().to_string(),
                    "vaults": plan.vaults.len(), "categories": plan.categories.len(), "resources": plan.resources.len()}));
            } else if !ctx.quiet {
                println!(
                    "{}: plan OK ({} vaults{}, {} categories, {} resources, {} notification channels)",
                    file.display(),
                    plan.vaults.len(),
                    if connect { " opened" } else { "" },
                    plan.categories.len(),
                    plan.resources.len(),
                    plan.notifications.len()
                );
            }
            Ok(exit::OK)
        }
        Err(problems) => {
            if ctx.json {
                let v: Vec<_> = problems
                    .iter()
                    .map(
                        |p| serde_json::json!({"line": p.line, "message": p.message, "fix": p.fix}),
                    )
                    .collect();
                ctx.print_json(&serde_json::json!({"ok": false, "file": file.display().to_string(), "problems": v}));
            }
            for p in &problems {
                eprintln!(
                    "{}:{}: {} (fix: {})",
                    file.display(),
                    p.line,
                    p.message,
                    p.fix
                );
            }
            Ok(exit::ERROR)
        }
    }
}

/// `ns` on the wall clock of `tz`.
fn local_in(tz: &jiff::tz::TimeZone, ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .unwrap_or_default()
}

/// `plan show`: what will run when, per resource, in each category's time zone.
pub fn show(ctx: &Ctx, file: Option<PathBuf>, count: usize) -> Result<i32> {
    let path = super::schedule::plan_path(file);
    let loaded = match holdfast_daemon::LoadedPlan::load(&path) {
        Ok(p) => p,
        Err(holdfast_daemon::LoadError::Invalid { problems, .. }) => {
            for p in &problems {
                eprintln!(
                    "{}:{}: {} (fix: {})",
                    path.display(),
                    p.line,
                    p.message,
                    p.fix
                );
            }
            return Ok(exit::ERROR);
        }
        Err(e) => return Err(Error::Input(e.to_string())),
    };
    let now = super::now_ns();
    let mut rows = Vec::new();
    for (name, r) in &loaded.plan.resources {
        let cat_name = r.category.get_ref();
        let Some(c) = loaded.plan.categories.get(cat_name) else {
            continue;
        };
        // plan check has parsed every category's schedule.
        let Some(s) = loaded.schedule_of(name) else {
            continue;
        };
        let runs = s.upcoming(now, count);
        let copies: Vec<String> = c.copy_to.iter().map(|d| d.get_ref().clone()).collect();
        rows.push((
            name.clone(),
            r.kind.get_ref().as_str().to_string(),
            cat_name.clone(),
            c.vault.get_ref().clone(),
            copies,
            s.expr().to_string(),
            s.zone_name().to_string(),
            c.rpo.as_ref().map(|x| x.get_ref().clone()),
            runs.iter()
                .map(|n| local_in(s.zone(), *n))
                .collect::<Vec<_>>(),
            runs,
        ));
    }
    for (name, v) in &loaded.plan.vaults {
        let (Some(vs), Some(s)) = (&v.verify, loaded.verify_of(name).map(|x| &x.schedule)) else {
            continue;
        };
        let runs = s.upcoming(now, count);
        rows.push((
            "*".into(),
            format!("verify:{}", vs.depth()),
            "-".into(),
            name.clone(),
            vec![],
            s.expr().to_string(),
            s.zone_name().to_string(),
            None,
            runs.iter().map(|n| local_in(s.zone(), *n)).collect(),
            runs,
        ));
    }
    if ctx.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"resource": r.0, "kind": r.1, "category": r.2, "vault": r.3,
                    "copy_to": r.4, "schedule": r.5, "timezone": r.6, "rpo": r.7,
                    "next_runs": r.9.iter().map(|n| holdfast_daemon::runner::rfc3339(*n)).collect::<Vec<_>>()})
            })
            .collect();
        ctx.print_json(&serde_json::Value::Array(v));
        return Ok(exit::OK);
    }
    println!(
        "{:<16}  {:<13}  {:<18}  {:<14}  {:<16}  {:<5}  NEXT RUNS (category time zone)",
        "RESOURCE", "KIND", "CATEGORY", "VAULT -> COPY", "SCHEDULE", "RPO"
    );
    for r in &rows {
        let vaults = if r.4.is_empty() {
            r.3.clone()
        } else {
            format!("{} -> {}", r.3, r.4.join(","))
        };
        println!(
            "{:<16}  {:<13}  {:<18}  {:<14}  {:<16}  {:<5}  {}",
            r.0,
            r.1,
            r.2,
            vaults,
            r.5,
            r.7.as_deref().unwrap_or("-"),
            r.8.join(", ")
        );
    }
    Ok(exit::OK)
}
