//! The notification outbox: alerts and recoveries queued in the same transaction that opens
//! or closes their incident, claimed for delivery one channel at a time, retried with backoff
//! until delivered (docs/daemon.md, "Notifications").

use rusqlite::params;
use serde::Serialize;

use super::{Catalog, CatalogError};

/// A notification to queue: the channel (its name in the plan) and the event (JSON).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The channel's name in the plan's `[notifications]`.
    pub channel: String,
    /// The event, as the JSON the channel is sent (webhook body before any Slack shaping).
    pub event: String,
}

/// A notification claimed for delivery.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Its id.
    pub id: i64,
    /// The channel.
    pub channel: String,
    /// The event (JSON).
    pub event: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// A notification as recorded in the outbox.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRecord {
    /// Its id.
    pub id: i64,
    /// The channel.
    pub channel: String,
    /// The event.
    pub event: serde_json::Value,
    /// Queued (Unix ns).
    pub created_ns: i64,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When it is tried next (Unix ns), while undelivered.
    pub next_attempt_ns: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Delivered (Unix ns).
    pub delivered_ns: Option<i64>,
    /// Given up (Unix ns): its channel left the plan.
    pub dropped_ns: Option<i64>,
}

pub(super) fn enqueue(
    tx: &rusqlite::Transaction<'_>,
    rows: &[Outgoing],
    now_ns: i64,
) -> rusqlite::Result<()> {
    for r in rows {
        tx.execute(
            "INSERT INTO outbox (channel, event, created_ns, next_attempt_ns) VALUES (?1, ?2, ?3, ?3)",
            params![r.channel, r.event, now_ns],
        )?;
    }
    Ok(())
}

impl Catalog {
    /// Queue notifications that belong to no incident.
    pub fn enqueue(&self, rows: &[Outgoing], now_ns: i64) -> Result<(), CatalogError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            enqueue(&tx, rows, now_ns)?;
            tx.commit()
        })
    }

    /// Claim up to `limit` notifications due at `now_ns` — the oldest undelivered one of each
    /// channel, so a channel gets its messages in order — by moving their next attempt to
    /// `lease_ns`: another process (or task) does not take them while they are tried.
    pub fn outbox_claim(
        &self,
        now_ns: i64,
        lease_ns: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, CatalogError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let rows: Vec<OutboxRow> = {
                let mut st = tx.prepare(
                    "SELECT id, channel, event, attempts FROM outbox o
                     WHERE delivered_ns IS NULL AND dropped_ns IS NULL AND next_attempt_ns <= ?1
                       AND id = (SELECT MIN(id) FROM outbox p WHERE p.channel = o.channel
                                 AND p.delivered_ns IS NULL AND p.dropped_ns IS NULL)
                     ORDER BY id LIMIT ?2",
                )?;
                let it = st.query_map(params![now_ns, limit], |r| {
                    Ok(OutboxRow {
                        id: r.get(0)?,
                        channel: r.get(1)?,
                        event: r.get(2)?,
                        attempts: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
                    })
                })?;
                it.collect::<rusqlite::Result<_>>()?
            };
            for r in &rows {
                tx.execute(
                    "UPDATE outbox SET next_attempt_ns = ?2 WHERE id = ?1",
                    params![r.id, lease_ns],
                )?;
            }
            tx.commit()?;
            Ok(rows)
        })
    }

    /// A notification was delivered.
    pub fn outbox_delivered(&self, id: i64, now_ns: i64) -> Result<(), CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET delivered_ns = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                params![id, now_ns],
            )
            .map(|_| ())
        })
    }

    /// A delivery attempt failed: try again at `next_ns`.
    pub fn outbox_failed(&self, id: i64, error: &str, next_ns: i64) -> Result<(), CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ns = ?3 WHERE id = ?1",
                params![id, error, next_ns],
            )
            .map(|_| ())
        })
    }

    /// A notification cannot ever be delivered (its channel left the plan): stop trying.
    pub fn outbox_drop(&self, id: i64, why: &str, now_ns: i64) -> Result<(), CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET dropped_ns = ?2, last_error = ?3 WHERE id = ?1",
                params![id, now_ns, why],
            )
            .map(|_| ())
        })
    }

    /// Make every undelivered notification due now (a daemon start: the fix for a channel
    /// is often a restart with a corrected setting).
    pub fn outbox_retry_now(&self, now_ns: i64) -> Result<usize, CatalogError> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET next_attempt_ns = ?1
                 WHERE delivered_ns IS NULL AND dropped_ns IS NULL AND next_attempt_ns > ?1",
                params![now_ns],
            )
        })
    }

    /// How many notifications are not delivered yet (nor dropped).
    pub fn outbox_pending(&self) -> Result<i64, CatalogError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM outbox WHERE delivered_ns IS NULL AND dropped_ns IS NULL",
                [],
                |r| r.get(0),
            )
        })
    }

    /// When the next undelivered notification is due (Unix ns): the earliest next attempt of
    /// the head row of each channel (the rows behind it wait for it).
    pub fn outbox_next_due(&self) -> Result<Option<i64>, CatalogError> {
        self.with(|c| {
            c.query_row(
                "SELECT MIN(next_attempt_ns) FROM outbox o
                 WHERE delivered_ns IS NULL AND dropped_ns IS NULL
                   AND id = (SELECT MIN(id) FROM outbox p WHERE p.channel = o.channel
                             AND p.delivered_ns IS NULL AND p.dropped_ns IS NULL)",
                [],
                |r| r.get(0),
            )
        })
    }

    /// Notifications, newest first: only undelivered ones when `pending_only`; at most
    /// `limit` (0: all).
    pub fn outbox_list(
        &self,
        pending_only: bool,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, CatalogError> {
        let limit = match limit {
            0 => -1,
            n => i64::try_from(n).unwrap_or(i64::MAX),
        };
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, channel, event, created_ns, attempts, next_attempt_ns, last_error,
                 delivered_ns, dropped_ns FROM outbox
                 WHERE (?1 = 0 OR (delivered_ns IS NULL AND dropped_ns IS NULL))
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![i64::from(pending_only), limit], |r| {
                let event: String = r.get(2)?;
                Ok(OutboxRecord {
                    id: r.get(0)?,
                    channel: r.get(1)?,
                    event: serde_json::from_str(&event).unwrap_or(serde_json::Value::Null),
                    created_ns: r.get(3)?,
                    attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
                    next_attempt_ns: r.get(5)?,
                    last_error: r.get(6)?,
                    delivered_ns: r.get(7)?,
                    dropped_ns: r.get(8)?,
                })
            })?;
            rows.collect()
        })
    }
}
