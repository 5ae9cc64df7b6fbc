//! Copy: re-encrypt trusted recovery points into another vault.
//!
//! Only trusted points are copied: the destination signs what it stores, so a copied forgery
//! would become a trusted point there (docs/format.md 13.5).

use holdfast_engine::copy::{CopyReport, copy_points};
use holdfast_engine::point::Manifest;
use holdfast_engine::session::Session;
use holdfast_engine::{Error, Id, Result, Vault};
use serde::{Deserialize, Serialize};

use crate::Context;

/// Which points a copy takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum CopySelection {
    /// These points (id prefix, `latest`, `latest:RESOURCE`).
    Ids {
        /// The point specs.
        points: Vec<String>,
    },
    /// Every trusted point of a resource.
    Resource {
        /// The resource.
        resource: String,
    },
    /// Every trusted point.
    All,
}

/// Where a copy goes: a vault location; its secret comes from `HOLDFAST_TO_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Destination {
    /// The destination vault's location.
    pub vault: String,
    /// Its S3 endpoint, when it differs from the source's.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// Its S3 region, when it differs from the source's.
    #[serde(default)]
    pub s3_region: Option<String>,
}

/// A copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CopyRequest {
    /// What to copy.
    pub select: CopySelection,
    /// Where to.
    pub to: Destination,
}

/// The points of `src` a copy takes: only trusted ones (untrusted points a resource or
/// `all` selection passes over are warned about; one named by id is refused).
pub fn choose(
    ctx: &Context<'_>,
    src: &Vault,
    select: &CopySelection,
) -> Result<Vec<(Id, Manifest)>> {
    let (all, _) = src.list_points()?;
    let (trusted, untrusted) = holdfast_engine::trust::split(src, all)?;
    let chosen: Vec<(Id, Manifest)> = match select {
        CopySelection::All | CopySelection::Resource { .. } => {
            let resource = match select {
                CopySelection::Resource { resource } => Some(resource),
                _ => None,
            };
            for ((id, m), why) in &untrusted {
                if resource.is_none_or(|r| m.resource == *r) {
                    ctx.sink.warning(&format!(
                        "not copying untrusted point {} ({}): {why}",
                        id.short(),
                        m.resource
                    ));
                }
            }
            trusted
                .into_iter()
                .filter(|(_, m)| resource.is_none_or(|r| m.resource == *r))
                .collect()
        }
        CopySelection::Ids { points } => {
            let mut v: Vec<(Id, Manifest)> = Vec::new();
            for spec in points {
                let p = src.find_point(spec)?;
                if let Some((_, why)) = untrusted.iter().find(|(u, _)| u.0 == p.0) {
                    return Err(Error::Input(format!(
                        "recovery point {} is untrusted ({why}); copy copies only trusted points",
                        p.0.short()
                    )));
                }
                if !v.iter().any(|(id, _)| *id == p.0) {
                    v.push(p);
                }
            }
            v
        }
    };
    if chosen.is_empty() {
        return Err(Error::NotFound("no recovery point matches".into()));
    }
    Ok(chosen)
}

/// Refuse a destination that is the source vault.
pub fn distinct(src: &Vault, dst: &Vault) -> Result<()> {
    if dst.config().id_hex() == src.config().id_hex() {
        return Err(Error::Input("the destination is the source vault".into()));
    }
    Ok(())
}

/// Copy what `select` names from `src` into `dst` (both unlocked; `dst`'s index loaded,
/// under `dst_session`).
pub fn copy(
    ctx: &Context<'_>,
    src: &Vault,
    dst: &Vault,
    dst_session: &Session,
    select: &CopySelection,
) -> Result<CopyReport> {
    distinct(src, dst)?;
    let chosen = choose(ctx, src, select)?;
    ctx.cancel.check("the copy")?;
    let log = |l: &str| ctx.sink.note(l);
    copy_points(src, dst, dst_session, &chosen, &log)
}
