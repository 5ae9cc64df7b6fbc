//! `plan check --connect`: every vault of the plan is opened with the plan's secret source,
//! and each category's retention is compared with the locks of the vaults holding its
//! points (the category's vault and its copy destinations).
//!
//! Problems found: an unreachable vault or missing vault (`holdfast init` not run), a
//! secret that does not open it, retention that would forget points younger than a lock's
//! minimum (the lock keeps them: the plan promises a retention the vault will not honour),
//! retention that keeps points longer than a lock's maximum, a notification channel whose
//! `url_env` / `smtp_password_env` variable is not set or whose `url_file` cannot be read (its
//! alerts would be lost).

use std::sync::Arc;

use holdfast_engine::{KeylessVault, Vault};
use holdfast_plan::Spanned;
use holdfast_plan::{Plan, Problem};
use holdfast_retention::{add_span, parse_span};
use holdfast_storage::url::{Location, OpenLocation};

use super::Ctx;

fn line(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

fn at<T>(src: &str, s: &Spanned<T>) -> usize {
    line(src, s.span().start)
}

fn open(ctx: &Ctx, name: &str, v: &holdfast_plan::Vault) -> Result<Vault, String> {
    let loc = Location::parse(v.url.get_ref()).map_err(|e| e.message)?;
    let storage = loc
        .open(&ctx.s3_with(v.endpoint.clone(), v.region.clone()))
        .map_err(|e| e.to_string())?;
    let locked = KeylessVault::open(Arc::clone(&storage)).map_err(|e| e.to_string())?;
    let unlocked = match crate::secrets::plan_vault(name, v).map_err(|e| e.to_string())? {
        crate::secrets::Secret::KeyFile(m) => locked.unlock_material(*m),
        crate::secrets::Secret::Passphrase(p) => locked.unlock_passphrase(&p),
    };
    unlocked.map_err(|e| e.to_string())
}

const DAY_NS: i64 = 86_400_000_000_000;

/// The line of `key = …` inside the table `header`, else `fallback`.
fn key_line(src: &str, header: &str, key: &str, fallback: usize) -> usize {
    let Some(start) = src.find(header) else {
        return fallback;
    };
    let body = &src[start..];
    let end = body[1..].find("\n[").map_or(body.len(), |e| e + 1);
    body[..end]
        .lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(fallback, |i| line(src, start) + i)
}

/// Notification channels whose secret is missing here: every alert would fail to deliver.
fn check_notifications(src: &str, plan: &Plan, out: &mut Vec<Problem>) {
    for (name, n) in &plan.notifications {
        let header = format!("[notifications.{name}]");
        let fallback = at(src, &n.kind);
        for (key, var, what) in [
            ("url_env", &n.url_env, "the webhook URL"),
            (
                "smtp_password_env",
                &n.smtp_password_env,
                "the SMTP password",
            ),
        ] {
            if let Some(var) = var
                && std::env::var_os(var).is_none()
            {
                out.push(Problem {
                    line: key_line(src, &header, key, fallback),
                    message: format!(
                        "notification {name:?}: {key} {var} is not set in this environment; its alerts cannot be sent"
                    ),
                    fix: format!(
                        "set {var} to {what} where holdfast runs (e.g. in the daemon's unit), or use a file"
                    ),
                });
            }
        }
        if let Some(f) = &n.url_file
            && let Err(e) = std::fs::metadata(f)
        {
            out.push(Problem {
                line: key_line(src, &header, "url_file", fallback),
                message: format!("notification {name:?}: url_file {f}: {e}"),
                fix: "create the file with the webhook URL (readable by holdfast only)".into(),
            });
        }
    }
}

/// The connected checks; problems in line order.
pub fn check(ctx: &Ctx, src: &str, plan: &Plan) -> Vec<Problem> {
    let mut out = Vec::new();
    let now = super::now_ns();
    let mut locks = std::collections::BTreeMap::new();
    for (name, v) in &plan.vaults {
        match open(ctx, name, v) {
            Ok(vault) => match holdfast_engine::protect::current(&vault) {
                Ok(p) => {
                    locks.insert(name.clone(), p.lock);
                }
                Err(e) => out.push(Problem {
                    line: at(src, &v.url),
                    message: format!("vault {name:?}: cannot read its lock: {e}"),
                    fix: "use a full key for plan check --connect".into(),
                }),
            },
            Err(e) => out.push(Problem {
                line: at(src, &v.url),
                message: format!("vault {name:?} ({}): {e}", v.url.get_ref()),
                fix: "check the URL, the credentials and the secret source; create it with `holdfast init`".into(),
            }),
        }
    }
    for (cname, c) in &plan.categories {
        let r = &c.retention;
        let vaults =
            std::iter::once(c.vault.get_ref()).chain(c.copy_to.iter().map(|d| d.get_ref()));
        for vname in vaults {
            let Some(Some(lock)) = locks.get(vname) else {
                continue;
            };
            let Ok(min) = parse_span(&lock.min_retention) else {
                continue;
            };
            let min_days = (add_span(now, min) - now) / DAY_NS;
            let table = src
                .find(&format!("[categories.{cname}.retention]"))
                .map_or_else(|| at(src, &c.vault), |o| line(src, o));
            if let Some(d) = &r.delete_after
                && let Ok(span) = parse_span(d.get_ref())
                && (add_span(now, span) - now) / DAY_NS < min_days
            {
                out.push(Problem {
                    line: at(src, d),
                    message: format!(
                        "category {cname:?}: delete_after {} is shorter than the {:?} lock minimum of vault {vname:?} ({})",
                        d.get_ref(), lock.mode, lock.min_retention
                    ),
                    fix: "delete after at least the lock's minimum, or shorten the lock (`holdfast lock set`)".into(),
                });
            }
            let rules = r.has_rule();
            let kept_min = r.min_days.as_ref().map_or(0, |d| i64::from(*d.get_ref()));
            if rules && kept_min < min_days {
                out.push(Problem {
                    line: r.min_days.as_ref().map_or(table, |d| at(src, d)),
                    message: format!(
                        "category {cname:?}: retention can forget points younger than the {:?} lock minimum of vault {vname:?} ({}); the lock would keep them",
                        lock.mode, lock.min_retention
                    ),
                    fix: format!("set min_days = {min_days} in [categories.{cname}.retention]"),
                });
            }
            if let Some(max) = lock
                .max_retention
                .as_deref()
                .and_then(|m| parse_span(m).ok())
            {
                let max_days = (add_span(now, max) - now) / DAY_NS;
                let keeps_days = r
                    .delete_after
                    .as_ref()
                    .and_then(|d| parse_span(d.get_ref()).ok())
                    .map(|s| (add_span(now, s) - now) / DAY_NS)
                    .unwrap_or(i64::MAX);
                if keeps_days > max_days {
                    out.push(Problem {
                        line: r.delete_after.as_ref().map_or(table, |d| at(src, d)),
                        message: format!(
                            "category {cname:?}: retention keeps points longer than the maximum of vault {vname:?} ({})",
                            lock.max_retention.as_deref().unwrap_or("")
                        ),
                        fix: "set delete_after within the vault's maximum retention".into(),
                    });
                }
            }
        }
    }
    check_notifications(src, plan, &mut out);
    out.sort_by_key(|p| p.line);
    out
}
