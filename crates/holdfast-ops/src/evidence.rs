//! Evidence of proven recoveries, kept in the vault that was tested (docs/format.md 11.5):
//! every restore test records its report there ([`record_restore_test`]); `holdfast evidence
//! list` and `evidence show ID` read them back ([`list`], [`show`]) — with nothing but the
//! vault and its key.

use holdfast_engine::evidence::Evidence;
use holdfast_engine::{Error, Id, Result, Vault};
use serde::{Deserialize, Serialize};

use crate::restore_test::RestoreTestReport;

/// Which records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvidenceRequest {
    /// Only this resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// Only records of this restore test or drill.
    #[serde(default)]
    pub name: Option<String>,
    /// Only records of this kind (`restore_test`, `drill`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Only the newest this many (0: all).
    #[serde(default)]
    pub last: usize,
}

/// One record in a listing (the report left out: `evidence show` has it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvidenceSummary {
    /// Its id (64 hex).
    pub id: String,
    /// `restore_test` (later `drill`).
    pub kind: String,
    /// The test's name.
    pub name: Option<String>,
    /// The resource.
    pub resource: String,
    /// The point used.
    pub point: String,
    /// When it ended (RFC 3339).
    pub time: String,
    /// Unix nanoseconds.
    pub time_ns: i64,
    /// Host that ran it.
    pub host: String,
    /// Whether it passed.
    pub passed: bool,
    /// Measured RTO, seconds.
    pub rto_seconds: f64,
    /// The point's age at the test, seconds.
    pub rpo_seconds: f64,
}

/// What `holdfast --json evidence list` prints.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvidenceList {
    /// The records, oldest first.
    pub evidence: Vec<EvidenceSummary>,
    /// Objects that could not be read or whose owner signature does not verify.
    pub damage: Vec<holdfast_engine::vault::Damage>,
}

/// Record the report of a restore test (`name`: its name in the plan) in `vault`.
pub fn record_restore_test(vault: &Vault, name: Option<&str>, r: &RestoreTestReport) -> Result<Id> {
    let e = Evidence {
        version: 1,
        kind: "restore_test".into(),
        name: name.map(str::to_string),
        resource: r.resource.clone(),
        point: r.point.clone(),
        time_ns: crate::time::now_ns(),
        host: holdfast_sources::meta::hostname(),
        program: format!("holdfast {}", env!("CARGO_PKG_VERSION")),
        passed: r.passed,
        rto_seconds: r.rto_seconds,
        rpo_seconds: r.rpo_seconds,
        report: serde_json::to_value(r)
            .map_err(|e| Error::Internal(format!("restore test report: {e}")))?,
    };
    vault.save_evidence(&e)
}

/// Record a drill's report in `vault` (resource `*`: it covers several).
pub fn record_drill(vault: &Vault, r: &crate::drill::DrillReport) -> Result<Id> {
    let rpo = r
        .resources
        .iter()
        .filter_map(|x| x.rpo_seconds)
        .fold(0.0, f64::max);
    let e = Evidence {
        version: 1,
        kind: "drill".into(),
        name: Some(r.name.clone()),
        resource: "*".into(),
        point: String::new(),
        time_ns: crate::time::now_ns(),
        host: r.host.clone(),
        program: format!("holdfast {}", env!("CARGO_PKG_VERSION")),
        passed: r.passed,
        rto_seconds: r.total_rto_seconds,
        rpo_seconds: rpo,
        report: serde_json::to_value(r)
            .map_err(|e| Error::Internal(format!("drill report: {e}")))?,
    };
    vault.save_evidence(&e)
}

/// The drills' reports in `vault` (named `name`, if given), oldest first, the newest `last`
/// (0: all).
pub fn drills(
    vault: &Vault,
    name: Option<&str>,
    last: usize,
) -> Result<Vec<(Id, crate::drill::DrillReport)>> {
    let (all, _) = vault.list_evidence()?;
    let mut out: Vec<(Id, crate::drill::DrillReport)> = all
        .into_iter()
        .filter(|(_, e)| e.kind == "drill")
        .filter(|(_, e)| name.is_none_or(|n| e.name.as_deref() == Some(n)))
        .filter_map(|(id, e)| serde_json::from_value(e.report).ok().map(|r| (id, r)))
        .collect();
    if last > 0 && out.len() > last {
        out.drain(..out.len() - last);
    }
    Ok(out)
}

fn summary(id: &Id, e: &Evidence) -> EvidenceSummary {
    EvidenceSummary {
        id: id.to_hex(),
        kind: e.kind.clone(),
        name: e.name.clone(),
        resource: e.resource.clone(),
        point: e.point.clone(),
        time: crate::time::rfc3339_ns(e.time_ns),
        time_ns: e.time_ns,
        host: e.host.clone(),
        passed: e.passed,
        rto_seconds: e.rto_seconds,
        rpo_seconds: e.rpo_seconds,
    }
}

/// The records `req` asks for, oldest first.
pub fn list(vault: &Vault, req: &EvidenceRequest) -> Result<EvidenceList> {
    let (all, damage) = vault.list_evidence()?;
    let mut kept: Vec<EvidenceSummary> = all
        .iter()
        .filter(|(_, e)| req.resource.as_ref().is_none_or(|r| *r == e.resource))
        .filter(|(_, e)| req.name.is_none() || e.name == req.name)
        .filter(|(_, e)| req.kind.as_ref().is_none_or(|k| *k == e.kind))
        .map(|(id, e)| summary(id, e))
        .collect();
    if req.last > 0 && kept.len() > req.last {
        kept.drain(..kept.len() - req.last);
    }
    Ok(EvidenceList {
        evidence: kept,
        damage,
    })
}

/// The record whose id starts with `prefix` (at least 4 hex digits, unambiguous).
pub fn show(vault: &Vault, prefix: &str) -> Result<(Id, Evidence)> {
    if prefix.len() < 4 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Input(format!(
            "{prefix:?} is not an evidence id (at least 4 hex digits; see `holdfast evidence list`)"
        )));
    }
    let prefix = prefix.to_ascii_lowercase();
    // Only the record asked for is read and opened.
    let ids = vault.evidence_ids()?;
    let mut hits = ids
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&prefix));
    match (hits.next(), hits.next()) {
        (Some(id), None) => Ok((id, vault.load_evidence(&id)?)),
        (None, _) => Err(Error::NotFound(format!(
            "no evidence record {prefix} (see `holdfast evidence list`)"
        ))),
        (Some(_), Some(_)) => Err(Error::Input(format!(
            "evidence id {prefix} is ambiguous: give more digits"
        ))),
    }
}
