//! Evidence: the record that a recovery was proven — a restore test's (or a drill's) report,
//! stored in the vault it tested, so "when did you last prove you can restore X" is answered
//! from the vault itself, even after the host that ran the test is gone (docs/format.md 11.5).
//!
//! An evidence object is a JSON [`Evidence`] record in an envelope signed with the **owner**
//! key (Ed25519, full keys only: a write-only key cannot restore, so it cannot have proven a
//! restore either), sealed to the vault's public key like a manifest. Readers trust a record
//! only when the owner's signature verifies; anything else is listed as damage, never as
//! proof.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::wire::{Reader, WireError, Writer};

/// Associated data of the sealed object.
pub const AAD: &[u8] = b"holdfast v4 evidence";
/// The envelope's magic.
pub const MAGIC: &[u8; 5] = b"HFEV\x01";
const DOMAIN: &[u8] = b"holdfast v4 evidence signature\0";
/// The largest record a reader accepts (a report with many checks is a few KiB).
pub const MAX_JSON: usize = 4 << 20;

/// One proof of recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Evidence {
    /// Record version (1).
    pub version: u32,
    /// What produced it: `restore_test` (later also `drill`).
    pub kind: String,
    /// The restore test's (or drill's) name in the plan, if it had one.
    #[serde(default)]
    pub name: Option<String>,
    /// The resource whose recovery it proves.
    pub resource: String,
    /// The recovery point used (64 hex).
    pub point: String,
    /// When the test ended, Unix nanoseconds.
    pub time_ns: i64,
    /// Host that ran it.
    pub host: String,
    /// Program and version, e.g. `holdfast 0.1.0`.
    pub program: String,
    /// Whether every check passed within the RTO.
    pub passed: bool,
    /// The measured RTO, seconds.
    pub rto_seconds: f64,
    /// The point's age when the test started, seconds.
    pub rpo_seconds: f64,
    /// The full report (as `holdfast --json restore-test run` prints it).
    pub report: serde_json::Value,
}

fn signed_message(vault_id: &[u8; 16], head: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 16 + head.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(vault_id);
    m.extend_from_slice(head);
    m
}

/// The envelope of a record: magic, the JSON, the owner's signature.
pub fn seal(json: &[u8], vault_id: &[u8; 16], owner: &SigningKey) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(MAGIC);
    w.bytes32(json);
    let mut out = w.into_inner();
    let sig = owner.sign(&signed_message(vault_id, &out));
    out.extend_from_slice(&sig.to_bytes());
    out
}

/// The record's JSON, if the envelope is well formed and the owner signed it.
pub fn open<'a>(
    plain: &'a [u8],
    vault_id: &[u8; 16],
    owner: &VerifyingKey,
) -> Result<&'a [u8], WireError> {
    if !plain.starts_with(MAGIC) || plain.len() < MAGIC.len() + 4 + 64 {
        return Err(WireError("not an evidence envelope".into()));
    }
    let (head, sig) = plain.split_at(plain.len() - 64);
    let mut r = Reader::new(&head[MAGIC.len()..]);
    let json = r.bytes32()?;
    r.finish()?;
    if json.len() > MAX_JSON {
        return Err(WireError(format!(
            "evidence record of {} bytes (at most {MAX_JSON})",
            json.len()
        )));
    }
    let sig = Signature::from_bytes(
        sig.try_into()
            .map_err(|_| WireError("truncated signature".into()))?,
    );
    owner
        .verify_strict(&signed_message(vault_id, head), &sig)
        .map_err(|_| WireError("the owner signature does not verify".into()))?;
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    proptest! {
        #[test]
        fn envelopes_round_trip_and_any_flip_fails(json in proptest::collection::vec(any::<u8>(), 0..512), at in any::<usize>()) {
            let k = key(7);
            let id = [3u8; 16];
            let e = seal(&json, &id, &k);
            prop_assert_eq!(open(&e, &id, &k.verifying_key()).unwrap(), &json[..]);
            let mut bad = e.clone();
            let i = at % bad.len();
            bad[i] ^= 0x01;
            prop_assert!(open(&bad, &id, &k.verifying_key()).is_err());
        }
    }

    #[test]
    fn another_vault_or_key_does_not_verify() {
        let e = seal(b"{}", &[1; 16], &key(1));
        assert!(open(&e, &[2; 16], &key(1).verifying_key()).is_err());
        assert!(open(&e, &[1; 16], &key(2).verifying_key()).is_err());
        assert!(open(b"HFEV\x01", &[1; 16], &key(1).verifying_key()).is_err());
        assert!(open(b"{}", &[1; 16], &key(1).verifying_key()).is_err());
    }
}
