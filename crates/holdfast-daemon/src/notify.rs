//! Notifications: webhook (JSON, or a Slack-compatible `{"text": …}`) and email (SMTP).
//!
//! De-duplication is by incident (see [`crate::catalog::Catalog::open_incident`]): the first
//! failure of a condition (a resource's backups, copies, retention; its RPO) opens an incident
//! and sends one alert; later failures only count; the first success closes it and sends one
//! recovery message. One outage is two messages, not a hundred.
//!
//! Delivery is attempted three times (2 s, 4 s apart); a channel that cannot be reached is
//! logged, never fatal. Webhook URLs and SMTP passwords are secrets: read from the
//! environment or a file at send time and never logged.

use std::time::Duration;

use holdfast_plan::{Notification, Plan};
use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

/// Sends events to the plan's channels.
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
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

impl Notifier {
    /// A notifier.
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        Notifier {
            http,
            pending: Default::default(),
        }
    }

    /// Wait (up to `limit`) until every notification in flight was delivered or gave up.
    pub async fn flush(&self, limit: Duration) {
        let end = tokio::time::Instant::now() + limit;
        while self.pending.load(std::sync::atomic::Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < end
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Send `e` to every channel of `plan` that wants it (in the background).
    pub fn send(&self, plan: &Plan, e: Event) {
        tracing::info!(event = e.event.as_str(), resource = %e.resource, "{}", e.text);
        for (name, n) in &plan.notifications {
            if !wants(n, e.event) {
                continue;
            }
            let (name, e, this) = (name.clone(), e.clone(), self.clone());
            let channel = Channel::from(n);
            this.pending
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let _done = Pending(this.pending.clone());
                for attempt in 0..3u32 {
                    match this.deliver(&channel, &e).await {
                        Ok(()) => return,
                        Err(why) => {
                            tracing::warn!(
                                "notification {name:?}: attempt {} failed: {why}",
                                attempt + 1
                            );
                            tokio::time::sleep(Duration::from_secs(2 << attempt)).await;
                        }
                    }
                }
            });
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

struct Pending(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
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
