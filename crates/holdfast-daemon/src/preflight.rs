//! `plan check --connect`: what only the running system can tell about a checked plan. Every
//! vault is opened with the plan's own secret source (read as the daemon's workers read it,
//! [`holdfast_ops::secret`]), and each category's resolved retention is compared with the lock
//! of every vault holding its points (the category's vault and its copy destinations).
//!
//! Problems found: an unreachable or missing vault (`holdfast init` not run), a secret that
//! does not open it, retention that would forget points younger than a lock's minimum (the
//! lock keeps them: the plan promises a retention the vault will not honour), retention that
//! keeps points longer than a lock's maximum, a notification channel whose `url_env` /
//! `smtp_password_env` variable is not set or whose `url_file` cannot be read (its alerts
//! would be lost).

use std::collections::BTreeMap;

use holdfast_engine::Vault;
use holdfast_engine::protect::VaultLock;
use holdfast_ops::secret::{self, Secret};
use holdfast_plan::{Plan, PlanSpan, Problem, ResolvedPlan, Spanned, VaultSecret};
use holdfast_retention::parse_span;
use holdfast_storage::url::S3Options;

fn line(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

fn at<T>(src: &str, s: &Spanned<T>) -> usize {
    line(src, s.span().start)
}

/// The secret a plan's vault names, read as the daemon's workers read it.
pub fn plan_secret(name: &str, v: &holdfast_plan::Vault) -> holdfast_engine::Result<Secret> {
    use holdfast_engine::Error;
    match v.secret() {
        Some(VaultSecret::KeyFile(k)) => secret::key_file(k),
        Some(VaultSecret::PassphraseFile(f)) => secret::passphrase_file(f).map(Secret::Passphrase),
        Some(VaultSecret::PassphraseEnv(var)) => secret::passphrase_env(&var).ok_or_else(|| {
            Error::Input(format!("vault {name:?}: passphrase_env {var} is not set"))
        }),
        None => Err(Error::Input(format!("vault {name:?} has no secret source"))),
    }
}

/// Open the plan's vault `name` with its own secret source; `s3` are the S3 settings it uses
/// unless it names its own `endpoint` / `region`.
pub fn open_plan_vault(
    name: &str,
    v: &holdfast_plan::Vault,
    s3: &S3Options,
) -> holdfast_engine::Result<Vault> {
    let mut s3 = s3.clone();
    if v.endpoint.is_some() {
        s3.endpoint = v.endpoint.clone();
    }
    if v.region.is_some() {
        s3.region = v.region.clone();
    }
    secret::open_vault(v.url.get_ref(), &s3, plan_secret(name, v)?)
}

/// Open the vault the plan names `name` (not found when the plan has no such vault).
pub fn open_named_vault(
    plan: &holdfast_plan::Plan,
    name: &str,
    s3: &S3Options,
) -> holdfast_engine::Result<Vault> {
    let v = plan.vaults.get(name).ok_or_else(|| {
        holdfast_engine::Error::NotFound(format!("vault {name:?} is not in the plan"))
    })?;
    open_plan_vault(name, v, s3)
}

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

/// Every vault opened; the locks of those that opened (None: no lock set).
fn open_vaults(
    src: &str,
    plan: &Plan,
    s3: &S3Options,
    out: &mut Vec<Problem>,
) -> BTreeMap<String, Option<VaultLock>> {
    let mut locks = BTreeMap::new();
    for (name, v) in &plan.vaults {
        match open_plan_vault(name, v, s3) {
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
    locks
}

/// The connected checks of a checked and resolved plan (`src` is its text, for line
/// numbers; `s3` the S3 settings vaults without their own `endpoint`/`region` use;
/// calendar spans are measured from `now_ns`); problems in line order.
pub fn check(
    src: &str,
    plan: &Plan,
    resolved: &ResolvedPlan,
    s3: &S3Options,
    now_ns: i64,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let locks = open_vaults(src, plan, s3, &mut out);
    for (cname, c) in &plan.categories {
        let Some(rules) = resolved.category(cname) else {
            continue;
        };
        let r = &rules.retention;
        let table = src
            .find(&format!("[categories.{cname}.retention]"))
            .map_or_else(|| at(src, &c.vault), |o| line(src, o));
        let delete_line = c.retention.delete_after.as_ref().map(|d| at(src, d));
        let vaults = std::iter::once(&rules.vault).chain(rules.copy_to.iter());
        for vname in vaults {
            let Some(Some(lock)) = locks.get(vname) else {
                continue;
            };
            let Some(min) = lock_span(&lock.min_retention) else {
                continue;
            };
            let min_days = min.days_from(now_ns);
            if let Some(d) = &r.delete_after
                && d.days_from(now_ns) < min_days
            {
                out.push(Problem {
                    line: delete_line.unwrap_or(table),
                    message: format!(
                        "category {cname:?}: delete_after {} is shorter than the {:?} lock minimum of vault {vname:?} ({})",
                        d.text, lock.mode, lock.min_retention
                    ),
                    fix: "delete after at least the lock's minimum, or shorten the lock (`holdfast lock set`)".into(),
                });
            }
            if r.has_rule() && i64::from(r.min_days.unwrap_or(0)) < min_days {
                out.push(Problem {
                    line: c.retention.min_days.as_ref().map_or(table, |d| at(src, d)),
                    message: format!(
                        "category {cname:?}: retention can forget points younger than the {:?} lock minimum of vault {vname:?} ({}); the lock would keep them",
                        lock.mode, lock.min_retention
                    ),
                    fix: format!("set min_days = {min_days} in [categories.{cname}.retention]"),
                });
            }
            if let Some(max) = lock.max_retention.as_deref().and_then(lock_span) {
                let keeps_days = r
                    .delete_after
                    .as_ref()
                    .map_or(i64::MAX, |d| d.days_from(now_ns));
                if keeps_days > max.days_from(now_ns) {
                    out.push(Problem {
                        line: delete_line.unwrap_or(table),
                        message: format!(
                            "category {cname:?}: retention keeps points longer than the maximum of vault {vname:?} ({})",
                            max.text
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

/// A lock's retention span (the vault stores it as text).
fn lock_span(text: &str) -> Option<PlanSpan> {
    parse_span(text).ok().map(|span| PlanSpan {
        text: text.to_string(),
        span,
    })
}
