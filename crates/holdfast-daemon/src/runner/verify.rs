//! Scheduled (and on-demand) verification of a vault: `holdfast verify` as a job of its own,
//! at the depth its `[vaults.NAME.verify]` asks for. Damage fails the job with the damaged
//! objects and the recovery points they affect in its message, and alerts once (the
//! incident is the vault's); the next clean verify sends the recovery.

use std::sync::Arc;

use tokio::time::Instant;

use super::{JobSpec, RunReport, Runtime, Try, failed_or, json};
use crate::catalog::CatalogError;
use crate::commands;
use crate::exec::{Ended, Outcome};
use crate::job::{JobKind, JobState};

/// The exit code of `holdfast verify` when it found damage.
const DAMAGED: i32 = 4;

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
            super::now_ns(),
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
        let cmd = commands::verify(&self.exe, &loaded.plan, vault, depth, done);
        let spec = JobSpec {
            kind: JobKind::Verify,
            resource: VAULT_WIDE,
            vault,
            job,
            window: loaded.verify_completion_window(vault),
            start_by,
        };
        self.execute(&mut report, &spec, cmd, judge).await;
        report
    }
}

/// How a verify child ended: clean, damage found (with what and which points), or failed.
fn judge(o: &Outcome) -> Try {
    if o.ended == Ended::Exited && o.code == Some(DAMAGED) {
        let v = json(o);
        if v["report"].is_object() {
            return Try::Failed(damage_summary(&v["report"]));
        }
    }
    failed_or(o, |o| {
        let r = &json(o)["report"];
        Try::Done {
            state: JobState::Completed,
            bytes: None,
            point: None,
            point_ns: None,
            message: Some(format!(
                "no problems: {} point(s), {} pack(s), {} read in full, {} blob(s) authenticated",
                r["points"].as_u64().unwrap_or(0),
                r["packs"].as_u64().unwrap_or(0),
                r["packs_read"].as_u64().unwrap_or(0),
                r["blobs_read"].as_u64().unwrap_or(0)
            )),
        }
    })
}

/// One line naming what is damaged and what it affects (the first few of each).
pub fn damage_summary(r: &serde_json::Value) -> String {
    const SHOWN: usize = 3;
    let empty = Vec::new();
    let problems = r["problems"].as_array().unwrap_or(&empty);
    let affected = r["affected"].as_array().unwrap_or(&empty);
    let objects: Vec<String> = problems
        .iter()
        .take(SHOWN)
        .map(|p| {
            format!(
                "{}: {}",
                p["object"].as_str().unwrap_or("?"),
                p["reason"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let points: Vec<String> = affected
        .iter()
        .take(SHOWN)
        .map(|a| {
            let id = a["point"].as_str().unwrap_or("?");
            format!(
                "{} of {}",
                &id[..id.len().min(8)],
                a["resource"].as_str().unwrap_or("?")
            )
        })
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
        problems.len(),
        objects.join("; "),
        more(problems.len()),
        affected.len()
    );
    if !points.is_empty() {
        s.push_str(&format!(" ({}{})", points.join(", "), more(affected.len())));
    }
    if r["index_needs_repair"].as_bool() == Some(true) {
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

    #[test]
    fn damage_is_summarised_with_objects_and_points() {
        let r = serde_json::json!({
            "problems": [
                {"object": "packs/ab/ab12", "reason": "blob does not authenticate"},
                {"object": "packs/cd/cd34", "reason": "missing"},
                {"object": "packs/ef/ef56", "reason": "missing"},
                {"object": "packs/01/0123", "reason": "missing"},
            ],
            "affected": [
                {"point": "1a2b3c4d5e6f", "resource": "docs", "time_ns": 0, "paths": ["/a"]},
            ],
            "index_needs_repair": true,
        });
        assert_eq!(
            damage_summary(&r),
            "4 damaged object(s) (packs/ab/ab12: blob does not authenticate; packs/cd/cd34: \
             missing; packs/ef/ef56: missing, and 1 more); 1 recovery point(s) affected \
             (1a2b3c4d of docs); the index needs repair (holdfast repair index)"
        );
    }

    #[test]
    fn a_verify_without_damage_completes_and_other_failures_fail() {
        let ok = Outcome {
            code: Some(0),
            stdout: r#"{"ok":true,"report":{"points":3,"packs":2,"packs_read":2,"blobs_read":9}}"#
                .into(),
            stderr: String::new(),
            ended: Ended::Exited,
        };
        match judge(&ok) {
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
        let wrong_key = Outcome {
            code: Some(12),
            stdout: String::new(),
            stderr: "holdfast: error: wrong passphrase for /v (hint: check it)\n".into(),
            ended: Ended::Exited,
        };
        match judge(&wrong_key) {
            Try::Failed(m) => assert_eq!(m, "wrong passphrase for /v"),
            _ => panic!("not failed"),
        }
    }
}
