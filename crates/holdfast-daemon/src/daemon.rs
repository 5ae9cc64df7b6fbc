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

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::api::{Api, router};
use crate::runner::Runtime;
use crate::schedule::Scheduler;
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

/// Run the daemon until SIGTERM/SIGINT. Returns once every job is finished or aborted.
pub async fn serve(rt: Arc<Runtime>) -> Result<(), DaemonError> {
    let started = rt.now_ns();
    let plan = rt.plan();
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    // Scratch targets (folders, servers, check commands) of restore tests a killed worker or
    // daemon left behind: gone before anything answers or runs.
    holdfast_ops::restore_test::sweep_leftovers(&std::env::temp_dir());
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
    for (name, d) in &plan.resolved.drills {
        if d.test.schedule.is_some() {
            tracing::warn!(
                "drill {name:?} has a schedule, but this daemon does not run drills yet: run \
                 `holdfast drill run {name}` from cron (docs/restore-tests.md#drills)"
            );
        }
    }
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
    match rt.catalog.outbox_retry_now(rt.now_ns()) {
        Ok(0) => {}
        Ok(n) => tracing::info!("{n} undelivered notification(s) from before: trying them now"),
        Err(e) => tracing::error!("{e}"),
    }
    let (stop_outbox, stop_outbox_rx) = tokio::sync::watch::channel(false);
    let outbox = tokio::spawn(rt.notifier.clone().run(stop_outbox_rx));
    rt.reconcile(&aborted).await;
    let path = plan.path.clone();
    drop(plan);
    let mut scheduler = Scheduler::start(&rt);
    loop {
        let wake = scheduler.step(&rt).await;
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = hup.recv() => scheduler.reload(&rt, &path),
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
        rt.catalog.abort_unfinished(rt.now_ns())?;
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
