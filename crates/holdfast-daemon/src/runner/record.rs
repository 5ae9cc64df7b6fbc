//! How a job's end is recorded: the catalog row, the log line, and a notification when it
//! opens or closes an incident (one alert per outage, one recovery message after it).

use std::time::Duration;

use super::{RunReport, Runtime, Try, hostname, humanize, now_ns, rfc3339};
use crate::job::{JobKind, JobState};
use crate::notify::{Event, EventKind};

/// The incident key and the name people read for a job's subject: a resource, or a whole
/// vault for vault-wide jobs (resource `*`, such as verify). Steps that run once per vault
/// (copy, retention, prune) have an incident per vault, so one failing copy destination
/// and one working one do not alternate between alert and recovery.
fn subject(resource: &str, vault: &str, kind: JobKind) -> (String, String) {
    if resource == "*" {
        (format!("vault:{vault}"), format!("vault {vault}"))
    } else if matches!(kind, JobKind::Copy | JobKind::Retention | JobKind::Prune) {
        (
            format!("{resource}@{vault}"),
            format!("{resource} in {vault}"),
        )
    } else {
        (resource.to_string(), resource.to_string())
    }
}

impl Runtime {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn event(
        &self,
        kind: EventKind,
        resource: &str,
        vault: Option<&str>,
        condition: &str,
        job: Option<i64>,
        state: Option<JobState>,
        text: String,
    ) {
        let plan = self.plan();
        let category = plan
            .plan
            .resources
            .get(resource)
            .map(|r| r.category.get_ref().clone())
            .unwrap_or_default();
        let vault = vault.map(str::to_string).unwrap_or_else(|| {
            plan.plan
                .categories
                .get(&category)
                .map(|c| c.vault.get_ref().clone())
                .unwrap_or_default()
        });
        self.notifier.send(
            &plan.plan,
            Event {
                event: kind,
                resource: resource.into(),
                category,
                vault,
                condition: condition.into(),
                job,
                state: state.map(|s| s.as_str().into()),
                time: rfc3339(now_ns()),
                text,
                host: hostname(),
            },
        );
    }

    /// Send a notification about `resource` to the plan's channels.
    pub fn notify(
        &self,
        kind: EventKind,
        resource: &str,
        condition: &str,
        job: Option<i64>,
        text: String,
    ) {
        self.event(kind, resource, None, condition, job, None, text);
    }

    /// Record how a job ended and notify on a new failure or a recovery (de-duplicated by
    /// incident).
    pub(super) fn outcome(
        &self,
        resource: &str,
        vault: &str,
        kind: JobKind,
        job: i64,
        state: JobState,
        message: Option<&str>,
    ) {
        let cond = kind.as_str();
        let now = now_ns();
        let (key, name) = subject(resource, vault, kind);
        let v = Some(vault).filter(|v| !v.is_empty());
        if state.succeeded() {
            if let Ok(Some(c)) = self.catalog.close_incident(&key, cond) {
                let text = format!(
                    "holdfast: {cond} of {name} recovered (job {job}) after {} failed run(s) since {}",
                    c.count,
                    rfc3339(c.opened_ns)
                );
                self.event(
                    EventKind::Recovery,
                    resource,
                    v,
                    cond,
                    Some(job),
                    Some(state),
                    text,
                );
            }
        } else if matches!(state, JobState::Failed | JobState::Expired) {
            match self.catalog.open_incident(&key, cond, now) {
                Ok(true) => {
                    let ev = if state == JobState::Expired {
                        EventKind::Expired
                    } else {
                        EventKind::Failure
                    };
                    let text = format!(
                        "holdfast: {cond} of {name} {} (job {job}): {}",
                        state.as_str(),
                        message.unwrap_or("no detail")
                    );
                    self.event(ev, resource, v, cond, Some(job), Some(state), text);
                }
                Ok(false) => {}
                Err(e) => tracing::error!("{e}"),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish(
        &self,
        report: &mut RunReport,
        resource: &str,
        kind: JobKind,
        vault: &str,
        job: i64,
        t: Try,
        window: Option<Duration>,
    ) {
        let (state, bytes, point, point_ns, message) = match t {
            Try::Done {
                state,
                bytes,
                point,
                point_ns,
                message,
            } => (state, bytes, point, point_ns, message),
            Try::Failed(m) => (JobState::Failed, None, None, None, Some(m)),
            Try::Deadline => (
                JobState::Expired,
                None,
                None,
                None,
                Some(format!(
                    "did not complete within the completion window ({}); stopped",
                    window.map_or("-".into(), humanize)
                )),
            ),
            Try::Shutdown => (
                JobState::Aborted,
                None,
                None,
                None,
                Some("stopped: the daemon shut down".into()),
            ),
        };
        if let Err(e) = self.catalog.finish(
            job,
            state,
            bytes,
            point.as_deref(),
            point_ns,
            message.as_deref(),
            now_ns(),
        ) {
            tracing::error!("{e}");
        }
        tracing::info!(
            job,
            kind = kind.as_str(),
            resource,
            vault,
            state = state.as_str(),
            "{}",
            message.as_deref().unwrap_or("")
        );
        self.outcome(resource, vault, kind, job, state, message.as_deref());
        report
            .jobs
            .push((job, kind, vault.to_string(), state, message));
    }

    /// The job could not start within its start window: recorded `expired`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn late(
        &self,
        report: &mut RunReport,
        kind: JobKind,
        resource: &str,
        vault: &str,
        job: i64,
        why: &str,
    ) {
        let msg = format!("could not start within the start window: {why}");
        let _ = self.catalog.finish(
            job,
            JobState::Expired,
            None,
            None,
            None,
            Some(&msg),
            now_ns(),
        );
        self.outcome(resource, vault, kind, job, JobState::Expired, Some(&msg));
        report
            .jobs
            .push((job, kind, vault.into(), JobState::Expired, Some(msg)));
    }
}
