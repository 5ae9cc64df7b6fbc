//! Verify: check the vault's structure, and with `read_data` read and authenticate its packs
//! (all, a fixed share, or one part of a rotation).

use holdfast_engine::verify::{self, Report, Subset, VerifyOptions};
use holdfast_engine::{Error, Result, Vault};
use serde::{Deserialize, Serialize};

use crate::Context;

/// Which stored packs a verify reads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "share", rename_all = "snake_case")]
pub enum ReadShare {
    /// None: structure only.
    None,
    /// Every pack.
    All,
    /// The first `pct` percent of the pack-id space (always the same packs).
    Percent {
        /// Above 0, at most 100.
        pct: f64,
    },
    /// Part `k` of `n` (1-based): parts 1..=n read every pack once.
    Part {
        /// The part.
        k: u32,
        /// How many parts.
        n: u32,
    },
}

/// A verify.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VerifyRequest {
    /// How much stored data to read.
    pub read: ReadShare,
}

/// What a verify found: the `--json` output of `holdfast verify`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VerifyOutput {
    /// Whether nothing is wrong.
    pub ok: bool,
    /// The findings.
    pub report: Report,
}

impl VerifyRequest {
    /// The engine's options, checking the share.
    pub fn options(&self) -> Result<VerifyOptions> {
        let subset = match self.read {
            ReadShare::None | ReadShare::All => None,
            ReadShare::Percent { pct } if pct > 0.0 && pct <= 100.0 => Some(Subset::Pct(pct)),
            ReadShare::Part { k, n } if n >= 1 && (1..=n).contains(&k) => Some(Subset::Part(k, n)),
            other => {
                return Err(Error::Input(format!(
                    "the share of packs to read is out of range: {other:?}"
                )));
            }
        };
        Ok(VerifyOptions {
            read_data: !matches!(self.read, ReadShare::None),
            subset,
        })
    }
}

/// Verify `vault` (a full key is needed; the index must be loaded).
pub fn verify(ctx: &Context<'_>, vault: &Vault, req: &VerifyRequest) -> Result<VerifyOutput> {
    let opts = req.options()?;
    let progress = |n: u64| ctx.sink.bytes(n);
    let report = verify::verify(vault, opts, &progress)?;
    Ok(VerifyOutput {
        ok: report.ok(),
        report,
    })
}
