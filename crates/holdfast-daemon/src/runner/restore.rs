//! A restore through the plan (`holdfast restore … --plan FILE`): the vault and its secret come
//! from the plan, and the restore is a `restore` job in the catalog — who restored which
//! point, when, how long it took, and whether that fits the category's RTO.

use std::time::Duration;

use holdfast_ops::restore::RestoreReport;
use holdfast_ops::worker::Report;
use tokio::time::Instant;

use super::{JobSpec, RunReport, Runtime, Try, humanize};
use crate::catalog::CatalogError;
use crate::commands;
use crate::job::{JobKind, JobState};

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The resource the point belongs to, when known (`latest:R`); else `*`.
    pub resource: String,
    /// The plan's vault to restore from.
    pub vault: String,
    /// The point and the target.
    pub request: holdfast_ops::restore::RestoreRequest,
    /// The RTO to compare the restore's duration with (the resource's category's).
    pub rto: Option<Duration>,
}

/// How a restore job went.
#[derive(Debug)]
pub struct RestoreOutcome {
    /// The job.
    pub job: i64,
    /// Its end state.
    pub state: JobState,
    /// Its message.
    pub message: Option<String>,
    /// The restore's report (None when it failed).
    pub report: Option<RestoreReport>,
}

impl Runtime {
    /// Run a restore as a job (trigger `manual`).
    pub async fn run_restore(&self, req: &RestoreRequest) -> Result<RestoreOutcome, CatalogError> {
        let job = self.catalog.create(
            JobKind::Restore,
            &req.resource,
            &req.vault,
            "manual",
            None,
            None,
            self.now_ns(),
        )?;
        let loaded = self.plan();
        let step = commands::restore(&self.exe, &loaded.plan, &req.vault, req.request.clone());
        let spec = JobSpec {
            kind: JobKind::Restore,
            resource: &req.resource,
            vault: &req.vault,
            job,
            window: None,
            start_by: None,
        };
        let mut report = RunReport { jobs: vec![] };
        let mut restored = None;
        let started = Instant::now();
        self.execute(&mut report, &spec, step, |r| match r {
            Report::Restore(r) => {
                let t = judge(&r, started.elapsed(), req.rto);
                restored = Some(r);
                t
            }
            other => Try::mismatch("restore", &other),
        })
        .await;
        let (state, message) = report
            .jobs
            .pop()
            .map_or((JobState::Failed, None), |j| (j.3, j.4));
        Ok(RestoreOutcome {
            job,
            state,
            message,
            report: restored,
        })
    }
}

/// A restore that finished (completely or partially): what it restored, how fast, against
/// the RTO.
fn judge(r: &RestoreReport, took: Duration, rto: Option<Duration>) -> Try {
    let state = if r.partial() {
        JobState::Partial
    } else {
        JobState::Completed
    };
    let what = match r {
        RestoreReport::Files(f) => {
            format!(
                "{} file(s), {} byte(s) to {}",
                f.counts.files, f.counts.bytes, f.target
            )
        }
        RestoreReport::Into(i) => format!("into {}", i.restored.join(", ")),
    };
    let secs = took.as_secs_f64();
    let against = match rto {
        Some(r) if took <= r => format!("; within the RTO of {}", humanize(r)),
        Some(r) => format!("; LONGER than the RTO of {}", humanize(r)),
        None => String::new(),
    };
    Try::Done {
        state,
        bytes: None,
        point: Some(r.point().to_string()),
        point_ns: None,
        message: Some(format!("restored {what} in {secs:.1}s{against}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_ops::restore::{FilesRestored, IntoRestored};

    #[test]
    fn a_restore_reports_what_it_restored_against_the_rto() {
        let r = RestoreReport::Files(FilesRestored {
            point: "ab".into(),
            target: "/tmp/r".into(),
            counts: holdfast_sources::restore::RestoreReport {
                files: 3,
                bytes: 12,
                ..Default::default()
            },
            seconds: 0.1,
        });
        let rto = Some(Duration::from_secs(3600));
        match judge(&r, Duration::from_millis(1500), rto) {
            Try::Done {
                state,
                point,
                message,
                ..
            } => {
                assert_eq!(state, JobState::Completed);
                assert_eq!(point.as_deref(), Some("ab"));
                assert_eq!(
                    message.as_deref(),
                    Some("restored 3 file(s), 12 byte(s) to /tmp/r in 1.5s; within the RTO of 1h")
                );
            }
            _ => panic!("not done"),
        }
        let r = RestoreReport::Into(IntoRestored {
            point: "cd".into(),
            restored: vec!["/tmp/app.db".into()],
            said: vec![],
        });
        match judge(&r, Duration::from_secs(7200), rto) {
            Try::Done { message, .. } => assert_eq!(
                message.as_deref(),
                Some("restored into /tmp/app.db in 7200.0s; LONGER than the RTO of 1h")
            ),
            _ => panic!("not done"),
        }
    }
}
