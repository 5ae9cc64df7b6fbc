//! `holdfast evidence list | show ID`: the proofs of recovery kept in the vault itself.

use holdfast_engine::Result;
use holdfast_ops::evidence::{self, EvidenceRequest};
use holdfast_ops::time::humanize_secs as secs;

use super::Ctx;
use crate::cli::EvidenceCommand;
use crate::{exit, output};

pub fn run(ctx: &Ctx, c: EvidenceCommand) -> Result<i32> {
    let term = output::Term::plain(ctx.json, ctx.quiet);
    let vault = ctx.open_to(&term)?;
    match c {
        EvidenceCommand::List {
            resource,
            name,
            last,
        } => {
            let req = EvidenceRequest {
                resource,
                name,
                last,
                kind: None,
            };
            let l = evidence::list(&vault, &req)?;
            for d in &l.damage {
                eprintln!(
                    "holdfast: warning: {} is not trusted evidence ({})",
                    d.object, d.reason
                );
            }
            let code = if l.damage.is_empty() {
                exit::OK
            } else {
                exit::DAMAGED
            };
            if ctx.json {
                ctx.print_report(&l);
                return Ok(code);
            }
            println!(
                "{:<8}  {:<19}  {:<14}  {:<20}  {:<8}  {:<6}  {:>9}  {:>9}  HOST",
                "ID", "TIME (UTC)", "TEST", "RESOURCE", "POINT", "RESULT", "RTO", "RPO"
            );
            for e in &l.evidence {
                println!(
                    "{:<8}  {:<19}  {:<14}  {:<20}  {:<8}  {:<6}  {:>9}  {:>9}  {}",
                    &e.id[..8],
                    output::time_short(e.time_ns.div_euclid(1_000_000_000)),
                    e.name.as_deref().unwrap_or("-"),
                    e.resource,
                    &e.point[..e.point.len().min(8)],
                    if e.passed { "passed" } else { "FAILED" },
                    secs(e.rto_seconds),
                    secs(e.rpo_seconds),
                    e.host
                );
            }
            println!("{} record(s)", l.evidence.len());
            Ok(code)
        }
        EvidenceCommand::Show { id } => {
            let (id, e) = evidence::show(&vault, &id)?;
            if ctx.json {
                ctx.print_report(&serde_json::json!({ "id": id.to_hex(), "evidence": e }));
                return Ok(exit::OK);
            }
            println!("evidence {}", id.to_hex());
            println!(
                "  {} {} of {} (point {}): {}",
                e.kind,
                e.name.as_deref().unwrap_or("-"),
                e.resource,
                e.point,
                if e.passed { "passed" } else { "FAILED" }
            );
            println!(
                "  at {} on {} by {}; RTO {}, RPO {}",
                holdfast_ops::time::rfc3339_ns(e.time_ns),
                e.host,
                e.program,
                secs(e.rto_seconds),
                secs(e.rpo_seconds)
            );
            if let Some(checks) = e.report.get("checks").and_then(|c| c.as_array()) {
                for c in checks {
                    println!(
                        "  {} {}: {}",
                        if c["passed"] == true { "ok  " } else { "FAIL" },
                        c["check"].as_str().unwrap_or("?"),
                        c["detail"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(exit::OK)
        }
    }
}
