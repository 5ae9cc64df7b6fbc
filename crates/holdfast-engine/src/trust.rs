//! Which recovery points are trusted, and the writer registry (docs/format.md 11.4, 13.5).
//!
//! A point's signature says who wrote it ([`crate::identity`]); what it *claims* — resource,
//! host, time — is still the writer's word. A point is **trusted** when it is signed by the
//! owner, or by a certified writer that is not quarantined and whose scope allows the
//! resource, and when its time is not later than the storage's own write time (plus a
//! tolerance for clock skew). Untrusted points are kept, listed and restorable by id, but
//! never chosen as `latest`, and `verify` reports them.
//!
//! The registry of issued writers and their quarantines is part of the protection state
//! ([`crate::protect`]): authenticated under the policy key, create-only, rollback-checked.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::{Attribution, scope_allows};
use crate::point::Manifest;
use crate::protect::{self, Protection};
use crate::vault::{PointEntry, Vault};

/// A point may claim a time at most this much later than the storage wrote it (clock skew).
pub const FUTURE_TOLERANCE_NS: i64 = 10 * 60 * 1_000_000_000;

/// An issued writer identity, as recorded when `key backup-only` made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterRecord {
    /// Writer id, 32 hex digits.
    pub id: String,
    /// Its label.
    pub label: String,
    /// Resource patterns it may write (empty = any).
    #[serde(default)]
    pub scope: Vec<String>,
    /// When it was issued, Unix nanoseconds.
    pub created_ns: i64,
    /// Who issued it (`user@host`).
    pub by: String,
    /// Set when the writer was quarantined.
    #[serde(default)]
    pub quarantine: Option<Quarantine>,
}

/// A quarantine: points the writer stored from `since_ns` on are not trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// Points stored at or after this time are untrusted, Unix nanoseconds.
    pub since_ns: i64,
    /// Why.
    pub reason: String,
    /// When it was placed.
    pub at_ns: i64,
    /// By whom.
    pub by: String,
}

fn fmt_ns(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ns.to_string())
}

/// Why a point is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConcernKind {
    /// Its signature or certificate does not verify.
    Forged,
    /// No signature, and stored after the vault required them.
    Unsigned,
    /// Its writer's scope does not allow the resource it claims.
    OutOfScope,
    /// Its writer was quarantined before the point was stored.
    Quarantined,
    /// It claims a time later than it was stored.
    FutureTime,
}

/// Why a point is not trusted, in words and as a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Concern {
    /// The class.
    pub kind: ConcernKind,
    /// In words.
    pub reason: String,
}

impl std::fmt::Display for Concern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Why a point is not trusted, or `None` if it is.
pub fn concern(m: &Manifest, state: &Protection, now_ns: i64) -> Option<Concern> {
    let c = |kind, reason: String| Some(Concern { kind, reason });
    let stored = m.stored_ns;
    match &m.attribution {
        Attribution::Forged { reason } => {
            return c(ConcernKind::Forged, format!("forged signature: {reason}"));
        }
        Attribution::Unsigned => {
            let before_migration = state
                .unsigned_before_ns
                .zip(stored)
                .is_some_and(|(t, s)| s < t);
            if !before_migration {
                return c(
                    ConcernKind::Unsigned,
                    "unsigned: stored without a signature in a vault that requires them (a \
                     forgery, or a pre-format-4 holdfast)"
                        .into(),
                );
            }
        }
        Attribution::Owner => {}
        Attribution::Writer { id, label, scope } => {
            if !scope_allows(scope, &m.resource) {
                return c(
                    ConcernKind::OutOfScope,
                    format!(
                        "writer {label:?} may write only {} but the point claims resource {:?}",
                        scope.join(", "),
                        m.resource
                    ),
                );
            }
            let q = state
                .writers
                .iter()
                .find(|w| w.id == *id)
                .and_then(|w| w.quarantine.as_ref());
            if let Some(q) = q
                && stored.unwrap_or(m.time_ns) >= q.since_ns
            {
                return c(
                    ConcernKind::Quarantined,
                    format!(
                        "writer {label:?} is quarantined since {}: {}",
                        fmt_ns(q.since_ns),
                        q.reason
                    ),
                );
            }
        }
    }
    let arrived = stored.unwrap_or(now_ns);
    if m.time_ns > arrived.saturating_add(FUTURE_TOLERANCE_NS) {
        return c(
            ConcernKind::FutureTime,
            format!(
                "claims the time {} but was stored at {}",
                fmt_ns(m.time_ns),
                fmt_ns(arrived)
            ),
        );
    }
    None
}

/// A point that is not trusted, and why.
pub type Untrusted = (PointEntry, Concern);

/// Trust decisions at one moment: the writer registry and migration time of the protection
/// state, and the clock.
pub struct Judge {
    state: Protection,
    now_ns: i64,
}

impl Judge {
    /// Judge with the vault's current protection state (a damaged chain is an error).
    pub fn of(vault: &Vault) -> Result<Judge> {
        Ok(Judge::with(protect::current(vault)?))
    }

    /// Judge with a protection state already read (the default one when a reader must go on
    /// without the chain: no quarantines known, every unsigned point untrusted).
    pub fn with(state: Protection) -> Judge {
        Judge {
            state,
            now_ns: jiff::Timestamp::now().as_nanosecond() as i64,
        }
    }

    /// Why a point is not trusted, or `None` if it is.
    pub fn concern(&self, m: &Manifest) -> Option<Concern> {
        concern(m, &self.state, self.now_ns)
    }

    /// Split points (as [`Vault::list_points`] returns them, order kept) into the trusted
    /// ones and the untrusted ones with their concern.
    pub fn split(&self, points: Vec<PointEntry>) -> (Vec<PointEntry>, Vec<Untrusted>) {
        let mut trusted = Vec::with_capacity(points.len());
        let mut untrusted = Vec::new();
        for p in points {
            match self.concern(&p.1) {
                None => trusted.push(p),
                Some(c) => untrusted.push((p, c)),
            }
        }
        (trusted, untrusted)
    }
}

/// [`Judge::split`] with the vault's current protection state. Everything that picks points
/// by itself — `latest`, retention rules, copies, point-in-time recovery — picks among
/// trusted points only, so a forgery is never chosen, counted or laundered into another
/// vault.
pub fn split(vault: &Vault, points: Vec<PointEntry>) -> Result<(Vec<PointEntry>, Vec<Untrusted>)> {
    Ok(Judge::of(vault)?.split(points))
}

/// Record a newly issued writer in the protection state.
pub fn register_writer(vault: &Vault, record: WriterRecord, by: &str, now_ns: i64) -> Result<()> {
    protect::update(vault, by, now_ns, |cur| {
        let mut next = cur.clone();
        let action = format!(
            "writer {} ({:?}) issued{}",
            record.id,
            record.label,
            if record.scope.is_empty() {
                String::new()
            } else {
                format!(" for {}", record.scope.join(", "))
            }
        );
        next.writers.push(record.clone());
        Ok((next, action))
    })?;
    Ok(())
}

/// Find a writer by id prefix or exact label.
fn find<'a>(state: &'a Protection, spec: &str) -> Result<&'a WriterRecord> {
    let spec_l = spec.to_ascii_lowercase();
    let found: Vec<_> = state
        .writers
        .iter()
        .filter(|w| w.label == spec || (!spec_l.is_empty() && w.id.starts_with(&spec_l)))
        .collect();
    match found.as_slice() {
        [w] => Ok(w),
        [] => Err(Error::Input(format!(
            "no writer matches {spec:?} (see `holdfast key writers`)"
        ))),
        _ => Err(Error::Input(format!(
            "{spec:?} matches {} writers; give their id",
            found.len()
        ))),
    }
}

/// Quarantine a writer: every point it stored from `since_ns` on is untrusted. A quarantine
/// can be moved earlier, never lifted or moved later (a compromised writer stays suspect).
pub fn quarantine(
    vault: &Vault,
    spec: &str,
    since_ns: i64,
    reason: &str,
    by: &str,
    now_ns: i64,
) -> Result<WriterRecord> {
    let state = protect::update(vault, by, now_ns, |cur| {
        let w = find(cur, spec)?;
        let since = w
            .quarantine
            .as_ref()
            .map_or(since_ns, |q| q.since_ns.min(since_ns));
        let id = w.id.clone();
        let mut next = cur.clone();
        for r in next.writers.iter_mut().filter(|r| r.id == id) {
            r.quarantine = Some(Quarantine {
                since_ns: since,
                reason: reason.to_string(),
                at_ns: now_ns,
                by: by.to_string(),
            });
        }
        Ok((
            next,
            format!("writer {id} quarantined from {}: {reason}", fmt_ns(since)),
        ))
    })?;
    let w = find(&state, spec)?;
    Ok(w.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::point::{SourceInfo, Summary};

    fn point(a: Attribution, resource: &str, time_ns: i64, stored: i64) -> Manifest {
        Manifest {
            version: 1,
            time_ns,
            host: "h".into(),
            user: "u".into(),
            resource: resource.into(),
            tags: vec![],
            paths: vec![],
            source: SourceInfo::default(),
            root: Id([0; 32]),
            partial: false,
            errors: vec![],
            summary: Summary::default(),
            program: "t".into(),
            copied_from: None,
            stored_ns: Some(stored),
            attribution: a,
        }
    }

    fn writer(scope: &[&str]) -> Attribution {
        Attribution::Writer {
            id: "ab".repeat(16),
            label: "db1".into(),
            scope: scope.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn trust_decisions() {
        let s = 1_000 * 1_000_000_000;
        let mut state = Protection::default();
        let cases = |state: &Protection| -> Vec<Option<Concern>> {
            vec![
                concern(&point(Attribution::Owner, "r", s, s), state, s),
                concern(&point(writer(&["db1:*"]), "db1:pg", s, s), state, s),
                concern(&point(writer(&["db1:*"]), "db2:pg", s, s), state, s),
                concern(&point(Attribution::Unsigned, "r", s, s), state, s),
                concern(
                    &point(Attribution::Owner, "r", s + FUTURE_TOLERANCE_NS + 1, s),
                    state,
                    s,
                ),
                concern(
                    &point(Attribution::Forged { reason: "x".into() }, "r", s, s),
                    state,
                    s,
                ),
                concern(&point(writer(&[]), "any", s - 5, s - 5), state, s),
            ]
        };
        let before = cases(&state);
        assert_eq!(
            before.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, false, true, true, true, true, false]
        );
        state.unsigned_before_ns = Some(s + 1);
        state.writers.push(WriterRecord {
            id: "ab".repeat(16),
            label: "db1".into(),
            scope: vec![],
            created_ns: 0,
            by: "me".into(),
            quarantine: Some(Quarantine {
                since_ns: s - 1,
                reason: "compromised".into(),
                at_ns: s,
                by: "me".into(),
            }),
        });
        let after = cases(&state);
        assert_eq!(
            after.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, true, true, false, true, true, false]
        );
        insta::assert_snapshot!(
            after
                .into_iter()
                .map(|c| c.map_or_else(|| "trusted".into(), |c| format!("{:?}: {c}", c.kind)))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
