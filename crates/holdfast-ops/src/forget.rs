//! Forget: a pure [`decide`] over the points, the retention rules and the protection state,
//! then [`apply`] (the governance-bypass record first, then the deletions).
//!
//! Untrusted points (docs/format.md 13.5) are neither counted by the rules nor deleted by
//! them: forged points of a resource could otherwise push its genuine ones out of
//! `keep.last`. They go only when named by id. Archived WAL (kind `postgres-wal`, resource
//! `R:wal`) is not counted by the rules either: it is kept from the oldest kept base backup of
//! `R` onward, decided after the bases.

use std::collections::HashSet;

use holdfast_engine::point::Manifest;
use holdfast_engine::protect::{self, Protection};
use holdfast_engine::{Error, Id, Result, Vault};
use holdfast_retention::{Candidate, Decision, Policy, evaluate, parse_span, time_zone};
use holdfast_sources::pitr;
use serde::{Deserialize, Serialize};

/// Retention rules: how many points to keep per period, and for how long to keep all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Keep {
    /// The N newest points.
    #[serde(default)]
    pub last: u32,
    /// The newest point of each of the N newest hours that have points.
    #[serde(default)]
    pub hourly: u32,
    /// … days.
    #[serde(default)]
    pub daily: u32,
    /// … ISO weeks.
    #[serde(default)]
    pub weekly: u32,
    /// … months.
    #[serde(default)]
    pub monthly: u32,
    /// … years.
    #[serde(default)]
    pub yearly: u32,
    /// Every point within this span of the resource's newest point (`30d`, `1y6mo`).
    #[serde(default)]
    pub within: Option<String>,
}

impl Keep {
    /// The engine's policy.
    pub fn to_policy(&self) -> Result<Policy> {
        Ok(Policy {
            last: self.last,
            hourly: self.hourly,
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            yearly: self.yearly,
            within: self
                .within
                .as_deref()
                .map(parse_span)
                .transpose()
                .map_err(|e| Error::Input(e.to_string()))?,
        })
    }
}

/// Which points a forget considers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Selection {
    /// Exactly these points (id prefix, `latest`, `latest:RESOURCE`).
    Ids {
        /// The point specs.
        points: Vec<String>,
    },
    /// By retention rules, among the points of a resource or with tags.
    Rules {
        /// What to keep.
        keep: Keep,
        /// Lifecycle: also forget points older than this span (`7y`), whatever `keep` says.
        #[serde(default)]
        delete_after: Option<String>,
        /// The time zone periods are counted in (IANA name).
        timezone: String,
        /// Only points of this resource.
        #[serde(default)]
        resource: Option<String>,
        /// Only points with all of these tags.
        #[serde(default)]
        tags: Vec<String>,
    },
}

/// A forget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ForgetRequest {
    /// Which points.
    pub select: Selection,
    /// Only report what would be forgotten.
    #[serde(default)]
    pub dry_run: bool,
    /// Forget points under a governance lock (recorded in the lock history).
    #[serde(default)]
    pub bypass_governance: bool,
}

/// One point of a forget report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ForgetLine {
    /// Point id.
    pub point: String,
    /// Its time, RFC 3339.
    pub time: String,
    /// Its resource.
    pub resource: String,
    /// Why it is kept (or, for WAL, why it goes).
    pub reasons: Vec<String>,
}

/// What a forget kept and forgot: the `--json` output of `holdfast forget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ForgetReport {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// Points kept, with their reasons.
    pub keep: Vec<ForgetLine>,
    /// Points forgotten (or that would be).
    pub forget: Vec<ForgetLine>,
}

/// What [`decide`] chose: the report, and for each point to forget whether it needs the
/// governance bypass.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Kept points.
    pub keep: Vec<ForgetLine>,
    /// Points to forget: (id, line, needs the governance bypass).
    pub forget: Vec<(Id, ForgetLine, bool)>,
}

fn matches(m: &Manifest, resource: Option<&str>, tags: &[String]) -> bool {
    resource.is_none_or(|r| m.resource == r) && tags.iter().all(|t| m.tags.contains(t))
}

fn line(id: &Id, m: &Manifest, reasons: Vec<String>) -> ForgetLine {
    ForgetLine {
        point: id.to_hex(),
        time: crate::time::rfc3339_ns(m.time_ns),
        resource: m.resource.clone(),
        reasons,
    }
}

/// The points chosen by id, in the order given, once each.
pub fn by_ids(vault: &Vault, specs: &[String]) -> Result<Vec<(Id, Manifest)>> {
    let mut chosen: Vec<(Id, Manifest)> = Vec::new();
    let mut ids = HashSet::new();
    for spec in specs {
        let (id, m) = vault.find_point(spec)?;
        if ids.insert(id) {
            chosen.push((id, m));
        }
    }
    Ok(chosen)
}

/// Decide which of the points to forget. `trusted` are the points the rules may count;
/// `untrusted` (with why) are reported as kept; `given` are the points chosen by id (for
/// [`Selection::Ids`]). Pure: nothing is read or written.
pub fn decide(
    req: &ForgetRequest,
    state: &Protection,
    now: i64,
    trusted: &[(Id, Manifest)],
    untrusted: &[((Id, Manifest), String)],
    given: &[(Id, Manifest)],
) -> Result<Decided> {
    let mut keep: Vec<ForgetLine> = Vec::new();
    let mut go: Vec<(Id, ForgetLine, bool)> = Vec::new();
    let bypass = req.bypass_governance;
    let (keep_rules, delete_after, timezone, resource, tags) = match &req.select {
        Selection::Ids { .. } => {
            for (id, m) in given {
                if let Some(why) = protect::protected(state, m, now, bypass) {
                    return Err(Error::Locked(format!(
                        "recovery point {} ({}) cannot be forgotten: {why}",
                        id.short(),
                        m.resource
                    )));
                }
                let needs = protect::protected(state, m, now, false).is_some();
                go.push((*id, line(id, m, vec!["given".into()]), needs));
            }
            return Ok(Decided { keep, forget: go });
        }
        Selection::Rules {
            keep,
            delete_after,
            timezone,
            resource,
            tags,
        } => (keep, delete_after, timezone, resource.as_deref(), tags),
    };
    let policy = keep_rules.to_policy()?;
    let delete_before = delete_after
        .as_deref()
        .map(parse_span)
        .transpose()
        .map_err(|e| Error::Input(format!("delete_after: {e}")))?
        .map(|span| now - (holdfast_retention::add_span(now, span) - now));
    let tz = time_zone(timezone).map_err(|e| Error::Input(e.to_string()))?;
    for ((id, m), why) in untrusted {
        if matches(m, resource, tags) {
            keep.push(line(
                id,
                m,
                vec![format!("untrusted, not counted ({why}); forget it by id")],
            ));
        }
    }
    let selected: Vec<&(Id, Manifest)> = trusted
        .iter()
        .filter(|(_, m)| m.source.kind != pitr::WAL_KIND)
        .filter(|(_, m)| matches(m, resource, tags))
        .collect();
    let candidates: Vec<Candidate<usize>> = selected
        .iter()
        .enumerate()
        .map(|(i, (_, m))| Candidate {
            key: i,
            time_ns: m.time_ns,
            group: m.resource.clone(),
        })
        .collect();
    let decisions = if policy.is_empty() && delete_before.is_some() {
        // Only a lifecycle limit: every point is kept until it is too old.
        candidates
            .iter()
            .map(|c| Decision {
                key: c.key,
                group: c.group.clone(),
                time_ns: c.time_ns,
                reasons: vec!["younger than the delete-after limit".into()],
            })
            .collect()
    } else {
        evaluate(&policy, &tz, &candidates).map_err(|e| Error::Input(e.to_string()))?
    };
    let mut judge = |id: &Id, m: &Manifest, reasons: Vec<String>, keep: &mut Vec<ForgetLine>| {
        if let Some(why) = protect::protected(state, m, now, bypass) {
            keep.push(line(id, m, vec![format!("protected: {why}")]));
        } else {
            let needs = protect::protected(state, m, now, false).is_some();
            go.push((*id, line(id, m, reasons), needs));
        }
    };
    for d in decisions {
        let (id, m) = selected[d.key];
        let expired = delete_before.is_some_and(|b| m.time_ns < b);
        if d.keep() && !expired {
            keep.push(line(id, m, d.reasons));
        } else {
            judge(id, m, vec![], &mut keep);
        }
    }
    // WAL of the base-backup resources this run looked at.
    let going: HashSet<Id> = go.iter().map(|g| g.0).collect();
    let bases: Vec<&(Id, Manifest)> = selected
        .iter()
        .copied()
        .filter(|(_, m)| m.source.kind == pitr::BASE_KIND)
        .collect();
    let mut resources: Vec<&str> = bases.iter().map(|(_, m)| m.resource.as_str()).collect();
    resources.sort_unstable();
    resources.dedup();
    let mut wal_go: Vec<(Id, ForgetLine, bool)> = Vec::new();
    for r in resources {
        let seg_size = |m: &Manifest| {
            m.source
                .facts
                .get("wal_segment_size")
                .and_then(|s| pitr::parse_size(s))
                .unwrap_or(16 << 20)
        };
        let firsts: Vec<(u64, u64)> = bases
            .iter()
            .filter(|(id, m)| m.resource == r && !going.contains(id))
            .filter_map(|(_, m)| {
                let size = seg_size(m);
                pitr::base_first_segment(m.source.facts.get("start_lsn")?, size).map(|f| (f, size))
            })
            .collect();
        let size = firsts.first().map_or(16 << 20, |f| f.1);
        let first_segs: Vec<u64> = firsts.iter().map(|f| f.0).collect();
        let wal_res = format!("{r}:wal");
        for (id, m) in trusted
            .iter()
            .filter(|(_, m)| m.source.kind == pitr::WAL_KIND && m.resource == wal_res)
        {
            let name = m.source.facts.get("wal_file").cloned().unwrap_or_default();
            if pitr::wal_needed(&name, size, &first_segs) {
                let why = if first_segs.is_empty() {
                    "WAL: no base backup of this resource is kept"
                } else {
                    "WAL needed by a kept base backup"
                };
                keep.push(line(id, m, vec![why.into()]));
            } else if let Some(why) = protect::protected(state, m, now, bypass) {
                keep.push(line(id, m, vec![format!("protected: {why}")]));
            } else {
                let needs = protect::protected(state, m, now, false).is_some();
                wal_go.push((
                    *id,
                    line(id, m, vec!["WAL older than every kept base backup".into()]),
                    needs,
                ));
            }
        }
    }
    go.extend(wal_go);
    Ok(Decided { keep, forget: go })
}

/// Carry out a decision: record a governance bypass in the lock history first, then delete
/// the points (nothing with `dry_run`).
pub fn apply(
    vault: &Vault,
    decided: Decided,
    dry_run: bool,
    by: &str,
    now: i64,
) -> Result<ForgetReport> {
    let bypassed: Vec<String> = decided
        .forget
        .iter()
        .filter(|g| g.2)
        .map(|g| g.0.to_hex()[..12].to_string())
        .collect();
    if !dry_run {
        if !bypassed.is_empty() {
            protect::update(vault, by, now, |cur| {
                Ok((
                    cur.clone(),
                    format!(
                        "forget bypassing governance: {} point(s): {}",
                        bypassed.len(),
                        bypassed.join(" ")
                    ),
                ))
            })?;
        }
        for (id, _, _) in &decided.forget {
            vault.delete_point(id)?;
        }
    }
    Ok(ForgetReport {
        dry_run,
        keep: decided.keep,
        forget: decided.forget.into_iter().map(|g| g.1).collect(),
    })
}

impl ForgetRequest {
    /// Check the rules, the span and the time zone without reading the vault.
    pub fn validate(&self) -> Result<()> {
        if let Selection::Rules {
            keep,
            delete_after,
            timezone,
            ..
        } = &self.select
        {
            keep.to_policy()?;
            if let Some(d) = delete_after {
                parse_span(d).map_err(|e| Error::Input(format!("delete_after: {e}")))?;
            }
            time_zone(timezone).map_err(|e| Error::Input(e.to_string()))?;
        }
        Ok(())
    }
}

/// Forget what `req` selects in `vault` (a full key is needed).
pub fn forget(vault: &Vault, req: &ForgetRequest, by: &str) -> Result<ForgetReport> {
    req.validate()?;
    vault.require_full("forget")?;
    let state = protect::current(vault)?;
    let now = crate::time::now_ns();
    let (trusted, untrusted, given) = match &req.select {
        Selection::Ids { points } => (vec![], vec![], by_ids(vault, points)?),
        Selection::Rules { .. } => {
            let (points, _) = vault.list_points()?;
            let (t, u) = holdfast_engine::trust::Judge::with(state.clone()).split(points);
            (t, u, vec![])
        }
    };
    let untrusted: Vec<((Id, Manifest), String)> = untrusted
        .into_iter()
        .map(|(p, why)| (p, why.to_string()))
        .collect();
    let decided = decide(req, &state, now, &trusted, &untrusted, &given)?;
    apply(vault, decided, req.dry_run, by, now)
}
