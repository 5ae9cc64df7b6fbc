//! The recovery points of a vault, with who wrote each and whether it is trusted.

use holdfast_engine::identity::Attribution;
use holdfast_engine::point::{SourceInfo, Summary};
use holdfast_engine::vault::Damage;
use holdfast_engine::{Result, Vault};
use serde::{Deserialize, Serialize};

use crate::Context;

/// Which points to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PointsRequest {
    /// Only points of this resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// Only points with all of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One recovery point: an element of the `--json` output of `holdfast points`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PointRow {
    /// Point id (64 hex digits).
    pub id: String,
    /// Its time, RFC 3339.
    pub time: String,
    /// The host that made it.
    pub host: String,
    /// The user that made it.
    pub user: String,
    /// Its resource.
    pub resource: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Source paths or names.
    pub paths: Vec<String>,
    /// Source kind and facts.
    pub source: SourceInfo,
    /// Whether some items could not be read.
    pub partial: bool,
    /// Counters.
    pub summary: Summary,
    /// The writing program.
    pub program: String,
    /// Who signed it.
    pub writer: Attribution,
    /// Whether it is trusted (docs/format.md 13.5).
    pub trusted: bool,
    /// Why not, when it is not.
    pub untrusted_because: Option<holdfast_engine::trust::Concern>,
}

/// The listed points and the damaged point objects met on the way.
pub struct Listed {
    /// The points, oldest first.
    pub points: Vec<PointRow>,
    /// Point objects that could not be read.
    pub damage: Vec<Damage>,
}

/// List the points `req` selects (the index is not needed).
pub fn points(ctx: &Context<'_>, vault: &Vault, req: &PointsRequest) -> Result<Listed> {
    let (points, damage) = vault.list_points()?;
    // Trust needs the writer registry; a damaged protection chain must not hide the list.
    let judge = holdfast_engine::trust::Judge::with(
        holdfast_engine::protect::current(vault).unwrap_or_else(|e| {
            ctx.sink.warning(&format!(
                "{e} (quarantines unknown; unsigned points untrusted)"
            ));
            Default::default()
        }),
    );
    let points = points
        .into_iter()
        .filter(|(_, m)| req.resource.as_ref().is_none_or(|r| &m.resource == r))
        .filter(|(_, m)| req.tags.iter().all(|t| m.tags.contains(t)))
        .map(|(id, m)| {
            let concern = judge.concern(&m);
            PointRow {
                id: id.to_hex(),
                time: crate::time::rfc3339_ns(m.time_ns),
                host: m.host,
                user: m.user,
                resource: m.resource,
                tags: m.tags,
                paths: m.paths,
                source: m.source,
                partial: m.partial,
                summary: m.summary,
                program: m.program,
                writer: m.attribution,
                trusted: concern.is_none(),
                untrusted_because: concern,
            }
        })
        .collect();
    Ok(Listed { points, damage })
}
