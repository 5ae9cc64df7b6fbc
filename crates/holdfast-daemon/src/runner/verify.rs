//! Scheduled (and on-demand) verification of a vault: a verify worker as a job of its own,
//! at the depth its `[vaults.NAME.verify]` asks for. Damage fails the job with the damaged
//! objects and the recovery points they affect in its message, and alerts once (the
//! incident is the vault's); the next clean verify sends the recovery.

use std::sync::Arc;

use tokio::time::Instant;

use holdfast_ops::worker::Report;

use super::{JobSpec, RunReport, Runtime, Try};
use crate::catalog::CatalogError;
use crate::commands;
use crate::job::{JobKind, JobState};

/// The resource of vault-wide jobs.
pub const VAULT_WIDE: &str = "*";

impl Runtime {
    /// Record a verify job of `vault` (state `created`) and return its id.
    pub fn create_verify(
        &self,
        vault: &str,
        trigger: &str,
        scheduled_ns: Option<i64>,
    ) -> Result<i64, CatalogError> {
        self.catalog.create(
            JobKind::Verify,
            VAULT_WIDE,
            vault,
            trigger,
            scheduled_ns,
            None,
            self.now_ns(),
        )
    }

    /// Record a scheduled verify that could not start in its window (state `expired`).
    pub fn expire_verify(&self, vault: &str, scheduled_ns: i64, why: &str) {
        let mut report = RunReport { jobs: vec![] };
        match self.create_verify(vault, "schedule", Some(scheduled_ns)) {
            Ok(job) => self.late(&mut report, JobKind::Verify, VAULT_WIDE, vault, job, why),
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// Verify `vault` in the background (counted, so a shutdown can wait for it, and known
    /// as queued or running until it ends).
    pub fn spawn_verify(self: &Arc<Self>, job: i64, vault: String, start_by: Option<Instant>) {
        let reg = self.register(super::Work::Verify(vault.clone()), job);
        self.spawn_verify_registered(job, vault, start_by, reg);
    }

    pub(super) fn spawn_verify_registered(
        self: &Arc<Self>,
        job: i64,
        vault: String,
        start_by: Option<Instant>,
        reg: super::InFlight,
    ) {
        let rt = self.clone();
        self.track(async move {
            let _reg = reg;
            rt.run_verify(job, &vault, start_by).await;
        });
    }

    /// Run the verify job `job` of `vault`.
    pub async fn run_verify(&self, job: i64, vault: &str, start_by: Option<Instant>) -> RunReport {
        let mut report = RunReport { jobs: vec![] };
        let loaded = self.plan();
        let depth = loaded.read_data(vault);
        let done = self
            .catalog
            .count(&crate::catalog::Filter {
                vault: Some(vault.to_string()),
                kind: Some(JobKind::Verify),
                states: vec![JobState::Completed],
                ..Default::default()
            })
            .unwrap_or(0);
        let step = commands::verify(&self.exe, &loaded.plan, vault, depth, done);
        let spec = JobSpec {
            kind: JobKind::Verify,
            resource: VAULT_WIDE,
            vault,
            job,
            window: loaded.verify_completion_window(vault),
            start_by,
        };
        self.execute(&mut report, &spec, step, judge).await;
        report
    }
}

/// What a verify found: clean, or damage (with what and which points).
fn judge(r: Report) -> Try {
    let v = match r {
        Report::Verify(v) => v,
        other => return Try::mismatch("verify", &other),
    };
    if !v.ok {
        return Try::fail(damage_summary(&v.report));
    }
    let r = &v.report;
    Try::Done {
        state: JobState::Completed,
        bytes: None,
        point: None,
        point_ns: None,
        message: Some(format!(
            "no problems: {} point(s), {} pack(s), {} read in full, {} blob(s) authenticated",
            r.points, r.packs, r.packs_read, r.blobs_read
        )),
    }
}

/// One line naming what is damaged and what it affects (the first few of each).
pub fn damage_summary(r: &holdfast_engine::verify::Report) -> String {
    const SHOWN: usize = 3;
    let objects: Vec<String> = r
        .problems
        .iter()
        .take(SHOWN)
        .map(|p| format!("{}: {}", p.object, p.reason))
        .collect();
    let points: Vec<String> = r
        .affected
        .iter()
        .take(SHOWN)
        .map(|a| format!("{} of {}", &a.point[..a.point.len().min(8)], a.resource))
        .collect();
    let more = |n: usize| {
        if n > SHOWN {
            format!(", and {} more", n - SHOWN)
        } else {
            String::new()
        }
    };
    let mut s = format!(
        "{} damaged object(s) ({}{}); {} recovery point(s) affected",
        r.problems.len(),
        objects.join("; "),
        more(r.problems.len()),
        r.affected.len()
    );
    if !points.is_empty() {
        s.push_str(&format!(
            " ({}{})",
            points.join(", "),
            more(r.affected.len())
        ));
    }
    if r.index_needs_repair {
        s.push_str("; the index needs repair (holdfast repair index)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_rotates_through_every_part() {
        use crate::commands::rotation;
        assert_eq!(rotation(10.0, 0), (1, 10));
        assert_eq!(rotation(10.0, 9), (10, 10));
        assert_eq!(rotation(10.0, 10), (1, 10));
        assert_eq!(rotation(30.0, 5), (2, 4));
        assert_eq!(rotation(2.5, 41), (2, 40));
        assert_eq!(rotation(99.0, 1), (2, 2));
    }

    fn damage(object: &str, reason: &str) -> holdfast_engine::vault::Damage {
        holdfast_engine::vault::Damage {
            object: object.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn damage_is_summarised_with_objects_and_points() {
        let r = holdfast_engine::verify::Report {
            problems: vec![
                damage("packs/ab/ab12", "blob does not authenticate"),
                damage("packs/cd/cd34", "missing"),
                damage("packs/ef/ef56", "missing"),
                damage("packs/01/0123", "missing"),
            ],
            affected: vec![holdfast_engine::verify::Affected {
                point: "1a2b3c4d5e6f".into(),
                resource: "docs".into(),
                time_ns: 0,
                paths: vec!["/a".into()],
            }],
            index_needs_repair: true,
            ..Default::default()
        };
        assert_eq!(
            damage_summary(&r),
            "4 damaged object(s) (packs/ab/ab12: blob does not authenticate; packs/cd/cd34: \
             missing; packs/ef/ef56: missing, and 1 more); 1 recovery point(s) affected \
             (1a2b3c4d of docs); the index needs repair (holdfast repair index)"
        );
        match judge(Report::Verify(holdfast_ops::verify::VerifyOutput {
            ok: false,
            report: r,
        })) {
            Try::Failed { message, retryable } => {
                assert!(message.starts_with("4 damaged object(s)"), "{message}");
                assert!(!retryable);
            }
            _ => panic!("not failed"),
        }
    }

    #[test]
    fn a_verify_without_damage_completes_and_other_failures_fail() {
        let ok = Report::Verify(holdfast_ops::verify::VerifyOutput {
            ok: true,
            report: holdfast_engine::verify::Report {
                points: 3,
                packs: 2,
                packs_read: 2,
                blobs_read: 9,
                ..Default::default()
            },
        });
        match judge(ok) {
            Try::Done { state, message, .. } => {
                assert_eq!(state, JobState::Completed);
                assert_eq!(
                    message.as_deref(),
                    Some(
                        "no problems: 3 point(s), 2 pack(s), 2 read in full, 9 blob(s) authenticated"
                    )
                );
            }
            _ => panic!("not done"),
        }
        let wrong_key = crate::exec::WorkerRun {
            result: crate::exec::WorkerResult::Failed(holdfast_ops::worker::Failure {
                kind: holdfast_engine::ErrorKind::WrongKey,
                retryable: false,
                message: "wrong passphrase for /v".into(),
            }),
            warnings: vec![],
        };
        match super::super::judged(wrong_key, judge) {
            Try::Failed { message, retryable } => {
                assert_eq!(message, "wrong passphrase for /v");
                assert!(!retryable, "a wrong key is not retried");
            }
            _ => panic!("not failed"),
        }
        match judge(Report::Points { points: vec![] }) {
            Try::Failed { message, .. } => {
                assert_eq!(message, "the worker answered a verify with a points report")
            }
            _ => panic!("a report of another operation is a failure"),
        }
    }
}
