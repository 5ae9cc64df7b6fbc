//! `lock` and `hold`.

use holdfast_engine::protect::{self, Hold, LockMode, VaultLock};
use holdfast_engine::{Error, Result};
use holdfast_ops::protect as ops;
use holdfast_retention::parse_span;

use super::{Ctx, by, now_ns};
use crate::cli::{HoldCommand, LockCommand};
use crate::{exit, output};

fn span(flag: &str, s: &str) -> Result<()> {
    parse_span(s)
        .map(|_| ())
        .map_err(|e| Error::Input(format!("{flag}: {e}")))
}

pub fn lock(ctx: &Ctx, c: LockCommand) -> Result<i32> {
    let vault = ctx.unlock()?;
    vault.require_full("changing or reading the vault lock")?;
    let now = now_ns();
    match c {
        LockCommand::Set {
            mode,
            min_retention,
            max_retention,
            cooling_off,
            bypass_governance,
        } => {
            // The flags are checked here so an error names them; the operation checks again.
            span("--min-retention", &min_retention)?;
            if let Some(m) = &max_retention {
                span("--max-retention", m)?;
            }
            span("--cooling-off", &cooling_off)?;
            let req = ops::LockRequest {
                mode: if mode == "compliance" {
                    LockMode::Compliance
                } else {
                    LockMode::Governance
                },
                min_retention,
                max_retention,
                cooling_off,
                bypass_governance,
            };
            let r = ops::set_lock(&vault, &req, &by(), now)?;
            print_report(ctx, &r, now);
        }
        LockCommand::Apply => {
            let r = ops::apply_lock(&vault, now)?;
            if let Some(a) = &r.applied {
                print_applied(ctx, a);
            }
        }
        LockCommand::Show => {
            let hist = protect::history(&vault)?;
            let st = hist.last().cloned().unwrap_or_default();
            if ctx.json {
                ctx.print_json(&serde_json::json!({
                    "lock": st.lock, "holds": st.holds,
                    "history": hist.iter().filter_map(|p| p.event.clone()).collect::<Vec<_>>(),
                }));
            } else {
                print_state(ctx, &st.lock, &st.holds, now);
                if !hist.is_empty() {
                    println!("history:");
                    for e in hist.iter().filter_map(|p| p.event.as_ref()) {
                        println!("  {}  {}  {}", output::time_ns(e.time_ns), e.by, e.action);
                    }
                }
            }
        }
        LockCommand::Remove { bypass_governance } => {
            let r = ops::remove_lock(&vault, bypass_governance, &by(), now)?;
            print_report(ctx, &r, now);
        }
    }
    Ok(exit::OK)
}

/// Print a protection change: the new state, then what applying the lock to storage did.
fn print_report(ctx: &Ctx, r: &ops::ProtectionReport, now: i64) {
    if ctx.json {
        ctx.print_report(r);
    } else {
        print_state(ctx, &r.lock, &r.holds, now);
    }
    if let Some(a) = &r.applied {
        print_applied(ctx, a);
    }
}

/// Say what applying storage retention did.
pub fn print_applied(ctx: &Ctx, r: &protect::RetentionReport) {
    if ctx.json || ctx.quiet {
        return;
    }
    if r.supported {
        println!(
            "storage retention: {} objects retained{}",
            r.objects,
            r.latest_until
                .map(|u| format!(" (latest until {})", output::time_short(u)))
                .unwrap_or_default(),
        );
        match (&r.default_days, &r.default_error) {
            (Some(d), _) => println!("new objects get {d} days by the bucket's default retention"),
            (None, Some(e)) => eprintln!(
                "holdfast: warning: could not set the bucket's default retention ({e}); \
                 set it on the bucket, or run `holdfast lock apply` after backups"
            ),
            _ => {}
        }
    } else {
        println!(
            "storage retention: not available here (enforced by holdfast only; use an S3 bucket with Object Lock for storage-enforced retention)"
        );
    }
}

fn print_state(ctx: &Ctx, lock: &Option<VaultLock>, holds: &[Hold], now: i64) {
    if ctx.quiet {
        return;
    }
    match lock {
        None => println!("vault lock: none"),
        Some(l) => {
            let mode = match l.mode {
                LockMode::Governance => "governance",
                LockMode::Compliance => "compliance",
            };
            println!(
                "vault lock: {mode}, min retention {}{}",
                l.min_retention,
                l.max_retention
                    .as_ref()
                    .map(|m| format!(", max retention {m}"))
                    .unwrap_or_default()
            );
            if let Some(t) = l.changeable_until_ns {
                if l.immutable(now) {
                    println!("  immutable since {}", output::time_ns(t));
                } else {
                    println!("  can be changed or removed until {}", output::time_ns(t));
                }
            }
        }
    }
    if holds.is_empty() {
        println!("legal holds: none");
    }
    for h in holds {
        println!(
            "legal hold {:?}: resource {}, from {}, to {}{}",
            h.name,
            h.resource.as_deref().unwrap_or("(all)"),
            h.from_ns.map_or("(any)".into(), output::time_ns),
            h.to_ns.map_or("(any)".into(), output::time_ns),
            if h.reason.is_empty() {
                String::new()
            } else {
                format!(" — {}", h.reason)
            }
        );
    }
}

fn time_arg(flag: &str, s: Option<&str>) -> Result<Option<i64>> {
    s.map(|t| {
        output::parse_time(t).ok_or_else(|| {
            Error::Input(format!(
                "{flag} {t:?}: use RFC 3339 or YYYY-MM-DD[ HH:MM:SS]"
            ))
        })
    })
    .transpose()
}

pub fn hold(ctx: &Ctx, c: HoldCommand) -> Result<i32> {
    let vault = ctx.unlock()?;
    vault.require_full("managing legal holds")?;
    let now = now_ns();
    match c {
        HoldCommand::Add {
            name,
            resource,
            from,
            to,
            reason,
        } => {
            let req = ops::HoldRequest {
                name,
                resource,
                from_ns: time_arg("--from", from.as_deref())?,
                to_ns: time_arg("--to", to.as_deref())?,
                reason,
            };
            if let (Some(f), Some(t)) = (req.from_ns, req.to_ns)
                && f > t
            {
                return Err(Error::Input("--from is after --to".into()));
            }
            let r = ops::add_hold(&vault, &req, &by(), now)?;
            print_report(ctx, &r, now);
        }
        HoldCommand::List => {
            let st = protect::current(&vault)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({"holds": st.holds}));
            } else if st.holds.is_empty() {
                println!("legal holds: none");
            } else {
                print_state(ctx, &st.lock, &st.holds, now);
            }
        }
        HoldCommand::Release { name } => {
            let r = ops::release_hold(&vault, &name, &by(), now)?;
            print_report(ctx, &r, now);
        }
    }
    Ok(exit::OK)
}
