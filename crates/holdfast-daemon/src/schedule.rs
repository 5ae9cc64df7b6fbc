//! The scheduler: every task's (a resource's run, a vault's verify, a restore test) next due time from its
//! cron schedule; what runs when it is due; the catch-up decision at start-up; recomputed due
//! times on a plan reload; the RPO watch.
//!
//! It reads the time of day from the runtime's [`crate::clock::Clock`] and waits with tokio's
//! timers, so tests drive it with a paused tokio runtime and [`crate::clock::TokioClock`]:
//! [`Scheduler::step`] is the loop body the daemon runs, between waits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::notify::EventKind;
use crate::runner::{Runtime, rfc3339};
use crate::settings::LoadedPlan;
use holdfast_plan::schedule::Schedule;

/// How often RPOs are checked.
const RPO_EVERY: Duration = Duration::from_secs(2);
/// The longest the scheduler sleeps between two looks at the clock.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The scheduler's state: each task's next due time, and when RPOs were last checked.
pub struct Scheduler {
    due: Due,
    last_rpo: Option<Instant>,
}

impl Scheduler {
    /// Decide what start-up catches up (or records as missed), then each task's first due
    /// time.
    pub fn start(rt: &Arc<Runtime>) -> Scheduler {
        let plan = rt.plan();
        Scheduler {
            due: initial(rt, &plan, rt.now_ns()),
            last_rpo: None,
        }
    }

    /// Launch every task that is due, check RPOs when it is time, and return when to look
    /// again (at the next due time, at most [`MAX_SLEEP`] from now).
    pub async fn step(&mut self, rt: &Arc<Runtime>) -> Instant {
        let now = rt.now_ns();
        let loaded = rt.plan();
        for (t, (at, _)) in self.due.iter_mut() {
            if *at <= now {
                let scheduled = *at;
                launch(rt, &loaded, t, "schedule", scheduled);
                // The next time after now: a daemon that fell behind does not replay.
                if let Some(n) =
                    schedule_of(&loaded, t).and_then(|s| s.next_after(now.max(scheduled)))
                {
                    *at = n;
                }
            }
        }
        if self.last_rpo.is_none_or(|l| l.elapsed() >= RPO_EVERY) {
            // Catalog queries for every resource: off the scheduler's thread. (A paused test
            // clock does not advance while a blocking task runs.)
            let rt2 = rt.clone();
            let _ = tokio::task::spawn_blocking(move || check_rpo(&rt2)).await;
            self.last_rpo = Some(Instant::now());
        }
        let next = self.due.values().map(|(t, _)| *t).min().unwrap_or(i64::MAX);
        instant_of(rt, next).min(Instant::now() + MAX_SLEEP)
    }

    /// Reload the plan from `path` (SIGHUP): tasks that left are dropped, new or changed
    /// schedules get a new due time, the others keep theirs. A plan that does not load is
    /// logged and the running one stays.
    pub fn reload(&mut self, rt: &Arc<Runtime>, path: &Path) {
        reload(rt, path, &mut self.due);
    }
}

/// What the scheduler runs: a resource's backup, a vault's verify, or a restore test.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Task {
    /// A resource's run (backup, copies, retention).
    Backup(String),
    /// A vault's verify.
    Verify(String),
    /// A restore test (every resource it covers).
    RestoreTest(String),
}

/// Next due time per task, keyed with the schedule expression that produced it.
type Due = HashMap<Task, (i64, String)>;

fn schedule_of<'p>(plan: &'p LoadedPlan, t: &Task) -> Option<&'p Schedule> {
    match t {
        Task::Backup(r) => plan.schedule_of(r),
        Task::Verify(v) => plan.verify_of(v).map(|x| &x.schedule),
        Task::RestoreTest(t) => plan
            .resolved
            .restore_tests
            .get(t)
            .and_then(|x| x.schedule.as_ref()),
    }
}

/// The schedule expression and zone of a task (a change means: recompute its next time).
fn schedule_key(plan: &LoadedPlan, t: &Task) -> String {
    schedule_of(plan, t).map(Schedule::key).unwrap_or_default()
}

/// Every task of the plan.
fn tasks(plan: &LoadedPlan) -> Vec<Task> {
    let backups = plan.plan.resources.keys().cloned().map(Task::Backup);
    let verifies = plan.resolved.verifies.keys().cloned().map(Task::Verify);
    let tests = plan
        .resolved
        .restore_tests
        .iter()
        .filter(|(_, t)| t.schedule.is_some())
        .map(|(n, _)| Task::RestoreTest(n.clone()));
    backups.chain(verifies).chain(tests).collect()
}

fn instant_of(rt: &Runtime, ns: i64) -> Instant {
    let d = ns - rt.now_ns();
    if d <= 0 {
        Instant::now()
    } else {
        Instant::now() + Duration::from_nanos(d as u64)
    }
}

fn start_window(plan: &LoadedPlan, t: &Task) -> Duration {
    match t {
        Task::Backup(r) => plan
            .rules_of(r)
            .map_or(holdfast_plan::DEFAULT_START_WINDOW, |c| c.start_window),
        Task::Verify(v) => plan.verify_start_window(v),
        Task::RestoreTest(t) => plan
            .resolved
            .restore_tests
            .get(t)
            .map_or(holdfast_plan::DEFAULT_START_WINDOW, |x| x.start_window),
    }
}

fn start_by(rt: &Runtime, plan: &LoadedPlan, t: &Task, scheduled: i64) -> Instant {
    instant_of(rt, scheduled) + start_window(plan, t)
}

/// Start the task's job for the time `scheduled`.
fn launch(rt: &Arc<Runtime>, plan: &LoadedPlan, t: &Task, trigger: &str, scheduled: i64) {
    let by = Some(start_by(rt, plan, t, scheduled));
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
        Task::RestoreTest(t) => match rt.create_restore_test(t, trigger, Some(scheduled)) {
            Ok(jobs) => rt.spawn_restore_test(jobs, t.clone(), by),
            Err(e) => tracing::error!("restore test {t:?} not started: {e}"),
        },
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
            Task::RestoreTest(t) => rt.catalog.last_scheduled_test(t),
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
                    Task::RestoreTest(n) => rt.expire_restore_test(n, latest, &why),
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
            let now = rt.now_ns();
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
                "plan {} reloaded: {} resource(s), {} vault verify schedule(s), {} restore test(s)",
                path.display(),
                p.plan.resources.len(),
                p.resolved.verifies.len(),
                p.resolved.restore_tests.len()
            );
            rt.replace_plan(p);
        }
        Err(e) => tracing::error!("plan not reloaded, the running plan stays: {e}"),
    }
}

fn check_rpo(rt: &Arc<Runtime>) {
    let now = rt.now_ns();
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
