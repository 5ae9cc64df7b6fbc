//! `lock` and `hold`.

use holdfast_engine::protect::{self, Hold, LockMode, VaultLock};
use holdfast_engine::{Error, Result};
use holdfast_retention::{add_span, parse_span};

use super::{Ctx, by, now_ns};
use crate::cli::{HoldCommand, LockCommand};
use crate::{exit, output};

fn span(flag: &str, s: &str) -> Result<jiff::Span> {
    parse_span(s).map_err(|e| Error::Input(format!("{flag}: {e}")))
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
            span("--min-retention", &min_retention)?;
            if let Some(m) = &max_retention {
                span("--max-retention", m)?;
            }
            let cool = span("--cooling-off", &cooling_off)?;
            let mode = if mode == "compliance" {
                LockMode::Compliance
            } else {
                LockMode::Governance
            };
            let new = VaultLock {
                mode,
                min_retention,
                max_retention,
                set_ns: now,
                changeable_until_ns: (mode == LockMode::Compliance).then(|| add_span(now, cool)),
            };
            let st = protect::update(&vault, &by(), now, |cur| {
                let mut action =
                    protect::check_set_lock(cur.lock.as_ref(), &new, bypass_governance, now)?;
                let mut next = cur.clone();
                // Re-setting an immutable compliance lock to itself changes nothing.
                if cur.lock.as_ref().is_some_and(|l| l.immutable(now)) {
                    action = "lock re-confirmed (unchanged)".into();
                } else {
                    next.lock = Some(new.clone());
                }
                Ok((next, action))
            })?;
            print_state(ctx, &st, now);
            apply(ctx, &vault, &st, now)?;
        }
        LockCommand::Apply => {
            let st = protect::current(&vault)?;
            if st.lock.is_none() {
                return Err(Error::Input("the vault has no lock".into()));
            }
            apply(ctx, &vault, &st, now)?;
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
                print_state(ctx, &st, now);
                if !hist.is_empty() {
                    println!("history:");
                    for e in hist.iter().filter_map(|p| p.event.as_ref()) {
                        println!("  {}  {}  {}", output::time_ns(e.time_ns), e.by, e.action);
                    }
                }
            }
        }
        LockCommand::Remove { bypass_governance } => {
            let st = protect::update(&vault, &by(), now, |cur| {
                let action = protect::check_remove_lock(cur.lock.as_ref(), bypass_governance, now)?;
                let mut next = cur.clone();
                next.lock = None;
                Ok((next, action))
            })?;
            print_state(ctx, &st, now);
        }
    }
    Ok(exit::OK)
}

/// Apply the lock as storage retention (S3 Object Lock) and say what happened.
pub fn apply(
    ctx: &Ctx,
    vault: &holdfast_engine::Vault,
    st: &protect::Protection,
    now: i64,
) -> Result<()> {
    let r = protect::apply_retention(vault, st, now)?;
    if st.lock.is_some() {
        print_applied(ctx, &r);
    }
    Ok(())
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

fn print_state(ctx: &Ctx, st: &protect::Protection, now: i64) {
    if ctx.json {
        ctx.print_json(&serde_json::json!({"lock": st.lock, "holds": st.holds}));
        return;
    }
    if ctx.quiet {
        return;
    }
    match &st.lock {
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
    if st.holds.is_empty() {
        println!("legal holds: none");
    }
    for h in &st.holds {
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
            if name.trim().is_empty() {
                return Err(Error::Input("a hold needs a name".into()));
            }
            let hold = Hold {
                name: name.clone(),
                resource,
                from_ns: time_arg("--from", from.as_deref())?,
                to_ns: time_arg("--to", to.as_deref())?,
                reason,
                created_ns: now,
                by: by(),
            };
            if let (Some(f), Some(t)) = (hold.from_ns, hold.to_ns)
                && f > t
            {
                return Err(Error::Input("--from is after --to".into()));
            }
            let st = protect::update(&vault, &by(), now, |cur| {
                if cur.holds.iter().any(|h| h.name == name) {
                    return Err(Error::Input(format!("a hold named {name:?} exists")));
                }
                let mut next = cur.clone();
                next.holds.push(hold.clone());
                Ok((next, format!("hold {name:?} placed")))
            })?;
            print_state(ctx, &st, now);
        }
        HoldCommand::List => {
            let st = protect::current(&vault)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({"holds": st.holds}));
            } else if st.holds.is_empty() {
                println!("legal holds: none");
            } else {
                print_state(ctx, &st, now);
            }
        }
        HoldCommand::Release { name } => {
            let st = protect::update(&vault, &by(), now, |cur| {
                if !cur.holds.iter().any(|h| h.name == name) {
                    return Err(Error::Input(format!("no hold named {name:?}")));
                }
                let mut next = cur.clone();
                next.holds.retain(|h| h.name != name);
                Ok((next, format!("hold {name:?} released")))
            })?;
            print_state(ctx, &st, now);
        }
    }
    Ok(exit::OK)
}
