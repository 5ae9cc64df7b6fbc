//! How a job's end is recorded: the catalog row, the log line, and a notification when it
//! opens or closes an incident (one alert per outage, one recovery message after it).

use std::time::Duration;

use super::{RunReport, Runtime, Try, hostname, humanize, rfc3339};
use crate::catalog::{CatalogError, Closed};
use crate::job::{JobKind, JobState};
use crate::notify::{Event, EventKind};

/// A job's incident: its key, its condition, and what people read (`backup of app-db`).
/// The key is a resource, or a whole vault for vault-wide jobs (resource `*`, such as
/// verify). Steps that run once per vault (copy, retention, prune) have an incident per
/// vault, so one failing copy destination and one working one do not alternate between
/// alert and recovery; a restore test's condition names the test, for the same reason.
fn subject(
    resource: &str,
    vault: &str,
    kind: JobKind,
    test: Option<&str>,
) -> (String, String, String) {
    let cond = kind.as_str();
    if let (JobKind::RestoreTest, Some(t)) = (kind, test) {
        return (
            resource.to_string(),
            format!("{cond}:{t}"),
            format!("restore test {t} of {resource}"),
        );
    }
    if resource == "*" {
        (
            format!("vault:{vault}"),
            cond.into(),
            format!("{cond} of vault {vault}"),
        )
    } else if matches!(kind, JobKind::Copy | JobKind::Retention | JobKind::Prune) {
        (
            format!("{resource}@{vault}"),
            cond.into(),
            format!("{cond} of {resource} in {vault}"),
        )
    } else {
        (
            resource.to_string(),
            cond.into(),
            format!("{cond} of {resource}"),
        )
    }
}

impl Runtime {
    /// The event about `resource` (its category and vault from the plan unless `vault` is
    /// given), stamped now.
    #[allow(clippy::too_many_arguments)]
    pub fn event_for(
        &self,
        kind: EventKind,
        resource: &str,
        vault: Option<&str>,
        condition: &str,
        job: Option<i64>,
        state: Option<JobState>,
        text: String,
    ) -> Event {
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
        Event {
            event: kind,
            resource: resource.into(),
            category,
            vault,
            condition: condition.into(),
            job,
            state: state.map(|s| s.as_str().into()),
            time: rfc3339(self.now_ns()),
            text,
            host: hostname(),
        }
    }

    fn queued(&self, e: Option<Event>) {
        if let Some(e) = e {
            tracing::info!(event = e.event.as_str(), resource = %e.resource, "{}", e.text);
            self.notifier.wake();
        }
    }

    /// Open the incident (`key`, `condition`), queueing the alert `make` builds for every
    /// channel that wants it in the same transaction; or count another occurrence (no
    /// alert). True when it is newly opened.
    pub fn open_alert(
        &self,
        key: &str,
        condition: &str,
        now: i64,
        make: impl FnOnce() -> Event,
    ) -> Result<bool, CatalogError> {
        let plan = self.plan();
        let mut made = None;
        let opened = self.catalog.open_incident_with(key, condition, now, || {
            let e = make();
            let rows = crate::notify::outgoing(&plan.plan, &e);
            made = Some(e);
            rows
        })?;
        self.queued(made);
        Ok(opened)
    }

    /// Close the incident (`key`, `condition`) if one is open, queueing the recovery message
    /// `make` builds in the same transaction.
    pub fn close_alert(
        &self,
        key: &str,
        condition: &str,
        now: i64,
        make: impl FnOnce(&Closed) -> Event,
    ) -> Result<Option<Closed>, CatalogError> {
        let plan = self.plan();
        let mut made = None;
        let closed = self.catalog.close_incident_with(key, condition, now, |c| {
            let e = make(c);
            let rows = crate::notify::outgoing(&plan.plan, &e);
            made = Some(e);
            rows
        })?;
        self.queued(made);
        Ok(closed)
    }

    /// Queue a notification about `resource` that belongs to no incident.
    pub fn notify(
        &self,
        kind: EventKind,
        resource: &str,
        condition: &str,
        job: Option<i64>,
        text: String,
    ) {
        let e = self.event_for(kind, resource, None, condition, job, None, text);
        let rows = crate::notify::outgoing(&self.plan().plan, &e);
        match self.catalog.enqueue(&rows, self.now_ns()) {
            Ok(()) => self.queued(Some(e)),
            Err(err) => tracing::error!("{err}"),
        }
    }

    /// Record how a job ended and notify on a new failure or a recovery (de-duplicated by
    /// incident; the message is queued with the incident's change).
    pub(super) fn outcome(
        &self,
        resource: &str,
        vault: &str,
        kind: JobKind,
        job: i64,
        state: JobState,
        message: Option<&str>,
    ) {
        let now = self.now_ns();
        // A restore test's job names its test in the catalog.
        let test = (kind == JobKind::RestoreTest)
            .then(|| self.catalog.get(job).ok().flatten().and_then(|j| j.test))
            .flatten();
        let (key, cond, what) = subject(resource, vault, kind, test.as_deref());
        let cond = cond.as_str();
        let v = Some(vault).filter(|v| !v.is_empty());
        let result = if state.succeeded() {
            self.close_alert(&key, cond, now, |c| {
                let text = format!(
                    "holdfast: {what} recovered (job {job}) after {} failed run(s) since {}",
                    c.count,
                    rfc3339(c.opened_ns)
                );
                self.event_for(
                    EventKind::Recovery,
                    resource,
                    v,
                    cond,
                    Some(job),
                    Some(state),
                    text,
                )
            })
            .map(|_| ())
        } else if matches!(state, JobState::Failed | JobState::Expired) {
            self.open_alert(&key, cond, now, || {
                let ev = if state == JobState::Expired {
                    EventKind::Expired
                } else {
                    EventKind::Failure
                };
                let text = format!(
                    "holdfast: {what} {} (job {job}): {}",
                    state.as_str(),
                    message.unwrap_or("no detail")
                );
                self.event_for(ev, resource, v, cond, Some(job), Some(state), text)
            })
            .map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::error!("{e}");
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
            Try::Failed { message, .. } => (JobState::Failed, None, None, None, Some(message)),
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
            self.now_ns(),
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
        if matches!(
            kind,
            JobKind::Backup | JobKind::Copy | JobKind::Retention | JobKind::Prune
        ) {
            // The vault's points may have changed: the next /points request re-reads them.
            self.points.invalidate(vault);
        }
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
            self.now_ns(),
        );
        self.outcome(resource, vault, kind, job, JobState::Expired, Some(&msg));
        report
            .jobs
            .push((job, kind, vault.into(), JobState::Expired, Some(msg)));
    }
}
