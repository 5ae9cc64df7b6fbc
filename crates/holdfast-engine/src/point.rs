//! Recovery-point manifests (docs/format.md, "Recovery points").
//!
//! A manifest is a UTF-8 JSON document sealed to the vault's public key (so write-only hosts
//! can create but not read them), stored as `points/<BLAKE3 of the stored bytes>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::Id;
use crate::identity::Attribution;

/// Counters of one backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Files not in the previous point of this resource on this host.
    pub files_new: u64,
    /// Files whose content or metadata changed.
    pub files_changed: u64,
    /// Files recognised as unchanged (not read).
    pub files_unchanged: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Total size of the files in the point.
    pub total_size: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Bytes of new blobs as stored (compressed, encrypted).
    pub stored_added: u64,
    /// New blobs.
    pub blobs_added: u64,
    /// Wall time of the backup in milliseconds.
    pub duration_ms: u64,
}

/// Where a point's data came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SourceInfo {
    /// `files`, `stdin`, later `postgres`, `mysql`, …
    pub kind: String,
    /// Source facts (tool versions, LSNs, …).
    #[serde(default)]
    pub facts: BTreeMap<String, String>,
}

/// A recovery point's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest version (1).
    pub version: u32,
    /// The point's time, Unix nanoseconds (UTC).
    pub time_ns: i64,
    /// Host that made it.
    pub host: String,
    /// User that made it.
    pub user: String,
    /// The protected resource's name.
    pub resource: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Source paths (or the stream's file name).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Source description.
    pub source: SourceInfo,
    /// Root tree blob.
    pub root: Id,
    /// Some source items could not be read.
    #[serde(default)]
    pub partial: bool,
    /// What could not be read.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Counters.
    pub summary: Summary,
    /// The writing program and version.
    pub program: String,
    /// Set on copies: where the point was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<CopiedFrom>,
    /// When the storage wrote the point object, Unix nanoseconds, where the listing says
    /// (not stored in the manifest: the writer cannot choose it).
    #[serde(skip)]
    pub stored_ns: Option<i64>,
    /// Who signed the point, as its envelope shows (set when a full key reads it; not part
    /// of the JSON: docs/format.md 11.4).
    #[serde(skip)]
    pub attribution: Attribution,
}

/// The origin of a copied point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedFrom {
    /// The source vault's id (32 hex digits).
    pub vault: String,
    /// The point's id in the source vault.
    pub point: String,
}

pub(crate) const AAD: &[u8] = b"holdfast v1 point";

impl Manifest {
    /// The time a vault lock's retention counts from: the later of the time the point
    /// claims and the time the storage wrote it, so a point backdated by its writer is still
    /// retained for the full minimum from when it really arrived (docs/format.md 13.4).
    pub fn retention_time_ns(&self) -> i64 {
        self.stored_ns.map_or(self.time_ns, |s| s.max(self.time_ns))
    }

    /// Encode to JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    /// Decode from JSON.
    pub fn from_json(data: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn manifest_round_trip(time_ns in any::<i64>(), host in ".{0,20}", tags in prop::collection::vec("[a-z0-9-]{1,10}", 0..4),
                               partial in any::<bool>(), n in any::<u64>(), root in any::<[u8; 32]>()) {
            let m = Manifest {
                version: 1, time_ns, host, user: "u".into(), resource: "r".into(), tags, paths: vec!["/a".into()],
                source: SourceInfo { kind: "files".into(), facts: [("k".to_string(), "v".to_string())].into() },
                root: Id(root), partial, errors: vec![], summary: Summary { files_new: n, ..Summary::default() },
                program: "holdfast".into(),
                copied_from: None,
                stored_ns: None,
                attribution: Attribution::Unsigned,
            };
            prop_assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        }
    }
}
