//! A restore through the plan (`holdfast restore … --plan FILE`): the vault and its secret come
//! from the plan, and the restore is a `restore` job in the catalog — who restored which
//! point, when, how long it took, and whether that fits the category's RTO.

use std::ffi::OsString;
use std::time::Duration;

use tokio::time::Instant;

use super::{JobSpec, RunReport, Runtime, Try, failed_or, humanize, json, now_ns};
use crate::catalog::CatalogError;
use crate::commands;
use crate::exec::Outcome;
use crate::job::{JobKind, JobState};

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The resource the point belongs to, when known (`latest:R`); else `*`.
    pub resource: String,
    /// The plan's vault to restore from.
    pub vault: String,
    /// `holdfast restore` arguments: the point and the target.
    pub args: Vec<OsString>,
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
    /// The restore child's JSON document (Null when it printed none).
    pub output: serde_json::Value,
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
            now_ns(),
        )?;
        let loaded = self.plan();
        let cmd = commands::restore(&self.exe, &loaded.plan, &req.vault, &req.args);
        let spec = JobSpec {
            kind: JobKind::Restore,
            resource: &req.resource,
            vault: &req.vault,
            job,
            window: None,
            start_by: None,
        };
        let mut report = RunReport { jobs: vec![] };
        let mut output = serde_json::Value::Null;
        let started = Instant::now();
        self.execute(&mut report, &spec, cmd, |o| {
            output = json(o);
            judge(o, &output, started.elapsed(), req.rto)
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
            output,
        })
    }
}

/// How a restore child ended, with its duration against the RTO.
fn judge(o: &Outcome, v: &serde_json::Value, took: Duration, rto: Option<Duration>) -> Try {
    failed_or(o, |o| restored(o, v, took, rto))
}

/// A restore child that exited 0 (completed) or 3 (partial): what it restored, how fast.
fn restored(o: &Outcome, v: &serde_json::Value, took: Duration, rto: Option<Duration>) -> Try {
    let state = if o.code == Some(3) {
        JobState::Partial
    } else {
        JobState::Completed
    };
    let what = if let Some(t) = v["target"].as_str() {
        format!(
            "{} file(s), {} byte(s) to {t}",
            v["files"].as_u64().unwrap_or(0),
            v["bytes"].as_u64().unwrap_or(0)
        )
    } else {
        let to: Vec<&str> = v["restored"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        format!("into {}", to.join(", "))
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
        point: v["point"].as_str().map(String::from),
        point_ns: None,
        message: Some(format!("restored {what} in {secs:.1}s{against}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Ended;

    fn exited(code: i32, stdout: &str) -> Outcome {
        Outcome {
            code: Some(code),
            stdout: stdout.into(),
            stderr: "holdfast: error: no recovery point matches \"zz\" (hint: list them)\n".into(),
            ended: Ended::Exited,
        }
    }

    #[test]
    fn a_restore_reports_what_it_restored_against_the_rto() {
        let o = exited(
            0,
            r#"{"point":"ab","target":"/tmp/r","files":3,"bytes":12,"seconds":0.1}"#,
        );
        let v = json(&o);
        let rto = Some(Duration::from_secs(3600));
        match judge(&o, &v, Duration::from_millis(1500), rto) {
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
        let o = exited(0, r#"{"point":"cd","restored":["/tmp/app.db"]}"#);
        let v = json(&o);
        match judge(&o, &v, Duration::from_secs(7200), rto) {
            Try::Done { message, .. } => assert_eq!(
                message.as_deref(),
                Some("restored into /tmp/app.db in 7200.0s; LONGER than the RTO of 1h")
            ),
            _ => panic!("not done"),
        }
        match judge(
            &exited(1, ""),
            &serde_json::Value::Null,
            Duration::ZERO,
            rto,
        ) {
            Try::Failed(m) => assert_eq!(m, "no recovery point matches \"zz\""),
            _ => panic!("not failed"),
        }
    }
}
