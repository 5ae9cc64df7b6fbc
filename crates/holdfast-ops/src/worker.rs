//! The worker protocol: how the daemon has a `holdfast worker` child run one operation.
//!
//! The daemon starts `holdfast worker` with the vault's location and secret in its
//! environment (never in argv), writes one [`Job`] as JSON to its standard input and closes
//! it. The worker answers on standard output with JSON lines, one [`Event`] each: any number
//! of `progress`, `warning` and `note` events, then exactly one `done` (with the operation's
//! typed [`Report`]) or `failed` (with the error's kind and whether a retry may help). Its
//! exit code repeats the outcome for people (0 done, 3 partial, else the CLI's exit codes)
//! but the daemon reads only the events. docs/architecture.md describes the protocol;
//! docs/schema/worker-job.json and worker-event.json are its JSON Schemas.
//!
//! The daemon reads reports by type, never by string key, so renaming a field it uses
//! breaks its build instead of silently reading a default:
//!
//! ```compile_fail
//! fn bytes(r: &holdfast_ops::backup::BackupReport) -> u64 {
//!     r.bytes_added // the field is `summary.bytes_added`: this does not compile
//! }
//! ```
//!
//! and a changed field of any report changes its checked-in schema (tests/schema.rs).

use holdfast_engine::ErrorKind;
use serde::{Deserialize, Serialize};

use crate::backup::{BackupReport, BackupRequest};
use crate::copy::CopyRequest;
use crate::forget::{ForgetReport, ForgetRequest};
use crate::pitr::{BaseBackupReport, BaseBackupRequest};
use crate::points::{PointRow, PointsRequest};
use crate::prune::PruneRequest;
use crate::restore::{RestoreReport, RestoreRequest};
use crate::verify::{VerifyOutput, VerifyRequest};

/// The protocol's version: a worker refuses a job of another version.
pub const PROTOCOL: u32 = 1;

/// What the daemon asks a worker to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Job {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The operation.
    pub request: Request,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// A backup.
    Backup(BackupRequest),
    /// A PostgreSQL base backup.
    BaseBackup(BaseBackupRequest),
    /// A copy into another vault (its secret in `HOLDFAST_TO_*`).
    Copy(CopyRequest),
    /// Retention.
    Forget(ForgetRequest),
    /// Prune.
    Prune(PruneRequest),
    /// Verify.
    Verify(VerifyRequest),
    /// A restore.
    Restore(RestoreRequest),
    /// The point list.
    Points(PointsRequest),
    /// A restore test.
    RestoreTest(crate::restore_test::RestoreTestRequest),
}

/// What an operation reports when it is done.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Report {
    /// See [`Request::Backup`].
    Backup(BackupReport),
    /// See [`Request::BaseBackup`].
    BaseBackup(BaseBackupReport),
    /// See [`Request::Copy`].
    Copy(holdfast_engine::copy::CopyReport),
    /// See [`Request::Forget`].
    Forget(ForgetReport),
    /// See [`Request::Prune`].
    Prune(holdfast_engine::prune::PruneReport),
    /// See [`Request::Verify`].
    Verify(VerifyOutput),
    /// See [`Request::Restore`].
    Restore(RestoreReport),
    /// See [`Request::RestoreTest`].
    RestoreTest(crate::restore_test::RestoreTestReport),
    /// See [`Request::Points`].
    Points {
        /// The points, oldest first.
        points: Vec<PointRow>,
    },
}

impl Report {
    /// The report as its command's `--json` document (without the `op` tag).
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Report::Backup(r) => serde_json::to_value(r),
            Report::BaseBackup(r) => serde_json::to_value(r),
            Report::Copy(r) => serde_json::to_value(r),
            Report::Forget(r) => serde_json::to_value(r),
            Report::Prune(r) => serde_json::to_value(r),
            Report::Verify(r) => serde_json::to_value(r),
            Report::Restore(r) => serde_json::to_value(r),
            Report::RestoreTest(r) => serde_json::to_value(r),
            Report::Points { points } => serde_json::to_value(points),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// The operation's name, as in the `op` tag.
    pub fn op(&self) -> &'static str {
        match self {
            Report::Backup(_) => "backup",
            Report::BaseBackup(_) => "base_backup",
            Report::Copy(_) => "copy",
            Report::Forget(_) => "forget",
            Report::Prune(_) => "prune",
            Report::Verify(_) => "verify",
            Report::Restore(_) => "restore",
            Report::RestoreTest(_) => "restore_test",
            Report::Points { .. } => "points",
        }
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Failure {
    /// The error's class.
    pub kind: ErrorKind,
    /// Whether running it again later may succeed.
    pub retryable: bool,
    /// What failed, on which object, and why (no hint: hints are for terminals).
    pub message: String,
}

impl Failure {
    /// The failure an engine error describes.
    pub fn of(e: &holdfast_engine::Error) -> Self {
        Failure {
            kind: e.kind(),
            retryable: e.retryable(),
            message: e.to_string(),
        }
    }
}

/// One line of a worker's output.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Bytes processed so far (cumulative).
    Progress {
        /// Bytes read (backup, verify) or written (restore).
        bytes: u64,
    },
    /// Something that does not fail the operation.
    Warning {
        /// The warning.
        message: String,
    },
    /// A step of a long operation.
    Note {
        /// The step.
        message: String,
    },
    /// The operation finished (perhaps partially: the report says).
    Done {
        /// Its report.
        report: Report,
    },
    /// The operation failed.
    Failed(Failure),
}

impl Event {
    /// One JSON line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"event":"failed","kind":"io","retryable":false,"message":"cannot encode an event: {e}"}}"#
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_events_round_trip_through_json() {
        let job = Job {
            protocol: PROTOCOL,
            request: Request::Forget(ForgetRequest {
                select: crate::forget::Selection::Rules {
                    keep: crate::forget::Keep {
                        last: 3,
                        ..Default::default()
                    },
                    delete_after: Some("7y".into()),
                    timezone: "Europe/Berlin".into(),
                    resource: Some("db".into()),
                    tags: vec![],
                },
                dry_run: false,
                bypass_governance: false,
            }),
        };
        let text = serde_json::to_string(&job).unwrap();
        assert!(text.contains(r#""op":"forget""#), "{text}");
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
        let done = Event::Done {
            report: Report::Points { points: vec![] },
        };
        let line = done.to_line();
        assert_eq!(
            line,
            r#"{"event":"done","report":{"op":"points","points":[]}}"#
        );
        let back: Event = serde_json::from_str(&line).unwrap();
        assert!(
            matches!(back, Event::Done { report: Report::Points { points } } if points.is_empty())
        );
        let failed = Event::Failed(Failure {
            kind: ErrorKind::WrongKey,
            retryable: false,
            message: "no".into(),
        })
        .to_line();
        assert_eq!(
            failed,
            r#"{"event":"failed","kind":"wrong_key","retryable":false,"message":"no"}"#
        );
    }
}
