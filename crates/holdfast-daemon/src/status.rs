//! Per-resource status: newest point against the category's RPO, last success, next run.
//!
//! A resource's data age is the age of its newest completed (or partial) point — from the
//! catalog, and at daemon start from the vault itself (points made by hand count too). A
//! resource that never had a point is measured from when the catalog first saw it. When the
//! age exceeds the RPO the resource is in breach: a state of its own, alerted once.

use serde::Serialize;

use crate::job::{JobKind, JobState};
use crate::runner::{Runtime, rfc3339};

/// One resource's protection status.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceStatus {
    /// The resource.
    pub resource: String,
    /// Its category.
    pub category: String,
    /// The vault its backups go to.
    pub vault: String,
    /// The RPO target in seconds.
    pub rpo_seconds: Option<u64>,
    /// Newest point's time (RFC 3339).
    pub last_point: Option<String>,
    /// Newest point's time (Unix ns).
    #[serde(skip)]
    pub last_point_ns: Option<i64>,
    /// Age of the data in seconds (since the newest point, or since first seen).
    pub age_seconds: u64,
    /// Whether the age exceeds the RPO.
    pub rpo_breach: bool,
    /// Last successful backup job's end (Unix ns).
    #[serde(skip)]
    pub last_success_ns: Option<i64>,
    /// Last successful backup job's end (RFC 3339).
    pub last_success: Option<String>,
    /// Its duration in seconds.
    pub last_duration_seconds: Option<f64>,
    /// Bytes it added.
    pub last_bytes_added: Option<u64>,
    /// State of the newest backup job.
    pub last_state: Option<JobState>,
    /// The next scheduled run (RFC 3339).
    pub next_run: Option<String>,
}

/// The status of every resource of the current plan, at `now_ns`.
pub fn statuses(rt: &Runtime, now_ns: i64) -> Vec<ResourceStatus> {
    let loaded = rt.plan();
    let mut out = Vec::new();
    for (name, r) in &loaded.plan.resources {
        let category = r.category.get_ref().clone();
        let vault = loaded
            .plan
            .categories
            .get(&category)
            .map(|c| c.vault.get_ref().clone())
            .unwrap_or_default();
        let (first_seen, last_point) = rt
            .catalog
            .see_resource(name, now_ns)
            .unwrap_or((now_ns, None));
        let rpo = loaded.rpo(&category);
        let age_ns = (now_ns - last_point.unwrap_or(first_seen)).max(0);
        let breach = rpo.is_some_and(|r| age_ns as u128 > r.as_nanos());
        let last = rt
            .catalog
            .last_success(name, JobKind::Backup)
            .ok()
            .flatten();
        let newest = rt
            .catalog
            .newest(crate::catalog::Filter {
                resource: Some(name.clone()),
                kind: Some(JobKind::Backup),
                ..Default::default()
            })
            .ok()
            .flatten();
        let next = loaded.schedule_of(name).and_then(|s| s.next_after(now_ns));
        out.push(ResourceStatus {
            resource: name.clone(),
            category,
            vault,
            rpo_seconds: rpo.map(|d| d.as_secs()),
            last_point: last_point.map(rfc3339),
            last_point_ns: last_point,
            age_seconds: (age_ns / 1_000_000_000) as u64,
            rpo_breach: breach,
            last_success_ns: last.as_ref().and_then(|j| j.ended_ns),
            last_success: last.as_ref().and_then(|j| j.ended_ns).map(rfc3339),
            last_duration_seconds: last
                .as_ref()
                .and_then(|j| Some((j.ended_ns? - j.started_ns?) as f64 / 1e9)),
            last_bytes_added: last.as_ref().and_then(|j| j.bytes_added),
            last_state: newest.map(|j| j.state),
            next_run: next.map(rfc3339),
        });
    }
    out
}

/// One vault's integrity status: its verify schedule, newest verify and next verify.
#[derive(Debug, Clone, Serialize)]
pub struct VaultStatus {
    /// The vault's name in the plan.
    pub vault: String,
    /// Its location.
    pub url: String,
    /// The verify schedule (cron), if any.
    pub verify_schedule: Option<String>,
    /// How much the scheduled verify reads (`none`, `all`, `N%`).
    pub read_data: Option<String>,
    /// State of the newest finished verify job (`completed`, `failed`, `expired`).
    pub last_verify_state: Option<JobState>,
    /// Its end (RFC 3339).
    pub last_verify: Option<String>,
    /// Its end (Unix ns).
    #[serde(skip)]
    pub last_verify_ns: Option<i64>,
    /// Its message (what was checked, or what is damaged).
    pub last_verify_message: Option<String>,
    /// End of the newest verify that found no problem (Unix ns).
    #[serde(skip)]
    pub last_clean_ns: Option<i64>,
    /// The next scheduled verify (RFC 3339).
    pub next_verify: Option<String>,
}

/// The status of every vault of the current plan, at `now_ns`.
pub fn vault_statuses(rt: &Runtime, now_ns: i64) -> Vec<VaultStatus> {
    let loaded = rt.plan();
    let mut out = Vec::new();
    for (name, v) in &loaded.plan.vaults {
        let last = rt.catalog.last_verify(name).ok().flatten();
        let clean = rt
            .catalog
            .newest(crate::catalog::Filter {
                vault: Some(name.clone()),
                kind: Some(JobKind::Verify),
                states: vec![JobState::Completed],
                ..Default::default()
            })
            .ok()
            .flatten();
        let next = loaded
            .verify_of(name)
            .and_then(|v| v.schedule.next_after(now_ns));
        out.push(VaultStatus {
            vault: name.clone(),
            url: v.url.get_ref().clone(),
            verify_schedule: v.verify.as_ref().map(|x| x.schedule.get_ref().clone()),
            read_data: v.verify.as_ref().map(|x| x.depth().to_string()),
            last_verify_state: last.as_ref().map(|j| j.state),
            last_verify_ns: last.as_ref().and_then(|j| j.ended_ns),
            last_verify: last.as_ref().and_then(|j| j.ended_ns).map(rfc3339),
            last_verify_message: last.as_ref().and_then(|j| j.message.clone()),
            last_clean_ns: clean.and_then(|j| j.ended_ns),
            next_verify: next.map(rfc3339),
        });
    }
    out
}
