//! Notifications: webhook (JSON, or a Slack-compatible `{"text": …}`) and email (SMTP),
//! delivered through an outbox in the catalog.
//!
//! De-duplication is by incident (see [`crate::catalog::Catalog::open_incident_with`]): the
//! first failure of a condition (a resource's backups, copies, retention; its RPO) opens an
//! incident and queues one alert per channel; later failures only count; the first success
//! closes it and queues one recovery message. One outage is two messages, not a hundred.
//!
//! The alert is written to the `outbox` table in the same transaction that opens (or closes)
//! the incident, so an open incident always has its alert queued. The daemon's delivery loop
//! ([`Notifier::run`]) sends each queued row, oldest first per channel, and retries a failed
//! one with exponential backoff (2 s, 4 s, 8 s … capped at 1 h) until it is delivered —
//! across restarts: a daemon that starts tries every undelivered row at once. A row is
//! claimed (its next attempt moved [`LEASE`] ahead) before it is tried, so a daemon and a
//! `holdfast run` sharing the catalog do not both send it. A row whose channel left the plan
//! is dropped (logged). `holdfast_notifications_pending` counts undelivered rows.
//!
//! Webhook URLs and SMTP passwords are secrets: read from the environment or a file at each
//! attempt (a fixed URL file is picked up without a restart) and never logged or stored.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use holdfast_plan::{Notification, Plan};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, OutboxRow, Outgoing};
use crate::clock::Clock;
use crate::settings::LoadedPlan;

/// The longest wait between two attempts at one notification.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The wait after the first failed attempt (doubled after each further one).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// How long one delivery attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// How far a claimed row's next attempt moves ahead while it is tried (longer than an attempt).
pub const LEASE: Duration = Duration::from_secs(180);
/// Rows tried at once (one per channel).
const BATCH: usize = 16;

/// The wait after `failed` consecutive failed attempts: 2 s, 4 s, 8 s … at most 1 h.
pub fn backoff(failed: u32) -> Duration {
    let exp = failed.saturating_sub(1).min(20);
    FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF)
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A job failed (after its retries).
    Failure,
    /// A job could not start or finish within its window.
    Expired,
    /// A resource's newest point is older than its RPO.
    Rpo,
    /// A condition that was alerted is over.
    Recovery,
}

impl EventKind {
    /// Its name (as in a channel's `events`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Failure => "failure",
            EventKind::Expired => "expired",
            EventKind::Rpo => "rpo",
            EventKind::Recovery => "recovery",
        }
    }
}

/// One notification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// The resource.
    pub resource: String,
    /// Its category (empty for vault-wide jobs).
    pub category: String,
    /// The vault concerned (the resource's vault; a copy's destination; the verified vault).
    pub vault: String,
    /// The condition: `backup`, `copy`, `retention`, `prune`, `verify` or `rpo`.
    pub condition: String,
    /// The job, if one caused it.
    pub job: Option<i64>,
    /// The job's state.
    pub state: Option<String>,
    /// When (RFC 3339).
    pub time: String,
    /// One line for people.
    pub text: String,
    /// This host.
    pub host: String,
}

/// The plan, shared between the runtime and the notifier (replaced on SIGHUP).
pub type SharedPlan = Arc<RwLock<Arc<LoadedPlan>>>;

/// Delivers queued events to the plan's channels.
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    catalog: Catalog,
    plan: SharedPlan,
    wake: Arc<tokio::sync::Notify>,
    clock: Arc<dyn Clock>,
}

fn wants(n: &Notification, e: EventKind) -> bool {
    n.events.is_empty() || n.events.iter().any(|x| x.get_ref() == e.as_str())
}

fn secret(env: Option<&String>, file: Option<&String>) -> Option<String> {
    if let Some(v) = env {
        return std::env::var(v).ok();
    }
    let f = file?;
    std::fs::read_to_string(f)
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
}

/// The outbox rows for `e`: one per channel of `plan` that wants it.
pub fn outgoing(plan: &Plan, e: &Event) -> Vec<Outgoing> {
    let Ok(event) = serde_json::to_string(e) else {
        return Vec::new();
    };
    plan.notifications
        .iter()
        .filter(|(_, n)| wants(n, e.event))
        .map(|(name, _)| Outgoing {
            channel: name.clone(),
            event: event.clone(),
        })
        .collect()
}

/// How one attempt at a row ended.
enum Attempt {
    Delivered,
    Failed(String),
    Dropped(String),
}

impl Notifier {
    /// A notifier delivering the outbox of `catalog` to the channels of `plan`.
    pub fn new(catalog: Catalog, plan: SharedPlan, clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        Notifier {
            http,
            catalog,
            plan,
            wake: Arc::new(tokio::sync::Notify::new()),
            clock,
        }
    }

    fn plan(&self) -> Arc<LoadedPlan> {
        self.plan.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// New rows were queued: try them now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Claim the due rows (the oldest undelivered one per channel) and try them, at once;
    /// returns how many were tried.
    pub async fn deliver_due(&self) -> usize {
        let now = self.clock.now_ns();
        let lease = now.saturating_add(LEASE.as_nanos() as i64);
        let rows = match self.catalog.outbox_claim(now, lease, BATCH) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("notifications: {e}");
                return 0;
            }
        };
        let n = rows.len();
        let mut set = tokio::task::JoinSet::new();
        for row in rows {
            let this = self.clone();
            set.spawn(async move { this.attempt(row).await });
        }
        while set.join_next().await.is_some() {}
        n
    }

    /// One attempt at one claimed row, recorded.
    async fn attempt(&self, row: OutboxRow) -> bool {
        let plan = self.plan();
        let name = &row.channel;
        let result = match (
            plan.plan.notifications.get(name),
            serde_json::from_str::<Event>(&row.event),
        ) {
            (None, _) => Attempt::Dropped(format!("the channel {name:?} is no longer in the plan")),
            (_, Err(e)) => Attempt::Dropped(format!("unreadable queued event: {e}")),
            (Some(n), Ok(e)) => {
                let channel = Channel::from(n);
                match tokio::time::timeout(ATTEMPT_TIMEOUT, self.deliver(&channel, &e)).await {
                    Ok(Ok(())) => Attempt::Delivered,
                    Ok(Err(why)) => Attempt::Failed(why),
                    Err(_) => {
                        Attempt::Failed(format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()))
                    }
                }
            }
        };
        let now = self.clock.now_ns();
        let attempt = row.attempts + 1;
        let recorded = match &result {
            Attempt::Delivered => {
                tracing::info!(
                    "notification {} to {name:?} delivered (attempt {attempt})",
                    row.id
                );
                self.catalog.outbox_delivered(row.id, now)
            }
            Attempt::Failed(why) => {
                let wait = backoff(attempt);
                tracing::warn!(
                    "notification {} to {name:?}: attempt {attempt} failed: {why}; next attempt in {}",
                    row.id,
                    crate::clock::humanize(wait)
                );
                let next = now.saturating_add(wait.as_nanos() as i64);
                self.catalog.outbox_failed(row.id, why, next)
            }
            Attempt::Dropped(why) => {
                tracing::warn!("notification {} to {name:?} dropped: {why}", row.id);
                self.catalog.outbox_drop(row.id, why, now)
            }
        };
        if let Err(e) = recorded {
            tracing::error!("notifications: {e}");
        }
        matches!(result, Attempt::Delivered)
    }

    /// The delivery loop of the daemon: tries due rows as they are queued ([`Notifier::wake`])
    /// or come due, and at least every second (rows queued by another process), until
    /// `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            if self.deliver_due().await > 0 {
                // A delivered row may have unblocked the next one of its channel.
                continue;
            }
            let now = self.clock.now_ns();
            let wait = match self.catalog.outbox_next_due() {
                Ok(Some(t)) if t > now => Duration::from_nanos((t - now) as u64),
                Ok(Some(_)) => Duration::from_millis(50),
                _ => Duration::from_secs(1),
            }
            .min(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Try every undelivered row that is due before `limit` passes (waiting for those in
    /// backoff when their time comes first); what is still undelivered then stays queued
    /// for the daemon (or the next run).
    pub async fn flush(&self, limit: Duration) {
        let end = tokio::time::Instant::now() + limit;
        let end_ns = self.clock.now_ns().saturating_add(limit.as_nanos() as i64);
        while tokio::time::Instant::now() < end {
            if self.deliver_due().await > 0 {
                continue;
            }
            let now = self.clock.now_ns();
            match self.catalog.outbox_next_due() {
                Ok(Some(t)) if t <= end_ns => {
                    let wait = Duration::from_nanos(t.saturating_sub(now).max(0) as u64)
                        .max(Duration::from_millis(20));
                    tokio::time::sleep_until((tokio::time::Instant::now() + wait).min(end)).await;
                }
                _ => return,
            }
        }
    }

    async fn deliver(&self, c: &Channel, e: &Event) -> Result<(), String> {
        match c {
            Channel::Webhook { url, slack } => {
                let url = url.clone().ok_or("the webhook URL is not set")?;
                let body = if *slack {
                    serde_json::json!({ "text": e.text })
                } else {
                    serde_json::to_value(e).map_err(|x| x.to_string())?
                };
                let resp = self
                    .http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|x| format!("cannot reach the webhook: {}", x.without_url()))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("the webhook answered {}", resp.status()))
                }
            }
            Channel::Email(m) => crate::mail::send(m, e).await,
        }
    }
}

/// A channel with its secrets read.
pub enum Channel {
    /// A webhook.
    Webhook {
        /// Its URL.
        url: Option<String>,
        /// Slack body.
        slack: bool,
    },
    /// Email.
    Email(crate::mail::Mail),
}

impl From<&Notification> for Channel {
    fn from(n: &Notification) -> Self {
        if n.kind.get_ref() == "email" {
            Channel::Email(crate::mail::Mail {
                to: n.to.clone(),
                smtp: n.smtp.clone().unwrap_or_default(),
                user: n.smtp_user.clone(),
                password: n
                    .smtp_password_env
                    .as_ref()
                    .and_then(|v| std::env::var(v).ok()),
                from: n.from.clone(),
                security: n
                    .smtp_security
                    .as_ref()
                    .map_or("starttls".into(), |s| s.get_ref().clone()),
            })
        } else {
            Channel::Webhook {
                url: secret(n.url_env.as_ref(), n.url_file.as_ref()),
                slack: n.slack,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let secs: Vec<u64> = [1, 2, 3, 4, 11, 12, 13, 1000]
            .into_iter()
            .map(|n| backoff(n).as_secs())
            .collect();
        assert_eq!(secs, [2, 4, 8, 16, 2048, 3600, 3600, 3600]);
    }
}
