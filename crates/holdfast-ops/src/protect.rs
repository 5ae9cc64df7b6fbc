//! Changes to a vault's protection: the vault lock (set, remove, apply as storage retention)
//! and legal holds (place, release). Each change is one record appended to the vault's
//! protection chain (the engine's `protect::update`, which retries when another host changed
//! it at the same moment); its action text is what the chain's history shows.

use holdfast_engine::protect::{self, Hold, LockMode, Protection, RetentionReport, VaultLock};
use holdfast_engine::{Error, Result, Vault};
use holdfast_retention::{add_span, parse_span};
use serde::{Deserialize, Serialize};

/// A vault lock to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRequest {
    /// Governance (a full key with a bypass may lift it) or compliance (nobody, once its
    /// cooling-off period is over).
    pub mode: LockMode,
    /// Every point is kept at least this long after its time (`30d`, `1y`).
    pub min_retention: String,
    /// Longer retentions are refused (optional).
    pub max_retention: Option<String>,
    /// Compliance: how long the lock can still be changed or removed (`0s` = at once
    /// immutable).
    pub cooling_off: String,
    /// Allow weakening or lifting a governance lock.
    pub bypass_governance: bool,
}

/// The lock and holds after a change, and what applying the lock to storage did: the `--json`
/// output of `holdfast lock set|remove` and `holdfast hold add|release`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProtectionReport {
    /// The vault lock.
    pub lock: Option<VaultLock>,
    /// The legal holds.
    pub holds: Vec<Hold>,
    /// Storage retention applied for the lock (S3 Object Lock); not part of the JSON.
    #[serde(skip)]
    pub applied: Option<RetentionReport>,
}

impl ProtectionReport {
    fn of(st: &Protection) -> Self {
        ProtectionReport {
            lock: st.lock.clone(),
            holds: st.holds.clone(),
            applied: None,
        }
    }
}

fn input(what: &str) -> impl Fn(holdfast_retention::RetentionError) -> Error + '_ {
    move |e| Error::Input(format!("{what}: {e}"))
}

/// Set (or change) the vault lock, then apply it as storage retention where the storage
/// supports it. Re-setting an immutable compliance lock changes nothing and says so.
pub fn set_lock(vault: &Vault, req: &LockRequest, by: &str, now: i64) -> Result<ProtectionReport> {
    vault.require_full("changing the vault lock")?;
    parse_span(&req.min_retention).map_err(input("the minimum retention"))?;
    if let Some(m) = &req.max_retention {
        parse_span(m).map_err(input("the maximum retention"))?;
    }
    let cool = parse_span(&req.cooling_off).map_err(input("the cooling-off period"))?;
    let new = VaultLock {
        mode: req.mode,
        min_retention: req.min_retention.clone(),
        max_retention: req.max_retention.clone(),
        set_ns: now,
        changeable_until_ns: (req.mode == LockMode::Compliance).then(|| add_span(now, cool)),
    };
    let st = protect::update(vault, by, now, |cur| {
        let mut action =
            protect::check_set_lock(cur.lock.as_ref(), &new, req.bypass_governance, now)?;
        let mut next = cur.clone();
        if cur.lock.as_ref().is_some_and(|l| l.immutable(now)) {
            action = "lock re-confirmed (unchanged)".into();
        } else {
            next.lock = Some(new.clone());
        }
        Ok((next, action))
    })?;
    let mut report = ProtectionReport::of(&st);
    report.applied = Some(protect::apply_retention(vault, &st, now)?);
    Ok(report)
}

/// Apply the current lock as storage retention again (after backups, on a bucket without a
/// default retention).
pub fn apply_lock(vault: &Vault, now: i64) -> Result<ProtectionReport> {
    vault.require_full("applying the vault lock")?;
    let st = protect::current(vault)?;
    if st.lock.is_none() {
        return Err(Error::NotFound("the vault has no lock".into()));
    }
    let mut report = ProtectionReport::of(&st);
    report.applied = Some(protect::apply_retention(vault, &st, now)?);
    Ok(report)
}

/// Remove the vault lock (governance: with a bypass; compliance: only during its cooling-off
/// period).
pub fn remove_lock(
    vault: &Vault,
    bypass_governance: bool,
    by: &str,
    now: i64,
) -> Result<ProtectionReport> {
    vault.require_full("changing the vault lock")?;
    let st = protect::update(vault, by, now, |cur| {
        let action = protect::check_remove_lock(cur.lock.as_ref(), bypass_governance, now)?;
        let mut next = cur.clone();
        next.lock = None;
        Ok((next, action))
    })?;
    Ok(ProtectionReport::of(&st))
}

/// A legal hold to place: every point of `resource` (all when `None`) whose time is within
/// `from_ns..=to_ns` (open ends when `None`) is kept until the hold is released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    /// Its name, unique in the vault.
    pub name: String,
    /// The resource it covers (all when `None`).
    pub resource: Option<String>,
    /// Points from this time, Unix ns.
    pub from_ns: Option<i64>,
    /// Points up to this time, Unix ns.
    pub to_ns: Option<i64>,
    /// Why (a case number, a ticket).
    pub reason: String,
}

/// Place a legal hold.
pub fn add_hold(vault: &Vault, req: &HoldRequest, by: &str, now: i64) -> Result<ProtectionReport> {
    vault.require_full("managing legal holds")?;
    let name = &req.name;
    if name.trim().is_empty() {
        return Err(Error::Input("a hold needs a name".into()));
    }
    if let (Some(f), Some(t)) = (req.from_ns, req.to_ns)
        && f > t
    {
        return Err(Error::Input(format!(
            "hold {name:?}: its start is after its end"
        )));
    }
    let hold = Hold {
        name: name.clone(),
        resource: req.resource.clone(),
        from_ns: req.from_ns,
        to_ns: req.to_ns,
        reason: req.reason.clone(),
        created_ns: now,
        by: by.to_string(),
    };
    let st = protect::update(vault, by, now, |cur| {
        if cur.holds.iter().any(|h| h.name == *name) {
            return Err(Error::Input(format!("a hold named {name:?} exists")));
        }
        let mut next = cur.clone();
        next.holds.push(hold.clone());
        Ok((next, format!("hold {name:?} placed")))
    })?;
    Ok(ProtectionReport::of(&st))
}

/// Release a legal hold.
pub fn release_hold(vault: &Vault, name: &str, by: &str, now: i64) -> Result<ProtectionReport> {
    vault.require_full("managing legal holds")?;
    let st = protect::update(vault, by, now, |cur| {
        if !cur.holds.iter().any(|h| h.name == name) {
            return Err(Error::NotFound(format!("no hold named {name:?}")));
        }
        let mut next = cur.clone();
        next.holds.retain(|h| h.name != name);
        Ok((next, format!("hold {name:?} released")))
    })?;
    Ok(ProtectionReport::of(&st))
}
