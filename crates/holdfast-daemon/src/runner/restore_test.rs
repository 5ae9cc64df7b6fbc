//! Restore tests the daemon runs on their schedule (and on request): one `restore_test` job
//! per resource the test covers, each a worker that restores the chosen point into a
//! throwaway target, runs the checks and removes the target. A failing check fails the job
//! with the check named; the incident is per test and resource, so it alerts once and a later
//! pass sends the recovery.

use std::sync::Arc;

use holdfast_ops::restore_test::RestoreTestReport;
use holdfast_ops::worker::Report;
use tokio::sync::OwnedMutexGuard;
use tokio::time::{Duration, Instant};

use holdfast_ops::time::humanize_secs;

use super::{InFlight, JobSpec, RunReport, Runtime, Try, Work, humanize};
use crate::commands::{self, TestRun};
use crate::exec;
use crate::job::{JobKind, JobState};

/// The jobs of one run of a restore test: (job, what it runs).
pub type TestJobs = Vec<(i64, TestRun)>;

impl Runtime {
    /// Record one `restore_test` job (state `created`) per resource of test `name`.
    pub fn create_restore_test(
        &self,
        name: &str,
        trigger: &str,
        scheduled_ns: Option<i64>,
    ) -> Result<TestJobs, String> {
        let plan = self.plan();
        let runs = commands::restore_test(&plan, name).map_err(|e| e.to_string())?;
        let mut jobs = Vec::with_capacity(runs.len());
        for run in runs {
            let job = self
                .catalog
                .create_test(
                    name,
                    &run.resource,
                    &run.vault,
                    trigger,
                    scheduled_ns,
                    self.now_ns(),
                )
                .map_err(|e| e.to_string())?;
            jobs.push((job, run));
        }
        Ok(jobs)
    }

    /// Record a scheduled restore test that could not start in its window (every job
    /// `expired`).
    pub fn expire_restore_test(&self, name: &str, scheduled_ns: i64, why: &str) {
        let mut report = RunReport { jobs: vec![] };
        match self.create_restore_test(name, "schedule", Some(scheduled_ns)) {
            Ok(jobs) => {
                for (job, run) in jobs {
                    self.late(
                        &mut report,
                        JobKind::RestoreTest,
                        &run.resource,
                        &run.vault,
                        job,
                        why,
                    );
                }
            }
            Err(e) => tracing::error!("restore test {name:?}: {e}"),
        }
    }

    /// Run restore test `name` in the background (counted, so a shutdown can wait for it,
    /// and known as queued or running until it ends).
    pub fn spawn_restore_test(
        self: &Arc<Self>,
        jobs: TestJobs,
        name: String,
        start_by: Option<Instant>,
    ) {
        let Some(first) = jobs.first().map(|j| j.0) else {
            return;
        };
        let reg = self.register(Work::RestoreTest(name.clone()), first);
        self.track_restore_test(jobs, name, start_by, reg);
    }

    /// A run of restore test `name` now (the API's `POST …/run`), unless one is already
    /// queued or running: returns its first job and whether this call queued it.
    pub fn request_restore_test(
        self: &Arc<Self>,
        name: &str,
        trigger: &str,
    ) -> Result<(i64, bool), String> {
        self.request_with(
            Work::RestoreTest(name.to_string()),
            || {
                let jobs = self.create_restore_test(name, trigger, None)?;
                let first = jobs
                    .first()
                    .map(|j| j.0)
                    .ok_or_else(|| format!("restore test {name:?} covers no resource"))?;
                Ok((first, jobs))
            },
            |jobs, reg| self.track_restore_test(jobs, name.to_string(), None, reg),
        )
    }

    fn track_restore_test(
        self: &Arc<Self>,
        jobs: TestJobs,
        name: String,
        start_by: Option<Instant>,
        reg: InFlight,
    ) {
        let rt = self.clone();
        self.track(async move {
            let _reg = reg;
            rt.run_restore_test(jobs, &name, start_by).await;
        });
    }

    /// Run the jobs of restore test `name`, one resource after the other (one run of a test
    /// at a time).
    pub async fn run_restore_test(
        &self,
        jobs: TestJobs,
        name: &str,
        start_by: Option<Instant>,
    ) -> RunReport {
        let mut report = RunReport { jobs: vec![] };
        let loaded = self.plan();
        let window = loaded
            .resolved
            .restore_tests
            .get(name)
            .and_then(|t| t.completion_window);
        let lock = self.resource_lock(&format!("restore test {name}"));
        let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        let mut drain = self.draining.subscribe();
        let _guard: OwnedMutexGuard<()> = tokio::select! {
            g = lock.lock_owned() => g,
            _ = tokio::time::sleep_until(start_by.unwrap_or(far)) => {
                for (job, run) in &jobs {
                    self.late(&mut report, JobKind::RestoreTest, &run.resource, &run.vault, *job,
                        "the previous run of this restore test was still running");
                }
                return report;
            }
            _ = exec::wait_true(&mut drain) => {
                for (job, run) in &jobs {
                    self.finish(&mut report, &run.resource, JobKind::RestoreTest, &run.vault, *job, Try::Shutdown, None);
                }
                return report;
            }
        };
        for (job, run) in &jobs {
            let step = commands::restore_test_step(&self.exe, &loaded.plan, run);
            let spec = JobSpec {
                kind: JobKind::RestoreTest,
                resource: &run.resource,
                vault: &run.vault,
                job: *job,
                window,
                start_by,
            };
            self.execute(&mut report, &spec, step, judge).await;
        }
        report
    }
}

/// A passed test completes (the point tested is the job's point); a failed one fails with
/// its failing checks named.
fn judge(r: Report) -> Try {
    match r {
        Report::RestoreTest(t) if t.passed => Try::Done {
            state: JobState::Completed,
            bytes: None,
            point: Some(t.point.clone()),
            point_ns: Some(t.point_time_ns),
            message: Some(passed_summary(&t)),
        },
        Report::RestoreTest(t) => Try::fail(failed_summary(&t)),
        other => Try::mismatch("restore test", &other),
    }
}

fn rto_of(t: &RestoreTestReport) -> String {
    let rto = humanize_secs(t.rto_seconds);
    match t.max_rto_seconds {
        Some(m) => format!("RTO {rto} (objective {})", humanize(Duration::from_secs(m))),
        None => format!("RTO {rto}"),
    }
}

/// `passed: 3 check(s), RTO 2s (objective 15m), point 1a2b3c4d 5h old`.
fn passed_summary(t: &RestoreTestReport) -> String {
    format!(
        "passed: {} check(s), {}, point {} {} old",
        t.checks.len(),
        rto_of(t),
        &t.point[..t.point.len().min(8)],
        humanize_secs(t.rpo_seconds)
    )
}

/// `failed: check row_counts: …; RTO 20m over its objective (15m)`.
fn failed_summary(t: &RestoreTestReport) -> String {
    let mut parts: Vec<String> = t
        .failed()
        .map(|c| {
            let detail: String = c.detail.chars().take(300).collect();
            format!("check {}: {detail}", c.check)
        })
        .collect();
    if !t.rto_met {
        parts.push(format!("{} missed", rto_of(t)));
    }
    format!(
        "failed (point {}): {}",
        &t.point[..t.point.len().min(8)],
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_ops::restore_test::CheckResult;

    fn report(passed: bool, checks: Vec<(&str, bool, &str)>, rto_met: bool) -> RestoreTestReport {
        RestoreTestReport {
            resource: "db".into(),
            point: "1a2b3c4d5e6f".into(),
            kind: "sqlite".into(),
            point_time_ns: 7,
            phases: vec![],
            rto_seconds: 2.0,
            max_rto_seconds: Some(900),
            rto_met,
            rpo_seconds: 3600.0,
            recovered_to_ns: None,
            max_rpo_seconds: None,
            rpo_met: true,
            checks: checks
                .into_iter()
                .map(|(c, p, d)| CheckResult {
                    check: c.into(),
                    passed: p,
                    detail: d.into(),
                    seconds: 0.1,
                })
                .collect(),
            passed,
            evidence: None,
        }
    }

    #[test]
    fn a_passed_test_completes_with_its_point_and_a_failed_one_names_its_checks() {
        let ok = report(true, vec![("integrity_check", true, "ok")], true);
        match judge(Report::RestoreTest(ok)) {
            Try::Done {
                state,
                point,
                point_ns,
                message,
                ..
            } => {
                assert_eq!(state, JobState::Completed);
                assert_eq!(point.as_deref(), Some("1a2b3c4d5e6f"));
                assert_eq!(point_ns, Some(7));
                assert_eq!(
                    message.as_deref(),
                    Some("passed: 1 check(s), RTO 2s (objective 15m), point 1a2b3c4d 1h old")
                );
            }
            _ => panic!("not done"),
        }
        let bad = report(
            false,
            vec![
                ("integrity_check", true, "ok"),
                ("row_counts", false, "orders: 9 restored, 10 recorded"),
                ("command: ./smoke.sh", false, "exit code 1"),
            ],
            false,
        );
        match judge(Report::RestoreTest(bad)) {
            Try::Failed { message, retryable } => {
                assert_eq!(
                    message,
                    "failed (point 1a2b3c4d): check row_counts: orders: 9 restored, 10 recorded; \
                     check command: ./smoke.sh: exit code 1; RTO 2s (objective 15m) missed"
                );
                assert!(!retryable, "a failed check is not retried");
            }
            _ => panic!("not failed"),
        }
    }
}
