//! The scheduler, retries, windows and incidents on fake time: a paused tokio runtime, the
//! [`TokioClock`] that follows it, and a scripted [`Executor`] in place of the worker
//! processes. Hours of schedules run in milliseconds; every assertion is about what the
//! daemon recorded in its catalog or asked its executor to do, and when.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_daemon::catalog::Filter;
use holdfast_daemon::clock::{Clock, TokioClock};
use holdfast_daemon::commands::Step;
use holdfast_daemon::exec::{BoxFuture, Ended, Executor, Outcome, WorkerResult, WorkerRun};
use holdfast_daemon::schedule::Scheduler;
use holdfast_daemon::{Catalog, JobKind, JobRecord, JobState, LoadedPlan, Runtime};
use holdfast_engine::point::Summary;
use holdfast_ops::backup::BackupReport;
use holdfast_ops::forget::ForgetReport;
use holdfast_ops::worker::{Failure, Report, Request};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::Instant;

/// 2026-01-05T00:00:00Z, a Monday.
const T0: i64 = 1_767_571_200 * 1_000_000_000;
const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;

/// What a scripted step does.
#[derive(Clone)]
enum Reply {
    /// Succeed after this long (simulated).
    Done(Duration),
    /// Fail at once.
    Fail { retryable: bool },
}

/// One call the runner made: the operation, the resource or vault it was for, and when
/// (by the clock).
#[derive(Debug, Clone, PartialEq)]
struct Call {
    op: &'static str,
    subject: String,
    at_ns: i64,
}

type Script = dyn Fn(&'static str, &str, usize) -> Reply + Send + Sync;

/// An executor that answers from a script: `script(op, subject, n)` for the `n`-th call
/// (from 0) of `op` on `subject`.
struct Scripted {
    clock: Arc<dyn Clock>,
    calls: Mutex<Vec<Call>>,
    script: Box<Script>,
}

impl Scripted {
    fn new(
        clock: Arc<dyn Clock>,
        script: impl Fn(&'static str, &str, usize) -> Reply + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Scripted {
            clock,
            calls: Mutex::new(Vec::new()),
            script: Box::new(script),
        })
    }

    fn calls(&self, op: &str, subject: &str) -> Vec<i64> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.op == op && c.subject == subject)
            .map(|c| c.at_ns)
            .collect()
    }
}

fn what(req: &Request) -> (&'static str, String) {
    match req {
        Request::Backup(b) => ("backup", b.resource.clone().unwrap_or_default()),
        Request::BaseBackup(_) => ("base_backup", String::new()),
        Request::Copy(_) => ("copy", String::new()),
        Request::Forget(_) => ("forget", String::new()),
        Request::Prune(_) => ("prune", String::new()),
        Request::Verify(_) => ("verify", String::new()),
        Request::Restore(_) => ("restore", String::new()),
        Request::RestoreTest(r) => ("restore_test", r.resource.clone()),
        Request::Points(_) => ("points", String::new()),
    }
}

fn report(op: &str, subject: &str, now_ns: i64) -> Report {
    match op {
        "backup" => Report::Backup(BackupReport {
            point: format!("{:064x}", now_ns),
            resource: subject.to_string(),
            time: jiff::Timestamp::from_nanosecond(i128::from(now_ns))
                .unwrap()
                .to_string(),
            partial: false,
            errors: vec![],
            warnings: vec![],
            summary: Summary::default(),
        }),
        "forget" => Report::Forget(ForgetReport {
            dry_run: false,
            keep: vec![],
            forget: vec![],
        }),
        "copy" => Report::Copy(Default::default()),
        "prune" => Report::Prune(Default::default()),
        other => panic!("the runner asked for a {other}"),
    }
}

impl Executor for Scripted {
    fn worker<'a>(
        &'a self,
        step: Step,
        deadline: Option<Instant>,
        kill: &'a mut watch::Receiver<bool>,
        _progress: Box<dyn Fn(u64) + Send + 'static>,
    ) -> BoxFuture<'a, std::io::Result<WorkerRun>> {
        Box::pin(async move {
            let (op, subject) = what(&step.job.request);
            let now = self.clock.now_ns();
            let n = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls
                    .iter()
                    .filter(|c| c.op == op && c.subject == subject)
                    .count();
                calls.push(Call {
                    op,
                    subject: subject.clone(),
                    at_ns: now,
                });
                n
            };
            let result = match (self.script)(op, &subject, n) {
                Reply::Fail { retryable } => WorkerResult::Failed(Failure {
                    kind: holdfast_engine::ErrorKind::SourceFailed,
                    retryable,
                    message: format!("{op} of {subject} failed (scripted)"),
                }),
                Reply::Done(took) => {
                    let far = Instant::now() + Duration::from_secs(365 * 86_400);
                    tokio::select! {
                        _ = tokio::time::sleep(took) => {
                            WorkerResult::Done(report(op, &subject, self.clock.now_ns()))
                        }
                        _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => WorkerResult::Deadline,
                        _ = holdfast_daemon::exec::wait_true(kill) => WorkerResult::Shutdown,
                    }
                }
            };
            Ok(WorkerRun {
                result,
                warnings: vec![],
            })
        })
    }

    fn hook<'a>(
        &'a self,
        _cmd: Command,
        _deadline: Option<Instant>,
        _kill: &'a mut watch::Receiver<bool>,
    ) -> BoxFuture<'a, std::io::Result<Outcome>> {
        Box::pin(async {
            Ok(Outcome {
                code: Some(0),
                stdout: String::new(),
                stderr: String::new(),
                ended: Ended::Exited,
            })
        })
    }
}

/// A plan (two vaults with a passphrase file, the given daemon settings and the rest) in a
/// temporary directory, and a runtime over it with the fake clock at `start_ns`.
struct World {
    _dir: tempfile::TempDir,
    rt: Arc<Runtime>,
    exec: Arc<Scripted>,
}

impl World {
    fn new(
        start_ns: i64,
        daemon: &str,
        rest: &str,
        script: impl Fn(&'static str, &str, usize) -> Reply + Send + Sync + 'static,
    ) -> World {
        Self::with_catalog(start_ns, daemon, rest, script, |_| {})
    }

    fn with_catalog(
        start_ns: i64,
        daemon: &str,
        rest: &str,
        script: impl Fn(&'static str, &str, usize) -> Reply + Send + Sync + 'static,
        before: impl FnOnce(&Catalog),
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("pass"), "pw\n").unwrap();
        let plan = format!(
            r#"[daemon]
state_dir = "{state}"
{daemon}

[vaults.main]
url = "{d}/main"
passphrase_file = "{d}/pass"

[vaults.dr]
url = "{d}/dr"
passphrase_file = "{d}/pass"

[notifications.ops]
kind = "webhook"
url_env = "HOLDFAST_TEST_NO_SUCH_WEBHOOK"

{rest}
"#,
            state = d.join("state").display(),
            d = d.display(),
        );
        let path = d.join("plan.toml");
        std::fs::write(&path, plan).unwrap();
        let loaded = LoadedPlan::load(&path).unwrap();
        let catalog = Catalog::open(&d.join("state")).unwrap();
        before(&catalog);
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(start_ns));
        let exec = Scripted::new(clock.clone(), script);
        let rt = Runtime::with(
            Path::new("/nonexistent/holdfast").into(),
            catalog,
            loaded,
            clock,
            exec.clone(),
        );
        World {
            _dir: dir,
            rt,
            exec,
        }
    }

    /// Run the scheduler's loop, as the daemon does, until the clock reads `until_ns`; then
    /// let the runs in progress finish.
    async fn run_until(&self, until_ns: i64) {
        let mut s = Scheduler::start(&self.rt);
        while self.rt.now_ns() < until_ns {
            let wake = s.step(&self.rt).await;
            tokio::time::sleep_until(wake).await;
        }
        assert!(
            self.rt.wait_idle(Duration::from_secs(7 * 86_400)).await,
            "runs still going"
        );
    }

    fn jobs(&self, kind: JobKind, resource: &str) -> Vec<JobRecord> {
        let mut v = self
            .rt
            .catalog
            .list(&Filter {
                resource: Some(resource.into()),
                kind: Some(kind),
                limit: 10_000,
                ..Filter::default()
            })
            .unwrap();
        v.sort_by_key(|j| j.id);
        v
    }
}

fn ok(_: &'static str, _: &str, _: usize) -> Reply {
    Reply::Done(Duration::from_secs(30))
}

#[tokio::test(start_paused = true)]
async fn runs_start_at_their_cron_times_and_are_followed_by_copies_and_retention() {
    let w = World::new(
        T0 + 30 * SEC,
        "",
        r#"
[categories.often]
schedule = "*/10 * * * *"
vault = "main"
copy_to = ["dr"]
[categories.often.retention]
keep_last = 3

[resources.docs]
kind = "files"
category = "often"
paths = ["/srv/docs"]
"#,
        ok,
    );
    w.run_until(T0 + 60 * MIN + 30 * SEC).await;
    let backups = w.jobs(JobKind::Backup, "docs");
    let scheduled: Vec<i64> = backups.iter().map(|j| j.scheduled_ns.unwrap()).collect();
    let want: Vec<i64> = (1..=6).map(|k| T0 + k * 10 * MIN).collect();
    assert_eq!(scheduled, want);
    for j in &backups {
        assert_eq!(j.state, JobState::Completed, "{j:?}");
        assert_eq!(j.trigger, "schedule");
        let started = j.started_ns.unwrap();
        assert!(
            (j.scheduled_ns.unwrap()..j.scheduled_ns.unwrap() + 2 * SEC).contains(&started),
            "{j:?}"
        );
        assert_eq!(j.point_ns, Some(started + 30 * SEC), "{j:?}");
        // The report is recorded as the worker sent it.
        assert_eq!(
            j.report.as_ref().unwrap()["point"].as_str(),
            j.point.as_deref()
        );
    }
    // Each run: its copy to dr, then retention in main and in dr.
    let copies = w.jobs(JobKind::Copy, "docs");
    let retention = w.jobs(JobKind::Retention, "docs");
    assert_eq!(copies.len(), 6);
    assert_eq!(retention.len(), 12);
    for b in &backups {
        let c: Vec<_> = copies.iter().filter(|c| c.parent == Some(b.id)).collect();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].vault, "dr");
        let r: Vec<&str> = retention
            .iter()
            .filter(|r| r.parent == Some(b.id))
            .map(|r| r.vault.as_str())
            .collect();
        assert_eq!(r, ["main", "dr"]);
        assert!(c[0].started_ns >= b.ended_ns);
    }
    // Nothing forgot a point, so nothing was pruned.
    assert!(w.jobs(JobKind::Prune, "docs").is_empty());
}

#[tokio::test(start_paused = true)]
async fn only_retryable_failures_are_retried_with_doubling_backoff() {
    let w = World::new(
        T0 + 30 * SEC,
        "retries = 2\nretry_backoff = \"1m\"\nmax_jobs = 4\nmax_jobs_per_vault = 4",
        r#"
[categories.hourly]
schedule = "0 * * * *"
vault = "main"
start_window = "10m"
[categories.hourly.retention]
keep_last = 3

[resources.flaky]
kind = "files"
category = "hourly"
paths = ["/srv/flaky"]

[resources.broken]
kind = "files"
category = "hourly"
paths = ["/srv/broken"]

[resources.down]
kind = "files"
category = "hourly"
paths = ["/srv/down"]
"#,
        |op, subject, n| match (op, subject) {
            // Fails twice, then works.
            ("backup", "flaky") if n < 2 => Reply::Fail { retryable: true },
            // A configuration error: a retry does not help.
            ("backup", "broken") => Reply::Fail { retryable: false },
            // Down for good: every attempt fails.
            ("backup", "down") => Reply::Fail { retryable: true },
            _ => Reply::Done(Duration::from_secs(10)),
        },
    );
    w.run_until(T0 + 60 * MIN + 30 * SEC).await;
    let at = |r: &str| -> Vec<i64> {
        w.exec
            .calls("backup", r)
            .iter()
            .map(|t| (t - (T0 + 60 * MIN)) / SEC)
            .collect()
    };
    // 1 min, then 2 min after the second attempt.
    assert_eq!(at("flaky"), [0, 60, 180]);
    assert_eq!(at("broken"), [0]);
    assert_eq!(at("down"), [0, 60, 180]);

    let flaky = &w.jobs(JobKind::Backup, "flaky")[0];
    assert_eq!(flaky.state, JobState::Completed, "{flaky:?}");
    assert_eq!(flaky.attempts, 3);
    let broken = &w.jobs(JobKind::Backup, "broken")[0];
    assert_eq!(broken.state, JobState::Failed);
    assert_eq!(broken.attempts, 1);
    let down = &w.jobs(JobKind::Backup, "down")[0];
    assert_eq!(down.state, JobState::Failed);
    assert!(
        down.message
            .as_deref()
            .unwrap()
            .ends_with("(after 3 attempts)"),
        "{down:?}"
    );
    // A failed backup has no copies or retention after it.
    assert!(w.jobs(JobKind::Retention, "broken").is_empty());
    assert_eq!(w.jobs(JobKind::Retention, "flaky").len(), 1);
    // One incident (and one alert queued) per failing resource; none for the one that
    // recovered within its retries.
    let cat = &w.rt.catalog;
    assert!(cat.incident_open("broken", "backup").unwrap());
    assert!(cat.incident_open("down", "backup").unwrap());
    assert!(!cat.incident_open("flaky", "backup").unwrap());
    assert_eq!(cat.outbox_pending().unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn windows_expire_runs_that_cannot_start_or_finish_in_time() {
    let w = World::new(
        T0 + 2 * MIN,
        "max_jobs = 1\nmax_jobs_per_vault = 1\nretries = 0",
        r#"
[categories.hourly]
schedule = "0 * * * *"
vault = "main"
start_window = "5m"
completion_window = "15m"
[categories.hourly.retention]
keep_last = 3

[categories.later]
schedule = "1 * * * *"
vault = "main"
start_window = "5m"
[categories.later.retention]
keep_last = 3

[resources.slow]
kind = "files"
category = "hourly"
paths = ["/srv/slow"]

[resources.waiting]
kind = "files"
category = "later"
paths = ["/srv/waiting"]
"#,
        |op, subject, _| match (op, subject) {
            // Takes the only slot at 01:00 and would hold it for 40 minutes.
            ("backup", "slow") => Reply::Done(Duration::from_secs(40 * 60)),
            _ => Reply::Done(Duration::from_secs(10)),
        },
    );
    w.run_until(T0 + 62 * MIN).await;
    let slow = &w.jobs(JobKind::Backup, "slow")[0];
    let waiting = &w.jobs(JobKind::Backup, "waiting")[0];
    // slow is stopped at the end of its completion window, 15 minutes after it started.
    assert_eq!(slow.state, JobState::Expired, "{slow:?}");
    assert!(
        slow.message
            .as_deref()
            .unwrap()
            .contains("completion window (15m)"),
        "{slow:?}"
    );
    assert_eq!(slow.ended_ns.unwrap() - slow.started_ns.unwrap(), 15 * MIN);
    // waiting (01:01) found no free slot before its start window closed at 01:06.
    assert_eq!(waiting.state, JobState::Expired, "{waiting:?}");
    let m = waiting.message.as_deref().unwrap();
    assert!(m.contains("could not start within the start window"), "{m}");
    assert!(m.contains("no job slot became free"), "{m}");
    assert_eq!(waiting.ended_ns.unwrap(), T0 + 66 * MIN);
    assert!(w.exec.calls("backup", "waiting").is_empty());
    // Neither had copies or retention; each is an incident of its own.
    assert!(w.jobs(JobKind::Retention, "slow").is_empty());
    assert!(w.rt.catalog.incident_open("slow", "backup").unwrap());
    assert!(w.rt.catalog.incident_open("waiting", "backup").unwrap());
}

#[tokio::test(start_paused = true)]
async fn start_up_catches_up_a_run_inside_its_window_and_records_older_misses() {
    // The last daemon scheduled both resources' 22:00 runs, then stopped. This one starts
    // at 00:03: "recent"'s 00:00 run is inside its 10-minute window and runs now; "stale"
    // (window 1 minute) gets one expired job for the 00:00 run, naming the two missed runs.
    let before = |c: &Catalog| {
        for r in ["recent", "stale"] {
            let j = c
                .create(
                    JobKind::Backup,
                    r,
                    "main",
                    "schedule",
                    Some(T0 - 2 * 60 * MIN),
                    None,
                    T0 - 2 * 60 * MIN,
                )
                .unwrap();
            c.finish(
                j,
                JobState::Completed,
                None,
                None,
                None,
                None,
                T0 - 119 * MIN,
            )
            .unwrap();
        }
    };
    let w = World::with_catalog(
        T0 + 3 * MIN,
        "max_jobs = 4\nmax_jobs_per_vault = 4",
        r#"
[categories.wide]
schedule = "0 * * * *"
vault = "main"
start_window = "10m"
[categories.wide.retention]
keep_last = 3

[categories.narrow]
schedule = "0 * * * *"
vault = "main"
start_window = "1m"
[categories.narrow.retention]
keep_last = 3

[resources.recent]
kind = "files"
category = "wide"
paths = ["/srv/recent"]

[resources.stale]
kind = "files"
category = "narrow"
paths = ["/srv/stale"]
"#,
        ok,
        before,
    );
    w.run_until(T0 + 4 * MIN).await;
    let recent = w.jobs(JobKind::Backup, "recent");
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[1].trigger, "catch-up");
    assert_eq!(recent[1].scheduled_ns, Some(T0));
    assert_eq!(recent[1].state, JobState::Completed);
    let stale = w.jobs(JobKind::Backup, "stale");
    assert_eq!(stale.len(), 2);
    assert_eq!(stale[1].state, JobState::Expired);
    assert_eq!(stale[1].scheduled_ns, Some(T0));
    let m = stale[1].message.as_deref().unwrap();
    assert!(m.contains("2 scheduled run(s) missed"), "{m}");
    assert!(w.exec.calls("backup", "stale").is_empty());
    // From then on, both run on their schedule again.
    w.run_until(T0 + 61 * MIN).await;
    assert_eq!(w.jobs(JobKind::Backup, "recent").len(), 3);
    assert_eq!(w.jobs(JobKind::Backup, "stale").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_rpo_breach_is_one_incident_until_a_point_lands_again() {
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = fixed.clone();
    let w = World::new(
        T0 + 30 * SEC,
        "retries = 0",
        r#"
[categories.hourly]
schedule = "0 * * * *"
vault = "main"
rpo = "90m"
[categories.hourly.retention]
keep_last = 3

[resources.app]
kind = "files"
category = "hourly"
paths = ["/srv/app"]
"#,
        move |op, _, n| {
            // The first backup works; then the source breaks until it is fixed.
            if op == "backup" && n > 0 && !f.load(std::sync::atomic::Ordering::SeqCst) {
                Reply::Fail { retryable: false }
            } else {
                Reply::Done(Duration::from_secs(10))
            }
        },
    );
    w.run_until(T0 + 60 * MIN + 30 * SEC).await;
    let cat = &w.rt.catalog;
    assert!(!cat.incident_open("app", "rpo").unwrap());
    // Three failed hours: the newest point (01:00) grows older than 90 minutes at 02:30.
    w.run_until(T0 + 4 * 60 * MIN + 30 * SEC).await;
    assert!(cat.incident_open("app", "rpo").unwrap());
    assert!(cat.incident_open("app", "backup").unwrap());
    // One alert for the backup failures, one for the RPO: not one per failed run or check.
    assert_eq!(cat.outbox_pending().unwrap(), 2);
    fixed.store(true, std::sync::atomic::Ordering::SeqCst);
    w.run_until(T0 + 5 * 60 * MIN + 30 * SEC).await;
    assert!(!cat.incident_open("app", "rpo").unwrap());
    assert!(!cat.incident_open("app", "backup").unwrap());
    // And one recovery message for each.
    assert_eq!(cat.outbox_pending().unwrap(), 4);
}
