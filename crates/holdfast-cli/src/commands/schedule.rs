//! `holdfast run`, `holdfast daemon` and `holdfast jobs`: thin layers over holdfast-daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use holdfast_daemon::api::parse_since;
use holdfast_daemon::runner::now_ns;
use holdfast_daemon::{Catalog, Filter, JobKind, JobState, LoadedPlan, Runtime};
use holdfast_engine::{Error, Result};

use super::Ctx;
use crate::cli::{JobsArgs, PlanArgs, RunArgs};
use crate::{exit, output};

/// The plan file: `--plan`, else HOLDFAST_PLAN, else ./holdfast.toml.
pub fn plan_path(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("HOLDFAST_PLAN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("holdfast.toml"))
}

fn load(a: &PlanArgs) -> Result<LoadedPlan> {
    load_plan(a.plan.clone(), a.state_dir.as_ref())
}

/// Load and check the plan (`plan_path`), with `state_dir` overriding its `[daemon]` one.
pub fn load_plan(plan: Option<PathBuf>, state_dir: Option<&PathBuf>) -> Result<LoadedPlan> {
    let path = plan_path(plan);
    let mut p = LoadedPlan::load(&path).map_err(|e| match e {
        holdfast_daemon::LoadError::Resolve { .. } => Error::Internal(e.to_string()),
        e => Error::Input(e.to_string()),
    })?;
    if let Some(d) = state_dir {
        p.settings.state_dir = d.clone();
    }
    Ok(p)
}

/// An error unless `vault` is one of the plan's vaults.
pub fn plan_vault(loaded: &LoadedPlan, vault: &str) -> Result<()> {
    if loaded.plan.vaults.contains_key(vault) {
        return Ok(());
    }
    let known: Vec<&str> = loaded.plan.vaults.keys().map(String::as_str).collect();
    Err(Error::Input(format!(
        "vault {vault:?} is not in the plan {} (it has: {})",
        loaded.path.display(),
        known.join(", ")
    )))
}

pub fn catalog(dir: &std::path::Path) -> Result<Catalog> {
    Catalog::open(dir).map_err(catalog_error)
}

/// A catalog error as the kind it is, so it gets one hint and its exit code: a state folder
/// or file that cannot be made is I/O (check the path and its permissions: `--state-dir`,
/// `[daemon] state_dir`); a catalog a newer holdfast wrote is unsupported (upgrade).
pub fn catalog_error(e: holdfast_daemon::CatalogError) -> Error {
    use holdfast_daemon::CatalogError as C;
    match e {
        C::Dir { path, source } => Error::Io {
            path: format!("state directory {}", path.display()),
            source,
        },
        C::File { path, source } => Error::Io {
            path: format!("state file {}", path.display()),
            source,
        },
        C::Sqlite { path, source } => Error::Io {
            path: format!("job catalog {}", path.display()),
            source: std::io::Error::other(source),
        },
        C::Corrupt { .. } => Error::Unsupported(e.to_string()),
    }
}

/// Why the daemon could not start, as its kind.
fn daemon_error(e: holdfast_daemon::daemon::DaemonError) -> Error {
    use holdfast_daemon::daemon::DaemonError as D;
    match e {
        D::Listen { addr, source } => Error::Io {
            path: format!("listen address {addr}"),
            source,
        },
        D::Signal(source) => Error::io("<signal handlers>", source),
        D::Catalog(c) => catalog_error(c),
        D::Token { path, source } => Error::Io {
            path: format!("api_token_file {path}"),
            source,
        },
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("<tokio runtime>", e))
}

pub fn exe() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| Error::io("<current executable>", e))
}

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<i32> {
    let loaded = load(&a.plan)?;
    if let Some(v) = &a.verify {
        plan_vault(&loaded, v)?;
    }
    let names: Vec<String> = match &a.resource {
        _ if a.verify.is_some() => vec![],
        Some(r) => {
            if !loaded.plan.resources.contains_key(r) {
                let known: Vec<&str> = loaded.plan.resources.keys().map(String::as_str).collect();
                return Err(Error::Input(format!(
                    "resource {r:?} is not in the plan {} (it has: {})",
                    loaded.path.display(),
                    known.join(", ")
                )));
            }
            vec![r.clone()]
        }
        None => loaded.plan.resources.keys().cloned().collect(),
    };
    let cat = catalog(&loaded.settings.state_dir)?;
    // Jobs left running by a process that is gone (a killed daemon or run) end here too.
    if let Ok(stale) = cat.abort_unfinished(now_ns()) {
        for j in stale {
            eprintln!(
                "holdfast: job {} ({} of {}) was left {} by a stopped process: recorded aborted",
                j.id,
                j.kind.as_str(),
                j.resource,
                j.state.as_str()
            );
        }
    }
    let rt = Runtime::new(exe()?, cat, loaded);
    let reports = runtime()?.block_on(async {
        let mut out = Vec::new();
        if let Some(v) = &a.verify {
            let job = rt.create_verify(v, "manual", None).map_err(catalog_error)?;
            out.push((format!("vault {v}"), rt.run_verify(job, v, None).await));
        }
        for r in &names {
            let job = rt.create_backup(r, "manual", None).map_err(catalog_error)?;
            out.push((r.clone(), rt.run_resource(job, r, None).await));
        }
        rt.notifier.flush(Duration::from_secs(20)).await;
        Ok::<_, Error>(out)
    })?;
    let mut code = exit::OK;
    for (_, rep) in &reports {
        for j in &rep.jobs {
            match j.3 {
                JobState::Completed => {}
                JobState::Partial if code == exit::OK => code = exit::PARTIAL,
                JobState::Partial => {}
                _ => code = exit::ERROR,
            }
        }
    }
    if ctx.json {
        let v: Vec<_> = reports
            .iter()
            .map(|(r, rep)| {
                let jobs: Vec<_> = rep
                    .jobs
                    .iter()
                    .map(|j| serde_json::json!({"job": j.0, "kind": j.1, "vault": j.2, "state": j.3, "message": j.4}))
                    .collect();
                serde_json::json!({"resource": r, "jobs": jobs})
            })
            .collect();
        ctx.print_json(&serde_json::Value::Array(v));
    } else if !ctx.quiet {
        for (r, rep) in &reports {
            for j in &rep.jobs {
                println!(
                    "{r}: job {} {} in {}: {}{}",
                    j.0,
                    j.1.as_str(),
                    j.2,
                    j.3.as_str(),
                    j.4.as_deref()
                        .map(|m| format!(" — {m}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(code)
}

pub fn daemon(_ctx: &Ctx, a: PlanArgs) -> Result<i32> {
    let loaded = load(&a)?;
    let cat = catalog(&loaded.settings.state_dir)?;
    let rt: Arc<Runtime> = Runtime::new(exe()?, cat, loaded);
    runtime()?
        .block_on(holdfast_daemon::daemon::serve(rt))
        .map_err(daemon_error)?;
    Ok(exit::OK)
}

fn state_dir_for_jobs(a: &PlanArgs) -> Result<PathBuf> {
    if let Some(d) = &a.state_dir {
        return Ok(d.clone());
    }
    Ok(load(a)?.settings.state_dir)
}

pub fn jobs(ctx: &Ctx, a: JobsArgs) -> Result<i32> {
    let dir = state_dir_for_jobs(&a.plan)?;
    if !dir.join("catalog.sqlite").exists() {
        return Err(Error::Input(format!(
            "no job catalog in {}: run `holdfast run` or the daemon first, or give --state-dir",
            dir.display()
        )));
    }
    let cat = catalog(&dir)?;
    let state = match a.state.as_deref() {
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            Error::Input(format!(
                "--state {s:?}: use created, running, completed, partial, failed, expired or aborted"
            ))
        })?),
        None => None,
    };
    let kind = match a.kind.as_deref() {
        Some(k) => Some(
            JobKind::ALL
                .into_iter()
                .find(|x| x.as_str() == k)
                .ok_or_else(|| {
                    Error::Input(format!(
                        "--kind {k:?}: use backup, copy, retention, prune, verify, restore or restore_test"
                    ))
                })?,
        ),
        None => None,
    };
    let since = match a.since.as_deref() {
        Some(s) => Some(parse_since(s, now_ns()).ok_or_else(|| {
            Error::Input(format!(
                "--since {s:?}: use RFC 3339 or a duration such as 24h"
            ))
        })?),
        None => None,
    };
    let list = cat
        .list(&Filter {
            resource: a.resource.clone(),
            states: state.into_iter().collect(),
            kind,
            since_ns: since,
            limit: a.limit,
            ..Filter::default()
        })
        .map_err(catalog_error)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!(list));
        return Ok(exit::OK);
    }
    println!(
        "{:>6}  {:<12}  {:<20}  {:<10}  {:<9}  {:<9}  {:<19}  {:>8}  {:>10}  {:<8}  MESSAGE",
        "ID",
        "KIND",
        "RESOURCE",
        "VAULT",
        "STATE",
        "TRIGGER",
        "CREATED (UTC)",
        "TOOK",
        "ADDED",
        "POINT"
    );
    for j in &list {
        let took = match (j.started_ns, j.ended_ns) {
            (Some(s), Some(e)) => format!("{:.1}s", (e - s) as f64 / 1e9),
            _ => "-".into(),
        };
        println!(
            "{:>6}  {:<12}  {:<20}  {:<10}  {:<9}  {:<9}  {:<19}  {:>8}  {:>10}  {:<8}  {}{}",
            j.id,
            j.kind.as_str(),
            j.resource,
            j.vault,
            j.state.as_str(),
            j.trigger,
            output::time_short(j.created_ns.div_euclid(1_000_000_000)),
            took,
            j.bytes_added.map_or("-".into(), output::size),
            j.point.as_deref().map_or("-", |p| &p[..8.min(p.len())]),
            j.test
                .as_deref()
                .map_or(String::new(), |t| format!("[test {t}] ")),
            j.message.as_deref().unwrap_or("")
        );
    }
    println!("{} job(s)", list.len());
    Ok(exit::OK)
}
