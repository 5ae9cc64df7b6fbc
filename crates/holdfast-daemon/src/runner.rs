//! A resource's run, exactly as the daemon does it and `holdfast run` does it now: the backup
//! (with hooks and retries, inside the category's start and completion windows, under the
//! concurrency limits), then its copies, then retention (and prune) in every vault holding
//! its points. Every step is a job in the catalog; failures and recoveries notify.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::commands;
use crate::exec::{self, Executor, WorkerResult, WorkerRun};
use crate::job::{JobKind, JobState};
use crate::notify::{Notifier, SharedPlan};
use crate::points::PointsCache;
use crate::settings::LoadedPlan;
use holdfast_ops::worker::Report;

pub use crate::clock::{hostname, humanize, now_ns, rfc3339};

mod backup;
mod reconcile;
mod record;
mod restore;
mod restore_test;
mod verify;

pub use restore::{RestoreOutcome, RestoreRequest};
pub use restore_test::TestJobs;
pub use verify::{VAULT_WIDE, damage_summary};

/// What runs jobs: the binary, the catalog, the plan, the limits, and the shutdown flags.
pub struct Runtime {
    /// The `holdfast` binary run for each step.
    pub exe: PathBuf,
    /// The job catalog.
    pub catalog: Catalog,
    /// Notifications (the outbox's delivery).
    pub notifier: Notifier,
    /// The vaults' point lists, for `/api/v1/points`.
    pub points: PointsCache,
    plan: SharedPlan,
    in_flight: Arc<Mutex<HashMap<Work, Vec<i64>>>>,
    global: Arc<Semaphore>,
    per_vault: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_resource: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// True once the daemon drains: no new job starts.
    pub draining: watch::Sender<bool>,
    /// True once running children must stop.
    pub kill: watch::Sender<bool>,
    active: Arc<std::sync::atomic::AtomicUsize>,
    /// Where the time of day is read.
    pub clock: Arc<dyn Clock>,
    /// What runs the steps.
    pub executor: Arc<dyn Executor>,
}

/// What a job run is of: a resource's run, or a vault's verify (for de-duplication).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Work {
    Run(String),
    Verify(String),
    RestoreTest(String),
}

/// A run or verify counted as queued or running until it is dropped.
struct InFlight {
    map: Arc<Mutex<HashMap<Work, Vec<i64>>>>,
    work: Work,
    job: i64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = m.get_mut(&self.work) {
            v.retain(|j| *j != self.job);
            if v.is_empty() {
                m.remove(&self.work);
            }
        }
    }
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
    /// It failed; `retryable`: running it again later may succeed.
    Failed {
        message: String,
        retryable: bool,
    },
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

impl Try {
    /// A failure a retry does not help (a plan or configuration error).
    fn fail(message: impl Into<String>) -> Try {
        Try::Failed {
            message: message.into(),
            retryable: false,
        }
    }

    /// A worker answered with a report of another operation.
    fn mismatch(want: &str, got: &Report) -> Try {
        Try::fail(format!(
            "the worker answered a {want} with a {} report",
            got.op()
        ))
    }
}

/// How a worker's run ended, with `ok` judging its report.
fn judged(run: WorkerRun, ok: impl FnOnce(Report) -> Try) -> Try {
    match run.result {
        WorkerResult::Done(r) => ok(r),
        WorkerResult::Failed(f) => Try::Failed {
            message: f.message,
            retryable: f.retryable,
        },
        WorkerResult::Deadline => Try::Deadline,
        WorkerResult::Shutdown => Try::Shutdown,
        // A crashed worker (out of memory, killed): worth another attempt.
        WorkerResult::Silent(m) => Try::Failed {
            message: m,
            retryable: true,
        },
    }
}

fn ts_ns(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| i64::try_from(t.as_nanosecond()).ok())
}

impl Runtime {
    /// A runtime over `plan`: the machine's clock, every step a child process.
    pub fn new(exe: PathBuf, catalog: Catalog, plan: LoadedPlan) -> Arc<Self> {
        Self::with(
            exe,
            catalog,
            plan,
            Arc::new(crate::clock::SystemClock),
            Arc::new(exec::Children),
        )
    }

    /// A runtime over `plan` with this clock and executor (tests use scripted ones).
    pub fn with(
        exe: PathBuf,
        catalog: Catalog,
        plan: LoadedPlan,
        clock: Arc<dyn Clock>,
        executor: Arc<dyn Executor>,
    ) -> Arc<Self> {
        let s = plan.settings.clone();
        let plan: SharedPlan = Arc::new(RwLock::new(Arc::new(plan)));
        Arc::new(Runtime {
            exe,
            notifier: Notifier::new(catalog.clone(), plan.clone(), clock.clone()),
            catalog,
            points: PointsCache::default(),
            plan,
            in_flight: Arc::default(),
            global: Arc::new(Semaphore::new(s.max_jobs)),
            per_vault: Mutex::new(HashMap::new()),
            per_resource: Mutex::new(HashMap::new()),
            draining: watch::channel(false).0,
            kill: watch::channel(false).0,
            active: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            clock,
            executor,
        })
    }

    /// Unix nanoseconds now, by this runtime's clock.
    pub fn now_ns(&self) -> i64 {
        self.clock.now_ns()
    }

    /// Run a resource in the background (counted, so a shutdown can wait for it, and known
    /// as queued or running until it ends).
    pub fn spawn_run(self: &Arc<Self>, job: i64, resource: String, start_by: Option<Instant>) {
        let reg = self.register(Work::Run(resource.clone()), job);
        self.spawn_run_registered(job, resource, start_by, reg);
    }

    fn spawn_run_registered(
        self: &Arc<Self>,
        job: i64,
        resource: String,
        start_by: Option<Instant>,
        reg: InFlight,
    ) {
        let rt = self.clone();
        self.track(async move {
            let _reg = reg;
            rt.run_resource(job, &resource, start_by).await;
        });
    }

    /// Count `job` as a queued or running `work` until the returned guard drops.
    fn register(&self, work: Work, job: i64) -> InFlight {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(work.clone())
            .or_default()
            .push(job);
        InFlight {
            map: self.in_flight.clone(),
            work,
            job,
        }
    }

    /// Start `work` now unless one is already queued or running: returns the job and
    /// whether it was queued by this call. The check and the new job's record (`create`: its
    /// id and what `spawn` needs) happen under one lock, so two requests at the same moment
    /// queue one job; `spawn` launches it, holding the guard that counts it in flight.
    fn request_with<T, E>(
        self: &Arc<Self>,
        work: Work,
        create: impl FnOnce() -> Result<(i64, T), E>,
        spawn: impl FnOnce(T, InFlight),
    ) -> Result<(i64, bool), E> {
        let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = m.get(&work).and_then(|v| v.first()) {
            return Ok((*job, false));
        }
        let (job, made) = create()?;
        m.entry(work.clone()).or_default().push(job);
        drop(m);
        spawn(
            made,
            InFlight {
                map: self.in_flight.clone(),
                work,
                job,
            },
        );
        Ok((job, true))
    }

    /// A run of `resource` now (the API's `POST …/run`), unless a run of it is already
    /// queued or running: then that run's backup job. Returns (job, newly queued).
    pub fn request_run(
        self: &Arc<Self>,
        resource: &str,
        trigger: &str,
    ) -> Result<(i64, bool), crate::catalog::CatalogError> {
        self.request_with(
            Work::Run(resource.to_string()),
            || Ok((self.create_backup(resource, trigger, None)?, ())),
            |(), reg| self.spawn_run_registered(reg.job, resource.to_string(), None, reg),
        )
    }

    /// A verify of `vault` now, unless one is already queued or running (then that one).
    pub fn request_verify(
        self: &Arc<Self>,
        vault: &str,
        trigger: &str,
    ) -> Result<(i64, bool), crate::catalog::CatalogError> {
        self.request_with(
            Work::Verify(vault.to_string()),
            || Ok((self.create_verify(vault, trigger, None)?, ())),
            |(), reg| self.spawn_verify_registered(reg.job, vault.to_string(), None, reg),
        )
    }

    /// Spawn `work`, counted among the runs in progress until it ends.
    fn track(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        use std::sync::atomic::Ordering;
        self.active.fetch_add(1, Ordering::SeqCst);
        let active = self.active.clone();
        tokio::spawn(async move {
            work.await;
            active.fetch_sub(1, Ordering::SeqCst);
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

    /// The plan as shared with the notifier.
    pub fn shared_plan(&self) -> SharedPlan {
        self.plan.clone()
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

    /// A slot for `spec`'s job, or None once it is recorded `expired` (no slot before its
    /// start window ended) or `aborted` (the daemon drains).
    async fn slot_for(
        &self,
        report: &mut RunReport,
        spec: &JobSpec<'_>,
    ) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        match self.slot(spec.vault, spec.start_by).await {
            Ok(p) => Some(p),
            Err("late") => {
                self.late(
                    report,
                    spec.kind,
                    spec.resource,
                    spec.vault,
                    spec.job,
                    "no job slot became free (max_jobs / max_jobs_per_vault)",
                );
                None
            }
            Err(_) => {
                self.end(report, spec, Try::Shutdown);
                None
            }
        }
    }

    /// Record how `spec`'s job ended.
    fn end(&self, report: &mut RunReport, spec: &JobSpec<'_>, t: Try) {
        self.finish(
            report,
            spec.resource,
            spec.kind,
            spec.vault,
            spec.job,
            t,
            spec.window,
        );
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
        self.catalog.see_resource(resource, self.now_ns())?;
        self.catalog.create(
            JobKind::Backup,
            resource,
            &vault,
            trigger,
            scheduled_ns,
            None,
            self.now_ns(),
        )
    }

    /// Record a scheduled run that could not start in its window (state `expired`).
    pub fn expire(&self, resource: &str, scheduled_ns: i64, why: &str) {
        let mut report = RunReport { jobs: vec![] };
        let vault = commands::resource(&self.plan().plan, resource)
            .map(|(_, c)| c.vault.get_ref().clone())
            .unwrap_or_default();
        match self.create_backup(resource, "schedule", Some(scheduled_ns)) {
            Ok(job) => self.late(&mut report, JobKind::Backup, resource, &vault, job, why),
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
                    Try::fail(e.to_string()),
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
                self.late(&mut report, JobKind::Backup, resource, &vault, job, "the previous run of this resource was still running");
                return report;
            }
            _ = exec::wait_true(&mut drain) => {
                self.finish(&mut report, resource, JobKind::Backup, &vault, job, Try::Shutdown, None);
                return report;
            }
        };
        let spec = JobSpec {
            kind: JobKind::Backup,
            resource,
            vault: &vault,
            job,
            window,
            start_by,
        };
        let Some(permits) = self.slot_for(&mut report, &spec).await else {
            return report;
        };
        let started = Instant::now();
        let deadline = window.map(|w| started + w);
        let mut backoff = settings.retry_backoff;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            if let Err(e) = self.catalog.start(job, self.now_ns()) {
                break Try::fail(e.to_string());
            }
            let t = self.backup_once(plan, resource, job, deadline).await;
            match t {
                // Only a failure a retry may mend is retried: a wrong key, a missing vault or
                // a resource outside the key's scope fails at once.
                Try::Failed {
                    message: m,
                    retryable: true,
                } if attempt <= settings.retries && !*self.draining.borrow() => {
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
                Try::Failed { message, retryable } if attempt > 1 => {
                    break Try::Failed {
                        message: format!("{message} (after {attempt} attempts)"),
                        retryable,
                    };
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
                |r| match r {
                    Report::Copy(c) => Try::Done {
                        state: JobState::Completed,
                        bytes: Some(c.stored_added),
                        point: c.copied.first().map(|p| p.1.clone()),
                        point_ns: None,
                        message: Some(format!(
                            "{} point(s) copied, {} already there",
                            c.copied.len(),
                            c.already_there.len()
                        )),
                    },
                    other => Try::mismatch("copy", &other),
                },
            )
            .await;
        }
        let vaults: Vec<String> = std::iter::once(vault.clone())
            .chain(c.copy_to.iter().map(|d| d.get_ref().clone()))
            .collect();
        for v in vaults {
            let cmd = match commands::forget(&self.exe, &loaded, resource, &v) {
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
                |r| match r {
                    Report::Forget(f) => {
                        forgot = f.forget.len();
                        Try::note(format!("forgot {forgot} point(s), kept {}", f.keep.len()))
                    }
                    other => Try::mismatch("forget", &other),
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
                    |r| match r {
                        Report::Prune(p) => Try::note(format!(
                            "deleted {} pack(s), freed {} bytes",
                            p.deleted_packs, p.freed_bytes
                        )),
                        other => Try::mismatch("prune", &other),
                    },
                )
                .await;
            }
        }
        drop(guard);
        report
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
        step: Result<commands::Step, commands::PrepareError>,
        window: Option<Duration>,
        ok: impl FnOnce(Report) -> Try,
    ) {
        let job =
            match self
                .catalog
                .create(kind, resource, vault, "backup", None, parent, self.now_ns())
            {
                Ok(j) => j,
                Err(e) => {
                    tracing::error!("{e}");
                    return;
                }
            };
        let spec = JobSpec {
            kind,
            resource,
            vault,
            job,
            window,
            start_by: None,
        };
        self.execute(report, &spec, step, ok).await;
    }

    /// Run the recorded job `spec.job` as one worker: wait for a slot (expired when none
    /// frees before `start_by`), then run `step` within the completion window; `judge` reads
    /// the worker's report.
    async fn execute(
        &self,
        report: &mut RunReport,
        spec: &JobSpec<'_>,
        step: Result<commands::Step, commands::PrepareError>,
        judge: impl FnOnce(Report) -> Try,
    ) {
        let step = match step {
            Ok(s) => s,
            Err(e) => return self.end(report, spec, Try::fail(e.to_string())),
        };
        let Some(permits) = self.slot_for(report, spec).await else {
            return;
        };
        let _ = self.catalog.start(spec.job, self.now_ns());
        let deadline = spec.window.map(|w| Instant::now() + w);
        let t = self.work(spec.job, step, deadline, judge).await;
        drop(permits);
        self.end(report, spec, t);
    }

    /// Run `step` as job `job`'s worker: its progress and its report go to the catalog,
    /// `judge` reads the report.
    async fn work(
        &self,
        job: i64,
        step: commands::Step,
        deadline: Option<Instant>,
        judge: impl FnOnce(Report) -> Try,
    ) -> Try {
        let mut kill = self.kill.subscribe();
        let catalog = self.catalog.clone();
        let progress = move |bytes: u64| {
            let _ = catalog.progress(job, bytes);
        };
        match self
            .executor
            .worker(step, deadline, &mut kill, Box::new(progress))
            .await
        {
            Ok(run) => {
                for w in &run.warnings {
                    tracing::warn!(job, "{w}");
                }
                if let WorkerResult::Done(r) = &run.result
                    && let Err(e) = self.catalog.set_report(job, &r.to_json())
                {
                    tracing::error!("{e}");
                }
                judged(run, judge)
            }
            Err(e) => Try::Failed {
                message: format!("cannot run {}: {e}", self.exe.display()),
                retryable: true,
            },
        }
    }
}

/// A recorded job about to run as one child.
struct JobSpec<'a> {
    /// What it does.
    pub kind: JobKind,
    /// Its resource (`*` for vault-wide jobs).
    pub resource: &'a str,
    /// Its vault.
    pub vault: &'a str,
    /// Its catalog id.
    pub job: i64,
    /// Its completion window.
    pub window: Option<Duration>,
    /// The latest time it may start.
    pub start_by: Option<Instant>,
}
