//! Writer identity: who wrote a recovery point (docs/format.md 5.6 and 11.4).
//!
//! Every manifest a format-4 vault stores is signed (Ed25519). A full key signs as the vault's
//! **owner**, with a key derived from the X25519 secret. A write-only key file carries a
//! **writer credential**: its own Ed25519 signing key and a certificate — the writer's id,
//! label, creation time and resource scope, signed by the owner key when a full-key holder ran
//! `key create-backup-only`. A point's signature envelope carries the certificate, so a full-key
//! reader checks who wrote the point without any other object: a write-only host can still
//! write points, but only under its own name, and a point it claims for another writer does
//! not verify.
//!
//! What is checked here is cryptographic attribution only; whether an attributed point is
//! trusted (scope, quarantine, a time in the future) is [`crate::trust`].

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroize;

use crate::wire::{Reader, WireError, Writer};

const CERT_DOMAIN: &[u8] = b"holdfast v4 writer certificate\0";
const POINT_DOMAIN: &[u8] = b"holdfast v4 point signature\0";
/// The first bytes of a signed manifest envelope (a bare JSON manifest starts with `{`).
pub const ENVELOPE_MAGIC: &[u8; 5] = b"HFPM\x01";
/// At most this many resource patterns in a writer's scope.
pub const MAX_SCOPE: usize = 64;

/// The owner's signing key: derived from the X25519 secret, so only full keys hold it.
pub(crate) fn owner_signing_key(secret: &[u8; 32]) -> SigningKey {
    let mut seed = blake3::derive_key("holdfast v4 owner signing key", secret);
    let k = SigningKey::from_bytes(&seed);
    seed.zeroize();
    k
}

/// The public part of a writer credential: what a point's envelope carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Random id of the writer.
    pub id: [u8; 16],
    /// Its label (`key backup-only --label`), usually the host name.
    pub label: String,
    /// When it was issued, Unix seconds.
    pub created: i64,
    /// Resource patterns it may write (`*` matches any run of characters); empty = any.
    pub scope: Vec<String>,
    /// Its Ed25519 verifying key.
    pub verify_key: [u8; 32],
    /// The owner's signature over the fields above and the vault id.
    pub signature: [u8; 64],
}

impl Certificate {
    fn body(&self, vault_id: &[u8; 16]) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(CERT_DOMAIN);
        w.raw(vault_id);
        self.encode_fields(&mut w);
        w.into_inner()
    }

    fn encode_fields(&self, w: &mut Writer) {
        w.raw(&self.id);
        w.raw(&self.verify_key);
        w.i64(self.created);
        w.bytes16(self.label.as_bytes());
        w.u16(self.scope.len() as u16);
        for s in &self.scope {
            w.bytes16(s.as_bytes());
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        self.encode_fields(w);
        w.raw(&self.signature);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let id = r.array()?;
        let verify_key = r.array()?;
        let created = r.i64()?;
        let label = utf8(r.bytes16()?, "writer label")?;
        let n = r.u16()? as usize;
        if n > MAX_SCOPE {
            return Err(WireError(format!(
                "writer scope of {n} patterns (at most {MAX_SCOPE})"
            )));
        }
        let mut scope = Vec::with_capacity(n);
        for _ in 0..n {
            scope.push(utf8(r.bytes16()?, "scope pattern")?);
        }
        let signature = r.array()?;
        Ok(Certificate {
            id,
            label,
            created,
            scope,
            verify_key,
            signature,
        })
    }

    /// Whether the owner of `vault_id` (its verifying key `owner`) issued this certificate.
    pub fn verify(&self, vault_id: &[u8; 16], owner: &VerifyingKey) -> bool {
        owner
            .verify_strict(
                &self.body(vault_id),
                &Signature::from_bytes(&self.signature),
            )
            .is_ok()
    }

    /// The writer id as 32 hex digits.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Whether the scope allows a resource name.
    pub fn allows(&self, resource: &str) -> bool {
        scope_allows(&self.scope, resource)
    }
}

fn utf8(b: &[u8], what: &str) -> Result<String, WireError> {
    String::from_utf8(b.to_vec()).map_err(|_| WireError(format!("{what} is not UTF-8")))
}

/// Whether a writer scope (resource patterns; none = any resource) allows `resource`.
pub fn scope_allows(scope: &[String], resource: &str) -> bool {
    scope.is_empty() || scope.iter().any(|p| glob_match(p, resource))
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A write-only key's identity: its certificate and signing key. Never `Debug`; the signing
/// key is zeroized on drop.
#[derive(Clone)]
pub struct WriterCredential {
    pub(crate) cert: Certificate,
    pub(crate) signing: SigningKey,
}

impl WriterCredential {
    /// Issue a new credential (the caller holds the owner key of `vault_id`).
    pub(crate) fn issue(
        owner: &SigningKey,
        vault_id: &[u8; 16],
        label: &str,
        scope: Vec<String>,
        created: i64,
    ) -> Result<Self, WireError> {
        if label.len() > u16::MAX as usize || scope.iter().any(|s| s.len() > u16::MAX as usize) {
            return Err(WireError("writer label or scope pattern too long".into()));
        }
        if scope.len() > MAX_SCOPE {
            return Err(WireError(format!("at most {MAX_SCOPE} scope patterns")));
        }
        let mut seed: [u8; 32] = crate::crypto::random_bytes();
        let signing = SigningKey::from_bytes(&seed);
        seed.zeroize();
        let mut cert = Certificate {
            id: crate::crypto::random_bytes(),
            label: label.to_string(),
            created,
            scope,
            verify_key: signing.verifying_key().to_bytes(),
            signature: [0; 64],
        };
        cert.signature = owner.sign(&cert.body(vault_id)).to_bytes();
        Ok(WriterCredential { cert, signing })
    }

    /// The public certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        self.cert.encode(w);
        w.raw(self.signing.as_bytes());
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let cert = Certificate::decode(r)?;
        let mut seed: [u8; 32] = r.array()?;
        let signing = SigningKey::from_bytes(&seed);
        seed.zeroize();
        if signing.verifying_key().to_bytes() != cert.verify_key {
            return Err(WireError(
                "writer signing key does not match its certificate".into(),
            ));
        }
        Ok(WriterCredential { cert, signing })
    }
}

/// Who signs a manifest.
pub enum Signer<'a> {
    /// A full key.
    Owner(Box<SigningKey>),
    /// A write-only key with a credential.
    Writer(&'a WriterCredential),
}

/// Who wrote a point, as far as its signature shows.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Attribution {
    /// Signed by a full key of the vault.
    Owner,
    /// Signed by a writer the owner certified.
    Writer {
        /// Writer id, 32 hex digits.
        id: String,
        /// Its label.
        label: String,
        /// Its resource scope (empty = any).
        scope: Vec<String>,
    },
    /// A bare manifest without a signature (written before format version 4, or forged by
    /// someone who holds only a write-only key's public parts).
    Unsigned,
    /// The signature or the certificate does not verify: a forgery.
    Forged {
        /// What failed.
        reason: String,
    },
}

impl Default for Attribution {
    /// What a manifest not yet read from a vault has: no signature.
    fn default() -> Self {
        Attribution::Unsigned
    }
}

impl Attribution {
    /// A short name for listings: `owner`, the writer's label, `unsigned` or `FORGED`.
    pub fn name(&self) -> &str {
        match self {
            Attribution::Owner => "owner",
            Attribution::Writer { label, .. } => label,
            Attribution::Unsigned => "unsigned",
            Attribution::Forged { .. } => "FORGED",
        }
    }
}

fn signed_message(vault_id: &[u8; 16], head: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(POINT_DOMAIN.len() + 16 + head.len());
    m.extend_from_slice(POINT_DOMAIN);
    m.extend_from_slice(vault_id);
    m.extend_from_slice(head);
    m
}

/// Wrap a manifest's JSON in a signed envelope (the plaintext of a format-4 point).
pub fn seal_manifest(json: &[u8], vault_id: &[u8; 16], signer: &Signer<'_>) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(ENVELOPE_MAGIC);
    w.bytes32(json);
    let key = match signer {
        Signer::Owner(k) => {
            w.u8(0);
            k
        }
        Signer::Writer(c) => {
            w.u8(1);
            c.cert.encode(&mut w);
            &c.signing
        }
    };
    let mut out = w.into_inner();
    let sig = key.sign(&signed_message(vault_id, &out));
    out.extend_from_slice(&sig.to_bytes());
    out
}

/// Split a point's plaintext into its manifest JSON and who signed it. Structural errors are
/// damage; a signature or certificate that does not verify is [`Attribution::Forged`].
pub fn open_manifest<'a>(
    plain: &'a [u8],
    vault_id: &[u8; 16],
    owner: &VerifyingKey,
) -> Result<(&'a [u8], Attribution), WireError> {
    if !plain.starts_with(ENVELOPE_MAGIC) {
        return Ok((plain, Attribution::Unsigned));
    }
    if plain.len() < ENVELOPE_MAGIC.len() + 64 {
        return Err(WireError("truncated manifest envelope".into()));
    }
    let (head, sig) = plain.split_at(plain.len() - 64);
    let mut r = Reader::new(&head[ENVELOPE_MAGIC.len()..]);
    let json = r.bytes32()?;
    let (key, attribution) = match r.u8()? {
        0 => (*owner, Attribution::Owner),
        1 => {
            let cert = Certificate::decode(&mut r)?;
            if !cert.verify(vault_id, owner) {
                r.finish()?;
                return Ok((
                    json,
                    Attribution::Forged {
                        reason: format!(
                            "the certificate of writer {} ({:?}) was not issued by this vault's \
                             owner",
                            cert.id_hex(),
                            cert.label
                        ),
                    },
                ));
            }
            let key = VerifyingKey::from_bytes(&cert.verify_key)
                .map_err(|_| WireError("writer verifying key is not a curve point".into()))?;
            let a = Attribution::Writer {
                id: cert.id_hex(),
                label: cert.label,
                scope: cert.scope,
            };
            (key, a)
        }
        k => return Err(WireError(format!("unknown signer kind {k}"))),
    };
    r.finish()?;
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    if key
        .verify_strict(&signed_message(vault_id, head), &sig)
        .is_err()
    {
        let reason = match &attribution {
            Attribution::Owner => "the owner signature does not verify".to_string(),
            a => format!("the signature of writer {:?} does not verify", a.name()),
        };
        return Ok((json, Attribution::Forged { reason }));
    }
    Ok((json, attribution))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VAULT: [u8; 16] = [9; 16];

    fn owner() -> SigningKey {
        owner_signing_key(&[3; 32])
    }

    #[test]
    fn owner_and_writer_signatures_verify_and_forgeries_do_not() {
        let o = owner();
        let vk = o.verifying_key();
        let plain = seal_manifest(b"{\"a\":1}", &VAULT, &Signer::Owner(Box::new(o.clone())));
        assert_eq!(
            open_manifest(&plain, &VAULT, &vk).unwrap(),
            (&b"{\"a\":1}"[..], Attribution::Owner)
        );
        let c = WriterCredential::issue(&o, &VAULT, "db1", vec!["db1:*".into()], 7).unwrap();
        let plain = seal_manifest(b"{}", &VAULT, &Signer::Writer(&c));
        let (_, a) = open_manifest(&plain, &VAULT, &vk).unwrap();
        assert_eq!(a.name(), "db1");
        // Another vault's owner did not issue it; the signature binds the vault id.
        let other = owner_signing_key(&[4; 32]).verifying_key();
        assert!(matches!(
            open_manifest(&plain, &VAULT, &other).unwrap().1,
            Attribution::Forged { .. }
        ));
        assert!(matches!(
            open_manifest(&plain, &[8; 16], &vk).unwrap().1,
            Attribution::Forged { .. }
        ));
        // A writer cannot issue itself a certificate: a self-signed one does not verify.
        let selfmade = WriterCredential::issue(&c.signing, &VAULT, "db2", vec![], 7).unwrap();
        let plain = seal_manifest(b"{}", &VAULT, &Signer::Writer(&selfmade));
        assert!(matches!(
            open_manifest(&plain, &VAULT, &vk).unwrap().1,
            Attribution::Forged { .. }
        ));
        // Every flipped byte is damage or a forgery, never a valid other attribution.
        let plain = seal_manifest(b"{\"r\":\"x\"}", &VAULT, &Signer::Writer(&c));
        for i in 0..plain.len() {
            let mut t = plain.clone();
            t[i] ^= 0x20;
            if let Ok((json, a)) = open_manifest(&t, &VAULT, &vk) {
                assert!(
                    matches!(a, Attribution::Forged { .. } | Attribution::Unsigned),
                    "flip at {i} verified as {a:?} with {json:?}"
                );
            }
        }
        // A bare JSON manifest is unsigned.
        assert_eq!(
            open_manifest(b"{}", &VAULT, &vk).unwrap().1,
            Attribution::Unsigned
        );
    }

    #[test]
    fn credential_round_trip_and_scope() {
        let c = WriterCredential::issue(&owner(), &VAULT, "web", vec!["app-*".into()], 1).unwrap();
        let mut w = Writer::new();
        c.encode(&mut w);
        let bytes = w.into_inner();
        let back = WriterCredential::decode(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(back.cert, c.cert);
        assert!(back.cert.allows("app-db") && !back.cert.allows("other"));
        let mut t = bytes.clone();
        let n = t.len();
        t[n - 1] ^= 1; // the signing key no longer matches the certificate
        assert!(WriterCredential::decode(&mut Reader::new(&t)).is_err());
    }

    #[test]
    fn globs() {
        for (p, t, m) in [
            ("a", "a", true),
            ("a", "ab", false),
            ("*", "", true),
            ("db1:*", "db1:pg", true),
            ("db1:*", "db2:pg", false),
            ("*:pg", "db1:pg", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob_match(p, t), m, "{p} ~ {t}");
        }
    }

    proptest! {
        #[test]
        fn envelope_round_trip(json in prop::collection::vec(any::<u8>(), 0..200), label in "[a-z0-9.-]{0,12}",
                               scope in prop::collection::vec("[a-z*:]{1,8}", 0..4)) {
            let o = owner();
            let c = WriterCredential::issue(&o, &VAULT, &label, scope.clone(), 5).unwrap();
            let plain = seal_manifest(&json, &VAULT, &Signer::Writer(&c));
            let (j, a) = open_manifest(&plain, &VAULT, &o.verifying_key()).unwrap();
            prop_assert_eq!(j, &json[..]);
            prop_assert_eq!(a, Attribution::Writer { id: c.cert.id_hex(), label, scope });
        }

        #[test]
        fn envelope_parser_never_panics(data in prop::collection::vec(any::<u8>(), 0..400)) {
            let mut d = ENVELOPE_MAGIC.to_vec();
            d.extend_from_slice(&data);
            let _ = open_manifest(&d, &VAULT, &owner().verifying_key());
            let _ = open_manifest(&data, &VAULT, &owner().verifying_key());
        }
    }
}
