//! `/metrics`: Prometheus text format (prometheus-client), built from the catalog at each
//! scrape so values survive restarts.
//!
//! Per resource (labels `resource`, `category`): `holdfast_resource_last_success_timestamp_seconds`,
//! `holdfast_resource_last_duration_seconds`, `holdfast_resource_last_added_bytes`,
//! `holdfast_resource_rpo_seconds`, `holdfast_resource_data_age_seconds`,
//! `holdfast_resource_rpo_breach` (1 in breach). Per job kind and state:
//! `holdfast_jobs` (jobs in the catalog). Per vault (label `vault`):
//! `holdfast_vault_last_verify_timestamp_seconds`,
//! `holdfast_vault_last_clean_verify_timestamp_seconds`, `holdfast_vault_verify_ok`.
//! Per restore test and resource (labels `test`, `resource`, `vault`):
//! `holdfast_restore_test_last_success_timestamp_seconds`,
//! `holdfast_restore_test_last_rto_seconds` (the measured RTO of the newest finished run),
//! `holdfast_restore_test_passed` (1 when the newest finished run passed).
//! `holdfast_notifications_pending` (notifications queued in the outbox, not delivered yet),
//! `holdfast_points_refreshes` (`holdfast points` children started for the API since
//! the daemon started) and `holdfast_daemon_start_time_seconds`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::runner::Runtime;
use crate::status::statuses;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VaultLabels {
    vault: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TestLabels {
    test: String,
    resource: String,
    vault: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    state: String,
}

type FGauge = Gauge<f64, AtomicU64>;

/// The restore tests' gauges, from each (test, resource)'s newest finished job.
fn restore_tests(rt: &Runtime, reg: &mut Registry) {
    let fam = || Family::<TestLabels, FGauge>::default();
    let (success, rto, passed) = (fam(), fam(), fam());
    for t in rt.catalog.test_results().unwrap_or_default() {
        let j = &t.last;
        let l = TestLabels {
            test: j.test.clone().unwrap_or_default(),
            resource: j.resource.clone(),
            vault: j.vault.clone(),
        };
        if let Some(ns) = t.last_success_ns {
            success.get_or_create(&l).set(ns as f64 / 1e9);
        }
        if let Some(s) = j
            .report
            .as_ref()
            .and_then(|r| r.get("rto_seconds"))
            .and_then(serde_json::Value::as_f64)
        {
            rto.get_or_create(&l).set(s);
        }
        let ok = j.state == crate::job::JobState::Completed;
        passed.get_or_create(&l).set(if ok { 1.0 } else { 0.0 });
    }
    reg.register(
        "holdfast_restore_test_last_success_timestamp_seconds",
        "End of the newest passing run of the restore test against the resource (Unix time)",
        success,
    );
    reg.register(
        "holdfast_restore_test_last_rto_seconds",
        "Measured recovery time of the newest finished run of the restore test",
        rto,
    );
    reg.register(
        "holdfast_restore_test_passed",
        "1 when the newest finished run of the restore test passed, 0 otherwise",
        passed,
    );
}

/// Render the metrics.
pub fn render(rt: &Runtime, now_ns: i64, started_ns: i64) -> String {
    let mut reg = Registry::default();
    let fam = || Family::<ResourceLabels, FGauge>::default();
    let (last, dur, added, rpo, age, breach) = (fam(), fam(), fam(), fam(), fam(), fam());
    for s in statuses(rt, now_ns) {
        let l = ResourceLabels {
            resource: s.resource.clone(),
            category: s.category.clone(),
        };
        if let Some(t) = s.last_success_ns {
            last.get_or_create(&l).set(t as f64 / 1e9);
        }
        if let Some(d) = s.last_duration_seconds {
            dur.get_or_create(&l).set(d);
        }
        if let Some(b) = s.last_bytes_added {
            added.get_or_create(&l).set(b as f64);
        }
        if let Some(r) = s.rpo_seconds {
            rpo.get_or_create(&l).set(r as f64);
        }
        age.get_or_create(&l).set(s.age_seconds as f64);
        breach
            .get_or_create(&l)
            .set(if s.rpo_breach { 1.0 } else { 0.0 });
    }
    reg.register(
        "holdfast_resource_last_success_timestamp_seconds",
        "End of the newest successful backup of the resource (Unix time)",
        last,
    );
    reg.register(
        "holdfast_resource_last_duration_seconds",
        "Duration of the newest successful backup of the resource",
        dur,
    );
    reg.register(
        "holdfast_resource_last_added_bytes",
        "Bytes the newest successful backup of the resource added to its vault",
        added,
    );
    reg.register(
        "holdfast_resource_rpo_seconds",
        "The recovery point objective of the resource's category",
        rpo,
    );
    reg.register(
        "holdfast_resource_data_age_seconds",
        "Age of the resource's newest recovery point",
        age,
    );
    reg.register(
        "holdfast_resource_rpo_breach",
        "1 when the newest recovery point is older than the RPO",
        breach,
    );
    let jobs = Family::<JobLabels, Gauge>::default();
    for (kind, state, n) in rt.catalog.counts().unwrap_or_default() {
        jobs.get_or_create(&JobLabels { kind, state }).set(n);
    }
    reg.register(
        "holdfast_jobs",
        "Jobs in the catalog by kind and state",
        jobs,
    );
    let fam = || Family::<VaultLabels, FGauge>::default();
    let (verified, clean, ok) = (fam(), fam(), fam());
    for v in crate::status::vault_statuses(rt, now_ns) {
        let l = VaultLabels {
            vault: v.vault.clone(),
        };
        if let Some(t) = v.last_verify_ns {
            verified.get_or_create(&l).set(t as f64 / 1e9);
        }
        if let Some(t) = v.last_clean_ns {
            clean.get_or_create(&l).set(t as f64 / 1e9);
        }
        if let Some(s) = v.last_verify_state {
            let good = s == crate::job::JobState::Completed;
            ok.get_or_create(&l).set(if good { 1.0 } else { 0.0 });
        }
    }
    reg.register(
        "holdfast_vault_last_verify_timestamp_seconds",
        "End of the newest finished verify of the vault (Unix time)",
        verified,
    );
    reg.register(
        "holdfast_vault_last_clean_verify_timestamp_seconds",
        "End of the newest verify of the vault that found no problem (Unix time)",
        clean,
    );
    reg.register(
        "holdfast_vault_verify_ok",
        "1 when the newest finished verify of the vault found no problem, 0 otherwise",
        ok,
    );
    restore_tests(rt, &mut reg);
    let pending = Gauge::<i64>::default();
    pending.set(rt.catalog.outbox_pending().unwrap_or(0));
    reg.register(
        "holdfast_notifications_pending",
        "Notifications queued in the outbox and not delivered yet (retried with backoff)",
        pending,
    );
    // A gauge, not a counter: prometheus-client names a counter's sample `…_total` while its
    // HELP line names the family, which promtool (Prometheus text format) rejects.
    let refreshes = Gauge::<i64>::default();
    refreshes.set(i64::try_from(rt.points.refreshes()).unwrap_or(i64::MAX));
    reg.register(
        "holdfast_points_refreshes",
        "Point-list reads (holdfast points children) started for the API since the daemon started",
        refreshes,
    );
    let start = FGauge::default();
    start.set(started_ns as f64 / 1e9);
    reg.register(
        "holdfast_daemon_start_time_seconds",
        "When the daemon started (Unix time)",
        start,
    );
    let mut out = String::new();
    if encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}
