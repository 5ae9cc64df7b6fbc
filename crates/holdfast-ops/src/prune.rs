//! Prune: free the space of forgotten points (the engine's two-phase prune), then extend
//! storage retention (S3 Object Lock) to the points made since the last run when the vault
//! has a lock.

use std::time::Duration;

use holdfast_engine::protect::{self, RetentionReport};
use holdfast_engine::prune::{PruneOptions, PruneReport};
use holdfast_engine::{Error, Result, Vault};
use serde::{Deserialize, Serialize};

use crate::Context;

/// A prune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PruneRequest {
    /// Only report what would be done.
    #[serde(default)]
    pub dry_run: bool,
    /// Repack a pack when at least this percentage of its stored bytes is unused (0–100).
    pub repack_threshold_pct: f64,
    /// How long to wait for running sessions, seconds.
    pub max_wait_secs: u64,
    /// A session whose heartbeat does not advance for this long is abandoned, seconds.
    pub abandon_after_secs: u64,
}

impl Default for PruneRequest {
    fn default() -> Self {
        let d = PruneOptions::default();
        PruneRequest {
            dry_run: false,
            repack_threshold_pct: d.repack_unused_pct,
            max_wait_secs: d.max_wait.as_secs(),
            abandon_after_secs: d.abandon_after.as_secs(),
        }
    }
}

/// What a prune did, and the storage retention it applied afterwards (None: no lock, or a
/// dry run).
pub struct Pruned {
    /// The engine's report: the `--json` output of `holdfast prune`.
    pub report: PruneReport,
    /// Storage retention applied after it.
    pub retention: Option<RetentionReport>,
}

/// Prune `vault` (a full key is needed).
pub fn prune(ctx: &Context<'_>, vault: &Vault, req: &PruneRequest) -> Result<Pruned> {
    if !(0.0..=100.0).contains(&req.repack_threshold_pct) {
        return Err(Error::Input(
            "the repack threshold must be between 0 and 100 percent".into(),
        ));
    }
    let opts = PruneOptions {
        dry_run: req.dry_run,
        repack_unused_pct: req.repack_threshold_pct,
        max_wait: Duration::from_secs(req.max_wait_secs),
        abandon_after: Duration::from_secs(req.abandon_after_secs),
    };
    let log = |l: &str| ctx.sink.note(l);
    let report = holdfast_engine::prune::prune(vault, &opts, &crate::session::info("prune"), &log)?;
    let mut retention = None;
    if !req.dry_run {
        let st = protect::current(vault)?;
        if st.lock.is_some() {
            retention = Some(protect::apply_retention(vault, &st, crate::time::now_ns())?);
        }
    }
    Ok(Pruned { report, retention })
}
