//! Protection records (`policy/<seq>`, decrypted JSON, `protect::Protection`): the vault
//! lock (`VaultLock`: its retention span, parsed by `holdfast_retention::parse_span`) and
//! legal holds (`Hold`), and the decisions taken from them (`VaultLock::retain_until`,
//! `VaultLock::immutable`, `Hold::covers`, `protect::protected`,
//! `protect::check_set_lock`, `protect::check_remove_lock`), and the writer registry's trust
//! decisions (`trust::concern`).
//!
//! Checks: decoding never panics; what decodes re-encodes to JSON that decodes to the same
//! record, and re-encoding is stable; a lock never retains a point for less than no time
//! (`retain_until(t) >= t`); a hold covers exactly the points of its resource within its
//! range, and a covered point is always protected; setting the lock that is already set is
//! refused only when setting it on an unlocked vault would be; no decision panics, at any
//! time.
#![no_main]
use std::sync::LazyLock;

use holdfast_engine::identity::Attribution;
use holdfast_engine::point::Manifest;
use holdfast_engine::trust;
use holdfast_engine::protect::{self, Hold, LockMode, Protection};
use libfuzzer_sys::fuzz_target;

const TIMES: [i64; 7] = [i64::MIN, -1, 0, 1, 1_700_000_000_000_000_000, i64::MAX - 1, i64::MAX];

/// A manifest to test decisions against (built from JSON: robust to new skipped fields).
static POINT: LazyLock<Manifest> = LazyLock::new(|| {
    let json = serde_json::json!({
        "version": 1, "time_ns": 0, "host": "h", "user": "u", "resource": "r",
        "source": {"kind": "files"}, "root": "00".repeat(32),
        "summary": {"files_new": 0, "files_changed": 0, "files_unchanged": 0, "dirs": 0,
            "bytes_read": 0, "total_size": 0, "bytes_added": 0, "stored_added": 0,
            "blobs_added": 0, "duration_ms": 0},
        "program": "fuzz"
    });
    Manifest::from_json(&serde_json::to_vec(&json).unwrap()).expect("template manifest")
});

fn point(resource: &str, time_ns: i64) -> Manifest {
    let mut m = POINT.clone();
    m.resource = resource.to_string();
    m.time_ns = time_ns;
    m
}

fn covers(h: &Hold, resource: &str, t: i64) -> bool {
    h.resource.as_deref().is_none_or(|r| r == resource)
        && h.from_ns.is_none_or(|f| t >= f)
        && h.to_ns.is_none_or(|x| t <= x)
}

fuzz_target!(|data: &[u8]| {
    let Ok(p) = serde_json::from_slice::<Protection>(data) else {
        return;
    };
    let enc = serde_json::to_vec(&p).unwrap();
    let again: Protection = serde_json::from_slice(&enc).unwrap();
    assert_eq!(again, p);
    assert_eq!(serde_json::to_vec(&again).unwrap(), enc);

    let mut times: Vec<i64> = TIMES.to_vec();
    for h in &p.holds {
        for t in [h.from_ns, h.to_ns].into_iter().flatten() {
            times.extend([t.saturating_sub(1), t, t.saturating_add(1)]);
        }
    }
    if let Some(l) = &p.lock {
        times.push(l.set_ns);
        times.extend(l.changeable_until_ns);
    }
    times.truncate(16);

    let mut resources: Vec<&str> = vec!["r"];
    resources.extend(p.holds.iter().filter_map(|h| h.resource.as_deref()).take(2));
    for &res in &resources {
        for &t in &times {
            let m = point(res, t);
            for h in &p.holds {
                assert_eq!(h.covers(&m), covers(h, res, t));
            }
            let covered = p.holds.iter().any(|h| h.covers(&m));
            for now in [t, 0, i64::MAX] {
                for bypass in [false, true] {
                    let why = protect::protected(&p, &m, now, bypass);
                    if covered {
                        assert!(why.is_some(), "a held point is not protected");
                    }
                }
            }
        }
    }
    if let Some(l) = &p.lock {
        for &t in &times {
            assert!(l.retain_until(t) >= t, "retain_until({t}) < {t}");
            let imm = l.immutable(t);
            assert!(!imm || l.mode == LockMode::Compliance);
            for bypass in [false, true] {
                let fresh = protect::check_set_lock(None, l, bypass, t);
                let same = protect::check_set_lock(Some(l), l, bypass, t);
                assert_eq!(fresh.is_ok(), same.is_ok(), "setting the same lock again");
                let removed = protect::check_remove_lock(Some(l), bypass, t);
                if imm {
                    assert!(removed.is_err(), "an immutable lock was removed");
                }
            }
        }
    }
    assert!(protect::check_remove_lock(None, true, 0).is_err());

    // Trust decisions (format 4) against the writer registry: never a panic, an owner-signed
    // point on time is always trusted, and a quarantined writer's point stored at or after
    // its quarantine never is.
    for &t in &times {
        let mut m = point("r", t);
        m.stored_ns = Some(t);
        m.attribution = Attribution::Owner;
        assert_eq!(trust::concern(&m, &p, t), None, "an owner point on time is untrusted");
        for w in p.writers.iter().take(4) {
            m.attribution = Attribution::Writer {
                id: w.id.clone(),
                label: w.label.clone(),
                scope: vec![],
            };
            let c = trust::concern(&m, &p, t);
            if let Some(q) = p.writers.iter().find(|x| x.id == w.id).and_then(|x| x.quarantine.as_ref())
                && t >= q.since_ns
            {
                assert!(c.is_some(), "a quarantined writer's point is trusted");
            }
        }
        m.attribution = Attribution::Unsigned;
        let c = trust::concern(&m, &p, t);
        assert_eq!(
            c.is_none(),
            p.unsigned_before_ns.is_some_and(|b| t < b),
            "unsigned point trust"
        );
    }
});
