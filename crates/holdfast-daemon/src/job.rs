//! Jobs: what one execution is (its kind) and where it is (its state).

use serde::Serialize;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Make a recovery point of a resource.
    Backup,
    /// Copy a point into another vault.
    Copy,
    /// Apply the category's retention (forget) in one vault.
    Retention,
    /// Free the space of forgotten points in one vault.
    Prune,
    /// Check a vault.
    Verify,
    /// Restore a point.
    Restore,
    /// Restore a point into a throwaway target and check it (one resource of a restore
    /// test).
    #[serde(rename = "restore_test")]
    RestoreTest,
}

impl JobKind {
    /// Every kind.
    pub const ALL: [JobKind; 7] = [
        JobKind::Backup,
        JobKind::Copy,
        JobKind::Retention,
        JobKind::Prune,
        JobKind::Verify,
        JobKind::Restore,
        JobKind::RestoreTest,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Copy => "copy",
            JobKind::Retention => "retention",
            JobKind::Prune => "prune",
            JobKind::Verify => "verify",
            JobKind::Restore => "restore",
            JobKind::RestoreTest => "restore_test",
        }
    }
}

/// Where a job is. `created` and `running` are the only states a job leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Recorded, waiting for its turn.
    Created,
    /// Running (possibly between retries).
    Running,
    /// Done.
    Completed,
    /// Done, but some items could not be read (the point says which).
    Partial,
    /// Failed after its retries.
    Failed,
    /// Could not start within its start window, or did not finish within its completion
    /// window.
    Expired,
    /// Stopped by a shutdown, or found unfinished after a crash.
    Aborted,
}

impl JobState {
    /// Every state.
    pub const ALL: [JobState; 7] = [
        JobState::Created,
        JobState::Running,
        JobState::Completed,
        JobState::Partial,
        JobState::Failed,
        JobState::Expired,
        JobState::Aborted,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Created => "created",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Partial => "partial",
            JobState::Failed => "failed",
            JobState::Expired => "expired",
            JobState::Aborted => "aborted",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<JobState> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Completed or partial: a point was made.
    pub fn succeeded(self) -> bool {
        matches!(self, JobState::Completed | JobState::Partial)
    }
}
