//! The scheduler daemon: runs every resource's backups at its category's cron times within
//! their start windows, watches RPOs, serves `/metrics` and the API, reloads the plan on
//! SIGHUP and drains on SIGTERM/SIGINT.
//!
//! Vaults with a `[vaults.NAME.verify]` schedule are verified on it the same way (start
//! window, catch-up, expiry).
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
//!
//! Notifications go through the catalog's outbox: a delivery loop runs beside the
//! scheduler, and at start every notification an earlier process left undelivered is tried
//! again at once ([`crate::notify`]).

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
use holdfast_plan::schedule::Schedule;

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

/// What the scheduler runs: a resource's backup, or a vault's verify.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Task {
    /// A resource's run (backup, copies, retention).
    Backup(String),
    /// A vault's verify.
    Verify(String),
}

/// Next due time per task, keyed with the schedule expression that produced it.
type Due = HashMap<Task, (i64, String)>;

fn schedule_of<'p>(plan: &'p LoadedPlan, t: &Task) -> Option<&'p Schedule> {
    match t {
        Task::Backup(r) => plan.schedule_of(r),
        Task::Verify(v) => plan.verify_schedules.get(v),
    }
}

/// The schedule expression and zone of a task (a change means: recompute its next time).
fn schedule_key(plan: &LoadedPlan, t: &Task) -> String {
    schedule_of(plan, t).map(Schedule::key).unwrap_or_default()
}

/// Every task of the plan.
fn tasks(plan: &LoadedPlan) -> Vec<Task> {
    let backups = plan.plan.resources.keys().cloned().map(Task::Backup);
    let verifies = plan.verify_schedules.keys().cloned().map(Task::Verify);
    backups.chain(verifies).collect()
}

fn instant_of(ns: i64) -> Instant {
    let d = ns - now_ns();
    if d <= 0 {
        Instant::now()
    } else {
        Instant::now() + Duration::from_nanos(d as u64)
    }
}

fn start_window(plan: &LoadedPlan, t: &Task) -> Duration {
    match t {
        Task::Backup(r) => {
            let cat = plan
                .plan
                .resources
                .get(r)
                .map(|x| x.category.get_ref().clone())
                .unwrap_or_default();
            plan.start_window(&cat)
        }
        Task::Verify(v) => plan.verify_start_window(v),
    }
}

fn start_by(plan: &LoadedPlan, t: &Task, scheduled: i64) -> Instant {
    instant_of(scheduled) + start_window(plan, t)
}

/// Start the task's job for the time `scheduled`.
fn launch(rt: &Arc<Runtime>, plan: &LoadedPlan, t: &Task, trigger: &str, scheduled: i64) {
    let by = Some(start_by(plan, t, scheduled));
    match t {
        Task::Backup(r) => {
            if let Ok(job) = rt.create_backup(r, trigger, Some(scheduled)) {
                rt.spawn_run(job, r.clone(), by);
            }
        }
        Task::Verify(v) => {
            if let Ok(job) = rt.create_verify(v, trigger, Some(scheduled)) {
                rt.spawn_verify(job, v.clone(), by);
            }
        }
    }
}

/// Catch-up decisions at start-up, then the first due times.
fn initial(rt: &Arc<Runtime>, plan: &LoadedPlan, now: i64) -> Due {
    let mut due = Due::new();
    for t in tasks(plan) {
        let Some(s) = schedule_of(plan, &t) else {
            continue;
        };
        let last = match &t {
            Task::Backup(r) => rt.catalog.last_scheduled(r),
            Task::Verify(v) => rt.catalog.last_scheduled_verify(v),
        }
        .ok()
        .flatten();
        if let (Some(latest), Some(prev)) = (s.latest_at_or_before(now), last)
            && latest > prev
        {
            let window = start_window(plan, &t);
            if ((now - latest) as u128) <= window.as_nanos() {
                tracing::info!(task = ?t, "catching up the run of {}", rfc3339(latest));
                launch(rt, plan, &t, "catch-up", latest);
            } else {
                let mut missed = 0u32;
                let mut at = prev;
                while let Some(n) = s.next_after(at) {
                    if n > now || missed >= 100_000 {
                        break;
                    }
                    missed += 1;
                    at = n;
                }
                let why = format!(
                    "no daemon ran at {} ({missed} scheduled run(s) missed since {})",
                    rfc3339(latest),
                    rfc3339(prev)
                );
                match &t {
                    Task::Backup(r) => rt.expire(r, latest, &why),
                    Task::Verify(v) => rt.expire_verify(v, latest, &why),
                }
            }
        }
        if let Some(n) = s.next_after(now) {
            let key = schedule_key(plan, &t);
            due.insert(t, (n, key));
        }
    }
    due
}

fn reload(rt: &Arc<Runtime>, path: &Path, due: &mut Due) {
    match LoadedPlan::load(path) {
        Ok(p) => {
            let now = now_ns();
            let all = tasks(&p);
            due.retain(|t, _| all.contains(t));
            for t in all {
                let key = schedule_key(&p, &t);
                if due.get(&t).is_none_or(|(_, k)| *k != key)
                    && let Some(n) = schedule_of(&p, &t).and_then(|s| s.next_after(now))
                {
                    due.insert(t, (n, key));
                }
            }
            tracing::info!(
                "plan {} reloaded: {} resource(s), {} vault verify schedule(s)",
                path.display(),
                p.plan.resources.len(),
                p.verify_schedules.len()
            );
            rt.replace_plan(p);
        }
        Err(e) => tracing::error!("plan not reloaded, the running plan stays: {e}"),
    }
}

fn check_rpo(rt: &Arc<Runtime>) {
    let now = now_ns();
    for s in crate::status::statuses(rt, now) {
        let r = &s.resource;
        let result = if s.rpo_breach {
            rt.open_alert(r, "rpo", now, || {
                let text = format!(
                    "holdfast: {r} breaches its RPO: newest point {} is {} old (RPO {})",
                    s.last_point.as_deref().unwrap_or("(none)"),
                    crate::runner::humanize(Duration::from_secs(s.age_seconds)),
                    crate::runner::humanize(Duration::from_secs(s.rpo_seconds.unwrap_or(0)))
                );
                rt.event_for(EventKind::Rpo, r, None, "rpo", None, None, text)
            })
            .map(|_| ())
        } else {
            rt.close_alert(r, "rpo", now, |c| {
                let text = format!(
                    "holdfast: {r} is within its RPO again (breached since {})",
                    rfc3339(c.opened_ns)
                );
                rt.event_for(EventKind::Recovery, r, None, "rpo", None, None, text)
            })
            .map(|_| ())
        };
        if let Err(e) = result {
            tracing::error!("{e}");
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
    let http = tokio::spawn(crate::api::serve_http(listener, router(api), stop_rx));
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
    // Notifications left undelivered by an earlier process are tried at once, then the
    // delivery loop keeps trying (with backoff) whatever is queued.
    match rt.catalog.outbox_retry_now(now_ns()) {
        Ok(0) => {}
        Ok(n) => tracing::info!("{n} undelivered notification(s) from before: trying them now"),
        Err(e) => tracing::error!("{e}"),
    }
    let (stop_outbox, stop_outbox_rx) = tokio::sync::watch::channel(false);
    let outbox = tokio::spawn(rt.notifier.clone().run(stop_outbox_rx));
    rt.reconcile(&aborted).await;
    let path = plan.path.clone();
    let mut due = initial(&rt, &plan, now_ns());
    drop(plan);
    let mut last_rpo = Instant::now() - Duration::from_secs(60);
    loop {
        let now = now_ns();
        let loaded = rt.plan();
        for (t, (at, _)) in due.iter_mut() {
            if *at <= now {
                let scheduled = *at;
                launch(&rt, &loaded, t, "schedule", scheduled);
                // The next time after now: a daemon that fell behind does not replay.
                if let Some(n) =
                    schedule_of(&loaded, t).and_then(|s| s.next_after(now.max(scheduled)))
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
    let _ = stop_outbox.send(true);
    let _ = outbox.await;
    rt.notifier.flush(Duration::from_secs(10)).await;
    match rt.catalog.outbox_pending() {
        Ok(0) | Err(_) => {}
        Ok(n) => tracing::warn!(
            "{n} notification(s) still undelivered: they stay queued in the catalog and are retried at the next start"
        ),
    }
    tracing::info!("holdfast daemon stopped");
    Ok(())
}
