//! Protection records: the vault lock and legal holds (docs/format.md, section 13.4).
//!
//! The current protection state is the newest of a chain of create-only objects
//! `policy/<seq>` (`seq` = 16 hex digits, from 0). Each holds the whole state plus the event
//! that produced it, encrypted and authenticated under the policy key (full keys only). A
//! change writes `seq + 1`; of two racing changes one wins and the other retries. Objects are
//! never deleted: the chain is the audit record of every change, including governance
//! bypasses. A gap in the chain, or an unreadable newest object, fails closed: nothing that
//! needs the state (forget, lock changes) proceeds.

use holdfast_retention::{add_span, parse_span};
use holdfast_storage::{ErrorKind as SK, Handle, Kind};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::point::Manifest;
use crate::vault::Vault;

const AAD: &[u8] = b"holdfast v2 policy";

/// Lock modes, as in S3 Object Lock and AWS Backup Vault Lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Can be lifted or shortened with the full key and an explicit bypass, which is recorded.
    Governance,
    /// After its cooling-off period, nobody can shorten or lift it.
    Compliance,
}

/// A vault lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VaultLock {
    /// The mode.
    pub mode: LockMode,
    /// Every point is retained at least this long after its time (`30d`, `7y`, …).
    pub min_retention: String,
    /// Plans may not retain points longer than this (checked by `plan check`).
    #[serde(default)]
    pub max_retention: Option<String>,
    /// When the lock was set, Unix nanoseconds.
    pub set_ns: i64,
    /// Compliance only: until when the lock can still be changed or removed.
    #[serde(default)]
    pub changeable_until_ns: Option<i64>,
}

impl VaultLock {
    /// The retain-until time of a point made at `time_ns`.
    pub fn retain_until(&self, time_ns: i64) -> i64 {
        parse_span(&self.min_retention).map_or(i64::MAX, |s| add_span(time_ns, s))
    }

    /// Whether a compliance lock is past its cooling-off period at `now_ns`.
    pub fn immutable(&self, now_ns: i64) -> bool {
        self.mode == LockMode::Compliance && self.changeable_until_ns.is_none_or(|t| now_ns >= t)
    }
}

/// A legal hold: points of a resource (or all) within a time range survive every forget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Hold {
    /// Its name.
    pub name: String,
    /// Only points of this resource (all if absent).
    #[serde(default)]
    pub resource: Option<String>,
    /// Only points at or after this time, Unix nanoseconds.
    #[serde(default)]
    pub from_ns: Option<i64>,
    /// Only points at or before this time.
    #[serde(default)]
    pub to_ns: Option<i64>,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// When it was placed.
    pub created_ns: i64,
    /// By whom (`user@host`).
    pub by: String,
}

impl Hold {
    /// Whether the hold covers a point.
    pub fn covers(&self, m: &Manifest) -> bool {
        self.resource.as_ref().is_none_or(|r| *r == m.resource)
            && self.from_ns.is_none_or(|f| m.time_ns >= f)
            && self.to_ns.is_none_or(|t| m.time_ns <= t)
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Time on the writing host, Unix nanoseconds.
    pub time_ns: i64,
    /// `user@host`.
    pub by: String,
    /// What happened, in words.
    pub action: String,
}

/// The protection state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Protection {
    /// Record version, 1.
    pub version: u32,
    /// Position in the chain.
    pub seq: u64,
    /// The vault lock.
    #[serde(default)]
    pub lock: Option<VaultLock>,
    /// Legal holds.
    #[serde(default)]
    pub holds: Vec<Hold>,
    /// The change that produced this state (absent for the empty initial state).
    #[serde(default)]
    pub event: Option<Event>,
    /// Writer identities issued by `key backup-only`, and their quarantines (13.5).
    #[serde(default)]
    pub writers: Vec<crate::trust::WriterRecord>,
    /// Set by the migration to format 4: unsigned points stored before this time (Unix
    /// nanoseconds) are trusted; any other unsigned point is not (13.5).
    #[serde(default)]
    pub unsigned_before_ns: Option<i64>,
}

fn name(seq: u64) -> String {
    format!("{seq:016x}")
}

/// Read the whole chain, oldest first. Empty if the vault has no protection records.
pub fn history(vault: &Vault) -> Result<Vec<Protection>> {
    let key = vault
        .key_material()
        .policy_key()
        .ok_or_else(|| Error::KeyDenied {
            operation: "reading the vault lock and holds".into(),
        })?;
    let mut seqs: Vec<u64> = vault
        .storage()
        .list(Kind::Protection)?
        .into_iter()
        .filter(|o| o.name.len() == 16)
        .filter_map(|o| u64::from_str_radix(&o.name, 16).ok())
        .collect();
    seqs.sort_unstable();
    let mut out = Vec::with_capacity(seqs.len());
    for (i, s) in seqs.iter().enumerate() {
        let h = Handle::new(Kind::Protection, name(*s));
        if *s != i as u64 {
            return Err(Error::damaged(
                h.path(),
                format!("the protection record {i} is missing (the chain was tampered with)"),
            ));
        }
        let data = vault.storage().read(&h)?;
        let plain = key
            .open(AAD, &data)
            .map_err(|_| Error::damaged(h.path(), "does not authenticate"))?;
        let p: Protection =
            serde_json::from_slice(&plain).map_err(|e| Error::damaged(h.path(), e))?;
        if p.seq != *s {
            return Err(Error::damaged(h.path(), "sequence number does not match"));
        }
        out.push(p);
    }
    check_head(vault, seqs.last().copied())?;
    Ok(out)
}

/// The file beside the local cache that records the newest protection record seen.
const HEAD_FILE: &str = "policy-head";

/// Report a rollback: the chain's newest record is older than one this host has seen
/// (someone with delete rights removed the newest `policy/` objects). Records a newer head.
fn check_head(vault: &Vault, newest: Option<u64>) -> Result<()> {
    let Some(dir) = vault.state_dir() else {
        return Ok(());
    };
    let path = dir.join(HEAD_FILE);
    let seen: Option<u64> = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse().ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&path, e)),
    };
    if let Some(seen) = seen
        && newest.is_none_or(|n| n < seen)
    {
        return Err(Error::damaged(
            Handle::new(Kind::Protection, name(seen)).path(),
            format!(
                "the newest protection record this host has seen (number {seen}) is gone: the \
                 vault lock or holds were rolled back by deleting policy objects (restore them \
                 from a copy or storage versioning; the record of what was seen is {})",
                path.display()
            ),
        ));
    }
    if let Some(n) = newest
        && seen.is_none_or(|s| n > s)
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        holdfast_storage::durable::replace(&path, format!("{n}\n").as_bytes())
            .map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// The current state.
pub fn current(vault: &Vault) -> Result<Protection> {
    Ok(history(vault)?.pop().unwrap_or(Protection {
        version: 1,
        ..Default::default()
    }))
}

/// Apply a change: `f` gets the current state and returns the new one (or refuses). Retries
/// when another host changed the state at the same moment.
pub fn update(
    vault: &Vault,
    by: &str,
    now_ns: i64,
    f: impl Fn(&Protection) -> Result<(Protection, String)>,
) -> Result<Protection> {
    let key = vault
        .key_material()
        .policy_key()
        .ok_or_else(|| Error::KeyDenied {
            operation: "changing the vault lock or holds".into(),
        })?;
    for _ in 0..16 {
        let chain = history(vault)?;
        let cur = chain.last().cloned().unwrap_or(Protection {
            version: 1,
            ..Default::default()
        });
        let (mut next, action) = f(&cur)?;
        next.version = 1;
        next.seq = if chain.is_empty() { 0 } else { cur.seq + 1 };
        next.event = Some(Event {
            time_ns: now_ns,
            by: by.to_string(),
            action,
        });
        let json = serde_json::to_vec(&next).map_err(|e| Error::Input(e.to_string()))?;
        let data = key.seal(AAD, &json);
        match vault
            .storage()
            .create(&Handle::new(Kind::Protection, name(next.seq)), &data)
        {
            Ok(()) => return Ok(next),
            Err(e) if e.kind == SK::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Locked(
        "the protection records keep changing under us; try again".into(),
    ))
}

fn fmt_ns(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ns.to_string())
}

/// Whether `a` is a shorter span than `b` (measured from `at`).
fn shorter(a: &str, b: &str, at: i64) -> bool {
    match (parse_span(a), parse_span(b)) {
        (Ok(a), Ok(b)) => add_span(at, a) < add_span(at, b),
        _ => true,
    }
}

/// Validate a new lock against the current one; returns the action text.
pub fn check_set_lock(
    cur: Option<&VaultLock>,
    new: &VaultLock,
    bypass_governance: bool,
    now_ns: i64,
) -> Result<String> {
    let min = parse_span(&new.min_retention).map_err(|e| Error::Input(e.to_string()))?;
    if let Some(max) = &new.max_retention {
        let maxs = parse_span(max).map_err(|e| Error::Input(e.to_string()))?;
        if add_span(now_ns, maxs) < add_span(now_ns, min) {
            return Err(Error::Input(format!(
                "the maximum retention {max} is shorter than the minimum retention {}",
                new.min_retention
            )));
        }
    }
    let action = format!(
        "lock set: {:?} mode, min retention {}{}",
        new.mode,
        new.min_retention,
        new.max_retention
            .as_ref()
            .map(|m| format!(", max retention {m}"))
            .unwrap_or_default()
    )
    .to_lowercase();
    let Some(cur) = cur else {
        return Ok(action);
    };
    if cur.immutable(now_ns) {
        if *new == *cur {
            return Ok(action);
        }
        return Err(Error::Locked(format!(
            "the vault has a compliance lock (min retention {}) that cannot be changed or \
             removed since {}",
            cur.min_retention,
            fmt_ns(cur.changeable_until_ns.unwrap_or(cur.set_ns))
        )));
    }
    if cur.mode == LockMode::Governance {
        let weaker = shorter(&new.min_retention, &cur.min_retention, now_ns);
        if weaker && !bypass_governance {
            return Err(Error::Locked(format!(
                "shortening the governance lock's min retention ({} → {}) needs \
                 --bypass-governance and the full key",
                cur.min_retention, new.min_retention
            )));
        }
        if weaker {
            return Ok(format!("{action} (bypassing governance)"));
        }
    }
    Ok(action)
}

/// Validate removing the lock; returns the action text.
pub fn check_remove_lock(
    cur: Option<&VaultLock>,
    bypass_governance: bool,
    now_ns: i64,
) -> Result<String> {
    let Some(cur) = cur else {
        return Err(Error::Input("the vault has no lock".into()));
    };
    match cur.mode {
        LockMode::Compliance if cur.immutable(now_ns) => Err(Error::Locked(format!(
            "the vault has a compliance lock that cannot be removed (immutable since {})",
            fmt_ns(cur.changeable_until_ns.unwrap_or(cur.set_ns))
        ))),
        LockMode::Compliance => Ok("lock removed during its cooling-off period".into()),
        LockMode::Governance if !bypass_governance => Err(Error::Locked(
            "lifting a governance lock needs a governance bypass and the full key".into(),
        )),
        LockMode::Governance => Ok("governance lock lifted (bypassing governance)".into()),
    }
}

/// Why a point may not be forgotten now, if it may not.
pub fn protected(
    state: &Protection,
    m: &Manifest,
    now_ns: i64,
    bypass_governance: bool,
) -> Option<String> {
    if let Some(h) = state.holds.iter().find(|h| h.covers(m)) {
        return Some(format!("held by legal hold {:?}", h.name));
    }
    let lock = state.lock.as_ref()?;
    let until = lock.retain_until(m.retention_time_ns());
    if now_ns >= until {
        return None;
    }
    match lock.mode {
        LockMode::Compliance => Some(format!(
            "under the vault's compliance lock until {}",
            fmt_ns(until)
        )),
        LockMode::Governance if !bypass_governance => Some(format!(
            "under the vault's governance lock until {} (a governance bypass overrides it)",
            fmt_ns(until)
        )),
        LockMode::Governance => None,
    }
}

/// What [`apply_retention`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RetentionReport {
    /// Whether the storage enforces retention (S3 with Object Lock on the bucket).
    pub supported: bool,
    /// The bucket's default retention for new objects, in days.
    pub default_days: Option<u32>,
    /// Why the bucket's default retention could not be set (then only existing objects are
    /// retained by this call; set the default on the bucket yourself).
    pub default_error: Option<String>,
    /// Objects whose storage retention was set or confirmed.
    pub objects: usize,
    /// The latest retain-until date applied, Unix seconds.
    pub latest_until: Option<i64>,
}

/// Make the storage enforce the vault lock (S3 Object Lock): the bucket's default retention
/// covers every new object; each point, each pack and index object a point needs, the config
/// and the protection records get a retain-until of at least the points' retain-until
/// dates. Extends, never shortens. Does nothing without a lock or on storage without
/// retention.
pub fn apply_retention(vault: &Vault, state: &Protection, now_ns: i64) -> Result<RetentionReport> {
    use std::collections::{HashMap, HashSet};

    use rayon::prelude::*;

    use crate::id::Id;
    use crate::tree::NodeKind;

    let mut report = RetentionReport::default();
    let Some(lock) = &state.lock else {
        return Ok(report);
    };
    let storage = vault.storage();
    if !storage.retention_supported()? {
        return Ok(report);
    }
    report.supported = true;
    let mode = match lock.mode {
        LockMode::Governance => holdfast_storage::RetentionMode::Governance,
        LockMode::Compliance => holdfast_storage::RetentionMode::Compliance,
    };
    let secs = |ns: i64| ns.div_euclid(1_000_000_000);
    let days = ((lock.retain_until(now_ns) - now_ns).max(0) as f64 / 86_400e9).ceil() as u32;
    let days = days.max(1);
    match storage.set_default_retention(mode, days) {
        Ok(()) => report.default_days = Some(days),
        Err(e) => report.default_error = Some(e.to_string()),
    }

    vault.load_index()?;
    let (mut points, _) = vault.list_points()?;
    points.sort_by_key(|(_, m)| std::cmp::Reverse(lock.retain_until(m.retention_time_ns())));
    // Walk newest retain-until first: a tree already seen was reached from a point that
    // needs it at least as long, so it is not walked again.
    let mut until: HashMap<Handle, i64> = HashMap::new();
    let mut seen: HashSet<Id> = HashSet::new();
    let mut pack_until: HashMap<Id, i64> = HashMap::new();
    for (id, m) in &points {
        let u = secs(lock.retain_until(m.retention_time_ns()));
        if u <= secs(now_ns) {
            continue;
        }
        until.insert(Handle::new(Kind::Point, id.to_hex()), u);
        let mut blobs: Vec<Id> = Vec::new();
        let mut stack = vec![m.root];
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            blobs.push(t);
            let tree = vault.load_tree(&t)?;
            for n in &tree.nodes {
                match &n.kind {
                    NodeKind::Dir { subtree } => stack.push(*subtree),
                    NodeKind::File { content, .. } => blobs.extend(content.iter().copied()),
                    NodeKind::Symlink { .. } => {}
                }
            }
        }
        let idx = vault.index();
        // Every location: which one is genuine is not decided by index order (9.3).
        for b in blobs {
            for l in idx.locations(&b) {
                pack_until.entry(idx.packs[l.pack as usize].id).or_insert(u);
            }
        }
    }
    let (objects, _, _) = vault.read_index_objects()?;
    for (name, packs) in &objects {
        if let Some(u) = packs.iter().filter_map(|p| pack_until.get(&p.id)).max() {
            until.insert(Handle::new(Kind::Index, name), *u);
        }
    }
    for (p, u) in pack_until {
        until.insert(Handle::new(Kind::Pack, p.to_hex()), u);
    }
    let latest = until.values().copied().max();
    if let Some(l) = latest {
        until.insert(Handle::config(), l);
        for o in storage.list(Kind::Protection)? {
            until.insert(Handle::new(Kind::Protection, o.name), l);
        }
    }
    let items: Vec<(Handle, i64)> = until.into_iter().collect();
    items
        .par_iter()
        .try_for_each(|(h, u)| storage.retain(h, mode, *u))?;
    report.objects = items.len();
    report.latest_until = latest;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400 * 1_000_000_000;

    fn lock(mode: LockMode, min: &str, changeable: Option<i64>) -> VaultLock {
        VaultLock {
            mode,
            min_retention: min.into(),
            max_retention: None,
            set_ns: 0,
            changeable_until_ns: changeable,
        }
    }

    #[test]
    fn compliance_is_immutable_after_cooling_off() {
        let cur = lock(LockMode::Compliance, "30d", Some(3 * DAY));
        let weaker = lock(LockMode::Compliance, "1d", Some(10 * DAY));
        assert!(check_set_lock(Some(&cur), &weaker, true, DAY).is_ok());
        assert!(check_set_lock(Some(&cur), &weaker, true, 4 * DAY).is_err());
        assert!(check_remove_lock(Some(&cur), true, DAY).is_ok());
        assert!(matches!(
            check_remove_lock(Some(&cur), true, 4 * DAY),
            Err(Error::Locked(_))
        ));
    }

    #[test]
    fn governance_needs_bypass_to_weaken() {
        let cur = lock(LockMode::Governance, "30d", None);
        let weaker = lock(LockMode::Governance, "7d", None);
        let stronger = lock(LockMode::Compliance, "60d", Some(DAY));
        assert!(check_set_lock(Some(&cur), &weaker, false, 0).is_err());
        assert!(check_set_lock(Some(&cur), &weaker, true, 0).is_ok());
        assert!(check_set_lock(Some(&cur), &stronger, false, 0).is_ok());
        assert!(check_remove_lock(Some(&cur), false, 0).is_err());
        assert!(check_remove_lock(Some(&cur), true, 0).is_ok());
    }

    #[test]
    fn points_are_protected_until_retain_until() {
        let m = Manifest {
            version: 1,
            time_ns: 10 * DAY,
            host: "h".into(),
            user: "u".into(),
            resource: "db".into(),
            tags: vec![],
            paths: vec![],
            source: Default::default(),
            root: crate::id::Id([0; 32]),
            partial: false,
            errors: vec![],
            summary: Default::default(),
            program: "t".into(),
            copied_from: None,
            stored_ns: None,
            attribution: Default::default(),
        };
        let mut st = Protection {
            lock: Some(lock(LockMode::Governance, "5d", None)),
            ..Default::default()
        };
        assert!(protected(&st, &m, 14 * DAY, false).is_some());
        assert!(protected(&st, &m, 14 * DAY, true).is_none());
        assert!(protected(&st, &m, 15 * DAY, false).is_none());
        st.lock = Some(lock(LockMode::Compliance, "5d", Some(0)));
        assert!(protected(&st, &m, 14 * DAY, true).is_some());
        st.lock = None;
        st.holds.push(Hold {
            name: "case-1".into(),
            resource: Some("db".into()),
            from_ns: Some(9 * DAY),
            to_ns: None,
            reason: String::new(),
            created_ns: 0,
            by: "u@h".into(),
        });
        assert!(protected(&st, &m, 100 * DAY, true).is_some());
        st.holds[0].resource = Some("files".into());
        assert!(protected(&st, &m, 100 * DAY, true).is_none());
    }

    proptest::proptest! {
        #[test]
        fn records_round_trip(min in "[1-9][0-9]{0,2}d", holds in 0usize..4, seq in 0u64..1000,
                              writers in 0usize..3, since in proptest::option::of(proptest::num::i64::ANY)) {
            let p = Protection {
                version: 1,
                seq,
                lock: Some(lock(LockMode::Compliance, &min, Some(7))),
                holds: (0..holds).map(|i| Hold {
                    name: format!("h{i}"), resource: None, from_ns: Some(i as i64), to_ns: None,
                    reason: "r".into(), created_ns: 1, by: "u@h".into() }).collect(),
                event: Some(Event { time_ns: 3, by: "u@h".into(), action: "x".into() }),
                writers: (0..writers).map(|i| crate::trust::WriterRecord {
                    id: format!("{i:032x}"), label: format!("w{i}"), scope: vec!["db:*".into()],
                    created_ns: 5, by: "u@h".into(),
                    quarantine: (i == 1).then(|| crate::trust::Quarantine {
                        since_ns: 9, reason: "r".into(), at_ns: 10, by: "u@h".into() }),
                }).collect(),
                unsigned_before_ns: since,
            };
            let json = serde_json::to_vec(&p).expect("json");
            let back: Protection = serde_json::from_slice(&json).expect("parse");
            proptest::prop_assert_eq!(back, p);
        }
    }
}
