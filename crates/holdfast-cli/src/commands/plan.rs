//! `holdfast plan check`.

use std::path::PathBuf;

use holdfast_engine::{Error, Result};

use super::Ctx;
use crate::exit;

pub fn check(ctx: &Ctx, file: Option<PathBuf>) -> Result<i32> {
    let file = file
        .or_else(|| std::env::var_os("HOLDFAST_PLAN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("holdfast.toml"));
    let src = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
    match holdfast_plan::check(&src) {
        Ok(plan) => {
            if ctx.json {
                ctx.print_json(&serde_json::json!({"ok": true, "file": file.display().to_string(),
                    "vaults": plan.vaults.len(), "categories": plan.categories.len(), "resources": plan.resources.len()}));
            } else if !ctx.quiet {
                println!(
                    "{}: plan OK ({} vaults, {} categories, {} resources, {} notification channels)",
                    file.display(),
                    plan.vaults.len(),
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
