//! The scheduler daemon: runs every resource's backups at its category's cron times within
//! their start windows, watches RPOs, serves `/metrics` and the API, reloads the plan on
//! SIGHUP and drains on SIGTERM/SIGINT.
//!
//! Start-up: jobs a previous process left unfinished are recorded `aborted` (and a backup
//! whose point reached the vault after all is recorded completed with it); each resource's
//! newest point is read from its vault. Catch-up: if a resource's latest scheduled time
//! passed while no daemon ran, it runs now when still inside its start window, otherwise
//! one `expired` job records the miss (with how many runs were missed) — never a burst of
//! stale runs.
//!
//! Shutdown: no new job starts; running jobs get `shutdown_grace` to finish; then their
//! children are stopped (SIGTERM, SIGKILL after 10 s) and the jobs recorded `aborted`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::api::{Api, router};
use crate::notify::EventKind;
use crate::runner::{Runtime, now_ns, rfc3339};
use crate::settings::LoadedPlan;

/// The daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The listener cannot bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A signal handler cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// The API token file cannot be read.
    #[error("api_token_file {path}: {source}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

fn token(plan: &LoadedPlan) -> Result<Option<Arc<String>>, DaemonError> {
    let d = &plan.plan.daemon;
    if let Some(v) = &d.api_token_env {
        return Ok(std::env::var(v)
            .ok()
            .filter(|t| !t.is_empty())
            .map(Arc::new));
    }
    if let Some(f) = &d.api_token_file {
        let s = std::fs::read_to_string(f).map_err(|source| DaemonError::Token {
            path: f.clone(),
            source,
        })?;
        return Ok(s.lines().next().map(|l| Arc::new(l.trim().to_string())));
    }
    Ok(None)
}

/// Next due time per resource, keyed with the schedule expression that produced it.
type Due = HashMap<String, (i64, String)>;

fn schedule_key(plan: &LoadedPlan, r: &str) -> String {
    let tz = plan
        .plan
        .resources
        .get(r)
        .and_then(|x| plan.plan.categories.get(x.category.get_ref()))
        .and_then(|c| c.timezone.as_ref().map(|t| t.get_ref().clone()))
        .unwrap_or_default();
    format!("{}@{tz}", plan.schedule_of(r).map_or("", |s| s.expr()))
}

fn instant_of(ns: i64) -> Instant {
    let d = ns - now_ns();
    if d <= 0 {
        Instant::now()
    } else {
        Instant::now() + Duration::from_nanos(d as u64)
    }
}

fn start_by(plan: &LoadedPlan, r: &str, scheduled: i64) -> Instant {
    let cat = plan
        .plan
        .resources
        .get(r)
        .map(|x| x.category.get_ref().clone())
        .unwrap_or_default();
    instant_of(scheduled) + plan.start_window(&cat)
}

/// Catch-up decisions at start-up, then the first due times.
fn initial(rt: &Arc<Runtime>, plan: &LoadedPlan, now: i64) -> Due {
    let mut due = Due::new();
    for r in plan.plan.resources.keys() {
        let Some(s) = plan.schedule_of(r) else {
            continue;
        };
        let last = rt.catalog.last_scheduled(r).ok().flatten();
        if let (Some(latest), Some(prev)) = (s.latest_at_or_before(now), last)
            && latest > prev
        {
            let cat = plan.plan.resources[r].category.get_ref().clone();
            let window = plan.start_window(&cat);
            if ((now - latest) as u128) <= window.as_nanos() {
                tracing::info!(resource = %r, "catching up the run of {}", rfc3339(latest));
                if let Ok(job) = rt.create_backup(r, "catch-up", Some(latest)) {
                    rt.spawn_run(job, r.clone(), Some(start_by(plan, r, latest)));
                }
            } else {
                let mut missed = 0u32;
                let mut t = prev;
                while let Some(n) = s.next_after(t) {
                    if n > now || missed >= 100_000 {
                        break;
                    }
                    missed += 1;
                    t = n;
                }
                rt.expire(
                    r,
                    latest,
                    &format!(
                        "no daemon ran at {} ({missed} scheduled run(s) missed since {})",
                        rfc3339(latest),
                        rfc3339(prev)
                    ),
                );
            }
        }
        if let Some(n) = s.next_after(now) {
            due.insert(r.clone(), (n, schedule_key(plan, r)));
        }
    }
    due
}

fn reload(rt: &Arc<Runtime>, path: &Path, due: &mut Due) {
    match LoadedPlan::load(path) {
        Ok(p) => {
            let now = now_ns();
            due.retain(|r, _| p.plan.resources.contains_key(r));
            for r in p.plan.resources.keys() {
                let key = schedule_key(&p, r);
                if due.get(r).is_none_or(|(_, k)| *k != key)
                    && let Some(n) = p.schedule_of(r).and_then(|s| s.next_after(now))
                {
                    due.insert(r.clone(), (n, key));
                }
            }
            tracing::info!(
                "plan {} reloaded: {} resource(s)",
                path.display(),
                p.plan.resources.len()
            );
            rt.replace_plan(p);
        }
        Err(e) => tracing::error!("plan not reloaded, the running plan stays: {e}"),
    }
}

fn check_rpo(rt: &Arc<Runtime>) {
    let now = now_ns();
    for s in crate::status::statuses(rt, now) {
        if s.rpo_breach {
            if let Ok(true) = rt.catalog.open_incident(&s.resource, "rpo", now) {
                let text = format!(
                    "holdfast: {} breaches its RPO: newest point {} is {} old (RPO {})",
                    s.resource,
                    s.last_point.as_deref().unwrap_or("(none)"),
                    crate::runner::humanize(Duration::from_secs(s.age_seconds)),
                    crate::runner::humanize(Duration::from_secs(s.rpo_seconds.unwrap_or(0)))
                );
                rt.notify(EventKind::Rpo, &s.resource, "rpo", None, text);
            }
        } else if let Ok(Some(c)) = rt.catalog.close_incident(&s.resource, "rpo") {
            let text = format!(
                "holdfast: {} is within its RPO again (breached since {})",
                s.resource,
                rfc3339(c.opened_ns)
            );
            rt.notify(EventKind::Recovery, &s.resource, "rpo", None, text);
        }
    }
}

/// Run the daemon until SIGTERM/SIGINT. Returns once every job is finished or aborted.
pub async fn serve(rt: Arc<Runtime>) -> Result<(), DaemonError> {
    let started = now_ns();
    let plan = rt.plan();
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let addr = plan.settings.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen { addr, source })?;
    let api = Api {
        rt: rt.clone(),
        token: token(&plan)?,
        started_ns: started,
    };
    if api.token.is_none() {
        tracing::warn!("no API token configured: the REST API answers 401 to every call");
    }
    let (stop_http, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        let _ = axum::serve(listener, router(api))
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
    });
    tracing::info!(
        "holdfast daemon: plan {}, {} resource(s), catalog {}, listening on {addr}",
        plan.path.display(),
        plan.plan.resources.len(),
        rt.catalog.path().display()
    );
    let aborted = rt.catalog.abort_unfinished(started)?;
    for j in &aborted {
        tracing::warn!(
            job = j.id,
            "job {} of {} was left {} by a stopped process: recorded aborted",
            j.kind.as_str(),
            j.resource,
            j.state.as_str()
        );
    }
    rt.reconcile(&aborted).await;
    let path = plan.path.clone();
    let mut due = initial(&rt, &plan, now_ns());
    drop(plan);
    let mut last_rpo = Instant::now() - Duration::from_secs(60);
    loop {
        let now = now_ns();
        let loaded = rt.plan();
        for (r, (at, _)) in due.iter_mut() {
            if *at <= now {
                let scheduled = *at;
                if let Ok(job) = rt.create_backup(r, "schedule", Some(scheduled)) {
                    rt.spawn_run(job, r.clone(), Some(start_by(&loaded, r, scheduled)));
                }
                // The next time after now: a daemon that fell behind does not replay.
                if let Some(n) = loaded
                    .schedule_of(r)
                    .and_then(|s| s.next_after(now.max(scheduled)))
                {
                    *at = n;
                }
            }
        }
        if last_rpo.elapsed() >= Duration::from_secs(2) {
            let rt2 = rt.clone();
            let _ = tokio::task::spawn_blocking(move || check_rpo(&rt2)).await;
            last_rpo = Instant::now();
        }
        let next = due.values().map(|(t, _)| *t).min().unwrap_or(i64::MAX);
        let sleep = instant_of(next).min(Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep_until(sleep) => {}
            _ = hup.recv() => reload(&rt, &path, &mut due),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let grace = rt.plan().settings.shutdown_grace;
    tracing::info!(
        "shutting down: {} run(s) in progress get {} to finish",
        rt.active(),
        crate::runner::humanize(grace)
    );
    let _ = rt.draining.send(true);
    if !rt.wait_idle(grace).await {
        tracing::warn!("grace over: stopping running jobs (recorded aborted)");
        let _ = rt.kill.send(true);
        rt.wait_idle(Duration::from_secs(60)).await;
    }
    let _ = stop_http.send(());
    let _ = http.await;
    let left = rt.catalog.list(&crate::catalog::Filter::default())?;
    let open = left
        .iter()
        .filter(|j| {
            matches!(
                j.state,
                crate::job::JobState::Created | crate::job::JobState::Running
            )
        })
        .count();
    if open > 0 {
        rt.catalog.abort_unfinished(now_ns())?;
    }
    rt.notifier.flush(Duration::from_secs(10)).await;
    tracing::info!("holdfast daemon stopped");
    Ok(())
}
