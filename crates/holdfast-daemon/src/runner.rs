//! A resource's run, exactly as the daemon does it and `holdfast run` does it now: the backup
//! (with hooks and retries, inside the category's start and completion windows, under the
//! concurrency limits), then its copies, then retention (and prune) in every vault holding
//! its points. Every step is a job in the catalog; failures and recoveries notify.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::commands;
use crate::exec::{self, Ended, Outcome};
use crate::job::{JobKind, JobState};
use crate::notify::{Event, EventKind, Notifier};
use crate::settings::LoadedPlan;

/// Unix nanoseconds now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// RFC 3339 of Unix nanoseconds.
pub fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

/// What runs jobs: the binary, the catalog, the plan, the limits, and the shutdown flags.
pub struct Runtime {
    /// The `holdfast` binary run for each step.
    pub exe: PathBuf,
    /// The job catalog.
    pub catalog: Catalog,
    /// Notifications.
    pub notifier: Notifier,
    plan: RwLock<Arc<LoadedPlan>>,
    global: Arc<Semaphore>,
    per_vault: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_resource: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// True once the daemon drains: no new job starts.
    pub draining: watch::Sender<bool>,
    /// True once running children must stop.
    pub kill: watch::Sender<bool>,
    active: std::sync::atomic::AtomicUsize,
}

/// The result of a resource's run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Every job it recorded, in order: (id, kind, vault, state, message).
    pub jobs: Vec<(i64, JobKind, String, JobState, Option<String>)>,
}

impl RunReport {
    /// The worst state among its jobs.
    pub fn ok(&self) -> bool {
        self.jobs.iter().all(|j| j.3.succeeded())
    }
}

enum Try {
    Done {
        state: JobState,
        bytes: Option<u64>,
        point: Option<String>,
        point_ns: Option<i64>,
        message: Option<String>,
    },
    Failed(String),
    Deadline,
    Shutdown,
}

impl Try {
    /// Completed, with a message and nothing else.
    fn note(message: String) -> Try {
        Try::Done {
            state: JobState::Completed,
            bytes: None,
            point: None,
            point_ns: None,
            message: Some(message),
        }
    }
}

fn failed_or(o: &Outcome, ok: impl FnOnce(&Outcome) -> Try) -> Try {
    match o.ended {
        Ended::Deadline => Try::Deadline,
        Ended::Shutdown => Try::Shutdown,
        Ended::Exited if matches!(o.code, Some(0) | Some(3)) => ok(o),
        Ended::Exited => Try::Failed(o.error_line()),
    }
}

fn json(o: &Outcome) -> serde_json::Value {
    serde_json::from_str(o.stdout.trim()).unwrap_or(serde_json::Value::Null)
}

fn ts_ns(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| i64::try_from(t.as_nanosecond()).ok())
}

impl Runtime {
    /// A runtime over `plan`.
    pub fn new(exe: PathBuf, catalog: Catalog, plan: LoadedPlan) -> Arc<Self> {
        let s = plan.settings.clone();
        Arc::new(Runtime {
            exe,
            catalog,
            notifier: Notifier::new(),
            plan: RwLock::new(Arc::new(plan)),
            global: Arc::new(Semaphore::new(s.max_jobs)),
            per_vault: Mutex::new(HashMap::new()),
            per_resource: Mutex::new(HashMap::new()),
            draining: watch::channel(false).0,
            kill: watch::channel(false).0,
            active: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Run a resource in the background (counted, so a shutdown can wait for it).
    pub fn spawn_run(self: &Arc<Self>, job: i64, resource: String, start_by: Option<Instant>) {
        use std::sync::atomic::Ordering;
        self.active.fetch_add(1, Ordering::SeqCst);
        let rt = self.clone();
        tokio::spawn(async move {
            rt.run_resource(job, &resource, start_by).await;
            rt.active.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Runs in progress.
    pub fn active(&self) -> usize {
        self.active.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wait until no run is in progress, or `limit` passes; true when idle.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while self.active() > 0 {
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    /// The current plan.
    pub fn plan(&self) -> Arc<LoadedPlan> {
        self.plan.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace the plan (SIGHUP). Concurrency limits keep their size until restart.
    pub fn replace_plan(&self, p: LoadedPlan) {
        *self.plan.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(p);
    }

    fn vault_sem(&self, vault: &str) -> Arc<Semaphore> {
        let per = self.plan().settings.max_jobs_per_vault;
        self.per_vault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(vault.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(per)))
            .clone()
    }

    fn resource_lock(&self, r: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.per_resource
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(r.to_string())
            .or_default()
            .clone()
    }

    fn event(
        &self,
        kind: EventKind,
        resource: &str,
        condition: &str,
        job: Option<i64>,
        state: Option<JobState>,
        text: String,
    ) {
        let plan = self.plan();
        let category = plan
            .plan
            .resources
            .get(resource)
            .map(|r| r.category.get_ref().clone())
            .unwrap_or_default();
        self.notifier.send(
            &plan.plan,
            Event {
                event: kind,
                resource: resource.into(),
                category,
                condition: condition.into(),
                job,
                state: state.map(|s| s.as_str().into()),
                time: rfc3339(now_ns()),
                text,
                host: hostname(),
            },
        );
    }

    /// Send a notification about `resource` to the plan's channels.
    pub fn notify(
        &self,
        kind: EventKind,
        resource: &str,
        condition: &str,
        job: Option<i64>,
        text: String,
    ) {
        self.event(kind, resource, condition, job, None, text);
    }

    /// Record how a job ended and notify on a new failure or a recovery (de-duplicated by
    /// incident).
    fn outcome(
        &self,
        resource: &str,
        kind: JobKind,
        job: i64,
        state: JobState,
        message: Option<&str>,
    ) {
        let cond = kind.as_str();
        let now = now_ns();
        if state.succeeded() {
            if let Ok(Some(c)) = self.catalog.close_incident(resource, cond) {
                let text = format!(
                    "holdfast: {cond} of {resource} recovered (job {job}) after {} failed run(s) since {}",
                    c.count,
                    rfc3339(c.opened_ns)
                );
                self.event(
                    EventKind::Recovery,
                    resource,
                    cond,
                    Some(job),
                    Some(state),
                    text,
                );
            }
        } else if matches!(state, JobState::Failed | JobState::Expired) {
            match self.catalog.open_incident(resource, cond, now) {
                Ok(true) => {
                    let ev = if state == JobState::Expired {
                        EventKind::Expired
                    } else {
                        EventKind::Failure
                    };
                    let text = format!(
                        "holdfast: {cond} of {resource} {} (job {job}): {}",
                        state.as_str(),
                        message.unwrap_or("no detail")
                    );
                    self.event(ev, resource, cond, Some(job), Some(state), text);
                }
                Ok(false) => {}
                Err(e) => tracing::error!("{e}"),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        report: &mut RunReport,
        resource: &str,
        kind: JobKind,
        vault: &str,
        job: i64,
        t: Try,
        window: Option<Duration>,
    ) {
        let (state, bytes, point, point_ns, message) = match t {
            Try::Done {
                state,
                bytes,
                point,
                point_ns,
                message,
            } => (state, bytes, point, point_ns, message),
            Try::Failed(m) => (JobState::Failed, None, None, None, Some(m)),
            Try::Deadline => (
                JobState::Expired,
                None,
                None,
                None,
                Some(format!(
                    "did not complete within the completion window ({}); stopped",
                    window.map_or("-".into(), humanize)
                )),
            ),
            Try::Shutdown => (
                JobState::Aborted,
                None,
                None,
                None,
                Some("stopped: the daemon shut down".into()),
            ),
        };
        if let Err(e) = self.catalog.finish(
            job,
            state,
            bytes,
            point.as_deref(),
            point_ns,
            message.as_deref(),
            now_ns(),
        ) {
            tracing::error!("{e}");
        }
        tracing::info!(
            job,
            kind = kind.as_str(),
            resource,
            vault,
            state = state.as_str(),
            "{}",
            message.as_deref().unwrap_or("")
        );
        self.outcome(resource, kind, job, state, message.as_deref());
        report
            .jobs
            .push((job, kind, vault.to_string(), state, message));
    }

    /// Wait for a slot (global and per vault) until `deadline`; None when draining or late.
    async fn slot(
        &self,
        vault: &str,
        deadline: Option<Instant>,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), &'static str> {
        let g = self.global.clone();
        let v = self.vault_sem(vault);
        let mut drain = self.draining.subscribe();
        let wait = async move {
            let a = g.acquire_owned().await.map_err(|_| "closed")?;
            let b = v.acquire_owned().await.map_err(|_| "closed")?;
            Ok::<_, &'static str>((a, b))
        };
        let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        tokio::select! {
            r = wait => r,
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => Err("late"),
            _ = exec::wait_true(&mut drain) => Err("draining"),
        }
    }

    /// Record a backup job for `resource` (state `created`) and return its id.
    pub fn create_backup(
        &self,
        resource: &str,
        trigger: &str,
        scheduled_ns: Option<i64>,
    ) -> Result<i64, crate::catalog::CatalogError> {
        let plan = self.plan();
        let vault = commands::resource(&plan.plan, resource)
            .map(|(_, c)| c.vault.get_ref().clone())
            .unwrap_or_default();
        self.catalog.see_resource(resource, now_ns())?;
        self.catalog.create(
            JobKind::Backup,
            resource,
            &vault,
            trigger,
            scheduled_ns,
            None,
            now_ns(),
        )
    }

    /// Record a scheduled run that could not start in its window (state `expired`).
    pub fn expire(&self, resource: &str, scheduled_ns: i64, why: &str) {
        let mut report = RunReport { jobs: vec![] };
        let vault = commands::resource(&self.plan().plan, resource)
            .map(|(_, c)| c.vault.get_ref().clone())
            .unwrap_or_default();
        match self.create_backup(resource, "schedule", Some(scheduled_ns)) {
            Ok(job) => self.late(&mut report, resource, &vault, job, why),
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// Run the backup job `job` of `resource`, then its copies and retention.
    /// `start_by`: the latest time it may start (its start window), for scheduled runs.
    pub async fn run_resource(
        self: &Arc<Self>,
        job: i64,
        resource: &str,
        start_by: Option<Instant>,
    ) -> RunReport {
        let mut report = RunReport { jobs: vec![] };
        let loaded = self.plan();
        let plan = &loaded.plan;
        let (r, c) = match commands::resource(plan, resource) {
            Ok(x) => x,
            Err(e) => {
                self.finish(
                    &mut report,
                    resource,
                    JobKind::Backup,
                    "",
                    job,
                    Try::Failed(e.to_string()),
                    None,
                );
                return report;
            }
        };
        let category = r.category.get_ref().clone();
        let vault = c.vault.get_ref().clone();
        let window = loaded.completion_window(&category);
        let settings = loaded.settings.clone();
        // One run of a resource at a time; then a slot.
        let lock = self.resource_lock(resource);
        let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        let mut drain = self.draining.subscribe();
        let guard: OwnedMutexGuard<()> = tokio::select! {
            g = lock.lock_owned() => g,
            _ = tokio::time::sleep_until(start_by.unwrap_or(far)) => {
                self.late(&mut report, resource, &vault, job, "the previous run of this resource was still running");
                return report;
            }
            _ = exec::wait_true(&mut drain) => {
                self.finish(&mut report, resource, JobKind::Backup, &vault, job, Try::Shutdown, None);
                return report;
            }
        };
        let permits = match self.slot(&vault, start_by).await {
            Ok(p) => p,
            Err("late") => {
                self.late(
                    &mut report,
                    resource,
                    &vault,
                    job,
                    "no job slot became free (max_jobs / max_jobs_per_vault)",
                );
                return report;
            }
            Err(_) => {
                self.finish(
                    &mut report,
                    resource,
                    JobKind::Backup,
                    &vault,
                    job,
                    Try::Shutdown,
                    None,
                );
                return report;
            }
        };
        let started = Instant::now();
        let deadline = window.map(|w| started + w);
        let mut backoff = settings.retry_backoff;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            if let Err(e) = self.catalog.start(job, now_ns()) {
                break Try::Failed(e.to_string());
            }
            let t = self.backup_once(plan, resource, job, deadline).await;
            match t {
                Try::Failed(m) if attempt <= settings.retries && !*self.draining.borrow() => {
                    tracing::warn!(
                        job,
                        resource,
                        "attempt {attempt} failed: {m}; retrying in {}",
                        humanize(backoff)
                    );
                    let _ = self.catalog.note(job, &format!("attempt {attempt}: {m}"));
                    let mut drain = self.draining.subscribe();
                    let wake = Instant::now() + backoff;
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake.min(deadline.unwrap_or(far))) => {}
                        _ = exec::wait_true(&mut drain) => break Try::Shutdown,
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break Try::Deadline;
                    }
                    backoff = backoff.saturating_mul(2);
                }
                Try::Failed(m) if attempt > 1 => {
                    break Try::Failed(format!("{m} (after {attempt} attempts)"));
                }
                other => break other,
            }
        };
        drop(permits);
        let ok = matches!(result, Try::Done { .. });
        self.finish(
            &mut report,
            resource,
            JobKind::Backup,
            &vault,
            job,
            result,
            window,
        );
        if !ok {
            return report;
        }
        // Copies, then retention in every vault holding the resource's points.
        for dest in &c.copy_to {
            let dest = dest.get_ref();
            let cmd = commands::copy(&self.exe, plan, resource, dest);
            self.step(
                &mut report,
                JobKind::Copy,
                resource,
                dest,
                Some(job),
                cmd,
                window,
                |o| {
                    let v = json(o);
                    let copied = v["copied"].as_array().map_or(0, Vec::len);
                    let there = v["already_there"].as_array().map_or(0, Vec::len);
                    Try::Done {
                        state: JobState::Completed,
                        bytes: v["stored_added"].as_u64(),
                        point: v["copied"][0][1].as_str().map(String::from),
                        point_ns: None,
                        message: Some(format!("{copied} point(s) copied, {there} already there")),
                    }
                },
            )
            .await;
        }
        let vaults: Vec<String> = std::iter::once(vault.clone())
            .chain(c.copy_to.iter().map(|d| d.get_ref().clone()))
            .collect();
        for v in vaults {
            let cmd = match commands::forget(&self.exe, plan, resource, &v) {
                Ok(None) => continue,
                Ok(Some(c)) => Ok(c),
                Err(e) => Err(e),
            };
            let mut forgot = 0usize;
            self.step(
                &mut report,
                JobKind::Retention,
                resource,
                &v,
                Some(job),
                cmd,
                window,
                |o| {
                    let j = json(o);
                    forgot = j["forget"].as_array().map_or(0, Vec::len);
                    let kept = j["keep"].as_array().map_or(0, Vec::len);
                    Try::note(format!("forgot {forgot} point(s), kept {kept}"))
                },
            )
            .await;
            if forgot > 0 && settings.prune {
                let cmd = commands::prune(&self.exe, plan, &v);
                self.step(
                    &mut report,
                    JobKind::Prune,
                    resource,
                    &v,
                    Some(job),
                    cmd,
                    None,
                    |o| {
                        let j = json(o);
                        Try::note(format!(
                            "deleted {} pack(s), freed {} bytes",
                            j["deleted_packs"].as_u64().unwrap_or(0),
                            j["freed_bytes"].as_u64().unwrap_or(0)
                        ))
                    },
                )
                .await;
            }
        }
        drop(guard);
        report
    }

    fn late(&self, report: &mut RunReport, resource: &str, vault: &str, job: i64, why: &str) {
        let msg = format!("could not start within the start window: {why}");
        let _ = self.catalog.finish(
            job,
            JobState::Expired,
            None,
            None,
            None,
            Some(&msg),
            now_ns(),
        );
        self.outcome(
            resource,
            JobKind::Backup,
            job,
            JobState::Expired,
            Some(&msg),
        );
        report.jobs.push((
            job,
            JobKind::Backup,
            vault.into(),
            JobState::Expired,
            Some(msg),
        ));
    }

    /// One follow-up step (copy, retention, prune) as its own job.
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        report: &mut RunReport,
        kind: JobKind,
        resource: &str,
        vault: &str,
        parent: Option<i64>,
        cmd: Result<Command, commands::PrepareError>,
        window: Option<Duration>,
        ok: impl FnOnce(&Outcome) -> Try,
    ) {
        let job = match self
            .catalog
            .create(kind, resource, vault, "backup", None, parent, now_ns())
        {
            Ok(j) => j,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        let cmd = match cmd {
            Ok(c) => c,
            Err(e) => {
                return self.finish(
                    report,
                    resource,
                    kind,
                    vault,
                    job,
                    Try::Failed(e.to_string()),
                    window,
                );
            }
        };
        let permits = match self.slot(vault, None).await {
            Ok(p) => p,
            Err(_) => {
                return self.finish(report, resource, kind, vault, job, Try::Shutdown, window);
            }
        };
        let _ = self.catalog.start(job, now_ns());
        let deadline = window.map(|w| Instant::now() + w);
        let mut kill = self.kill.subscribe();
        let t = match exec::run(cmd, deadline, &mut kill).await {
            Ok(o) => failed_or(&o, ok),
            Err(e) => Try::Failed(format!("cannot run {}: {e}", self.exe.display())),
        };
        drop(permits);
        self.finish(report, resource, kind, vault, job, t, window);
    }

    async fn backup_once(
        &self,
        plan: &holdfast_plan::Plan,
        resource: &str,
        job: i64,
        deadline: Option<Instant>,
    ) -> Try {
        let Ok((r, _)) = commands::resource(plan, resource) else {
            return Try::Failed(format!("resource {resource:?} is not in the plan"));
        };
        let mut kill = self.kill.subscribe();
        if let Some(h) = &r.pre_hook {
            match exec::run(
                commands::hook(h.get_ref(), resource, job, "pre", None),
                deadline,
                &mut kill,
            )
            .await
            {
                Ok(o) if o.ended == Ended::Exited && o.code == Some(0) => {}
                Ok(o) => {
                    return match o.ended {
                        Ended::Deadline => Try::Deadline,
                        Ended::Shutdown => Try::Shutdown,
                        Ended::Exited => {
                            Try::Failed(format!("pre_hook failed: {}", o.error_line()))
                        }
                    };
                }
                Err(e) => return Try::Failed(format!("pre_hook cannot run: {e}")),
            }
        }
        let cmd = match commands::backup(&self.exe, plan, resource) {
            Ok(c) => c,
            Err(e) => return Try::Failed(e.to_string()),
        };
        let mut t = match exec::run(cmd, deadline, &mut kill).await {
            Ok(o) => failed_or(&o, |o| {
                let v = json(o);
                let partial = o.code == Some(3) || v["partial"].as_bool() == Some(true);
                Try::Done {
                    state: if partial {
                        JobState::Partial
                    } else {
                        JobState::Completed
                    },
                    bytes: v["summary"]["bytes_added"].as_u64(),
                    point: v["point"].as_str().map(String::from),
                    point_ns: v["time"].as_str().and_then(ts_ns),
                    message: partial.then(|| {
                        format!(
                            "{} item(s) could not be read",
                            v["errors"].as_array().map_or(0, Vec::len)
                        )
                    }),
                }
            }),
            Err(e) => Try::Failed(format!("cannot run {}: {e}", self.exe.display())),
        };
        if let Some(h) = &r.post_hook {
            let state = match &t {
                Try::Done { state, .. } => state.as_str(),
                _ => "failed",
            };
            match exec::run(
                commands::hook(h.get_ref(), resource, job, "post", Some(state)),
                deadline,
                &mut kill,
            )
            .await
            {
                Ok(o) if o.ended == Ended::Exited && o.code == Some(0) => {}
                Ok(o) => {
                    let why = format!("post_hook failed: {}", o.error_line());
                    match &mut t {
                        Try::Done { message, .. } => *message = Some(why),
                        Try::Failed(m) => m.push_str(&format!("; {why}")),
                        _ => {}
                    }
                }
                Err(e) => tracing::warn!("post_hook cannot run: {e}"),
            }
        }
        t
    }

    /// After a crash: for each aborted backup job, look for a point the child saved after
    /// all, and record the job completed with it. Also note each resource's newest point.
    pub async fn reconcile(&self, aborted: &[crate::catalog::JobRecord]) {
        let loaded = self.plan();
        let plan = &loaded.plan;
        let mut kill = self.kill.subscribe();
        for vname in plan.vaults.keys() {
            let resources: Vec<&String> = plan
                .resources
                .iter()
                .filter(|(_, r)| {
                    plan.categories
                        .get(r.category.get_ref())
                        .is_some_and(|c| c.vault.get_ref() == vname)
                })
                .map(|(n, _)| n)
                .collect();
            if resources.is_empty() {
                continue;
            }
            let Ok(cmd) = commands::points(&self.exe, plan, vname) else {
                continue;
            };
            let out = match exec::run(
                cmd,
                Some(Instant::now() + Duration::from_secs(300)),
                &mut kill,
            )
            .await
            {
                Ok(o) if o.code == Some(0) => o,
                Ok(o) => {
                    tracing::warn!("vault {vname:?}: cannot list points: {}", o.error_line());
                    continue;
                }
                Err(e) => {
                    tracing::warn!("vault {vname:?}: cannot list points: {e}");
                    continue;
                }
            };
            let v = json(&out);
            let points: Vec<(String, String, i64)> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| {
                            Some((
                                p["id"].as_str()?.to_string(),
                                p["resource"].as_str()?.to_string(),
                                ts_ns(p["time"].as_str()?)?,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            for r in resources {
                let _ = self.catalog.see_resource(r, now_ns());
                if let Some(newest) = points.iter().filter(|p| &p.1 == r).map(|p| p.2).max() {
                    let _ = self.catalog.set_last_point(r, newest);
                }
            }
            for j in aborted
                .iter()
                .filter(|j| j.kind == JobKind::Backup && &j.vault == vname)
            {
                let since = j.started_ns.unwrap_or(j.created_ns) - 5_000_000_000;
                let known: Vec<String> = self
                    .catalog
                    .list(&crate::catalog::Filter {
                        resource: Some(j.resource.clone()),
                        kind: Some(JobKind::Backup),
                        ..Default::default()
                    })
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|k| k.point)
                    .collect();
                if let Some(p) = points
                    .iter()
                    .filter(|p| p.1 == j.resource && p.2 >= since && !known.contains(&p.0))
                    .min_by_key(|p| p.2)
                {
                    tracing::info!(
                        job = j.id,
                        "point {} of {} found after restart",
                        &p.0[..12.min(p.0.len())],
                        j.resource
                    );
                    let _ = self.catalog.adopt_point(j.id, &p.0, p.2, now_ns());
                }
            }
        }
    }
}

/// `1h 30m`-style rendering of a duration.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!(
            "{}m{}",
            s / 60,
            if !s.is_multiple_of(60) {
                format!(" {}s", s % 60)
            } else {
                String::new()
            }
        ),
        3600..86_400 => format!(
            "{}h{}",
            s / 3600,
            if s % 3600 >= 60 {
                format!(" {}m", s % 3600 / 60)
            } else {
                String::new()
            }
        ),
        _ => format!(
            "{}d{}",
            s / 86_400,
            if s % 86_400 >= 3600 {
                format!(" {}h", s % 86_400 / 3600)
            } else {
                String::new()
            }
        ),
    }
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
