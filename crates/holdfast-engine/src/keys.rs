//! The key hierarchy (docs/format.md, "Keys").
//!
//! A vault's [`KeyMaterial`] holds:
//! * `id_key` — BLAKE3 key for blob ids (so ids reveal nothing about content to outsiders),
//! * `index_key` — the symmetric key of index objects and pack headers,
//! * `chunker_seed` — mixed into the FastCDC gear table (boundaries do not fingerprint data),
//! * the X25519 key pair that wraps every pack's and manifest's one-use data key.
//!
//! A **full** key holds all of it. A **write-only** key lacks the X25519 secret: it can chunk,
//! deduplicate against the index and seal new data *to* the vault, but cannot open any pack,
//! tree, file name or manifest — not even the ones it wrote.
//!
//! Key material is stored in `keys/<id>` objects, each encrypted under a passphrase through
//! Argon2id, or handed out in a key file (`HOLDFAST_KEY_FILE`).

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{CryptoError, PublicKey, SecretKey, SymKey};
use crate::identity::{Signer, WriterCredential};
use crate::wire::{Reader, WireError, Writer};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// Read, write, delete, manage keys.
    Full,
    /// Add recovery points only.
    WriteOnly,
}

/// All secrets of a vault that one key opens.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyMaterial {
    #[zeroize(skip)]
    pub(crate) vault_id: [u8; 16],
    pub(crate) id_key: [u8; 32],
    pub(crate) index_key: SymKey,
    pub(crate) chunker_seed: u64,
    #[zeroize(skip)]
    pub(crate) public: [u8; 32],
    pub(crate) secret: Option<SecretKey>,
    /// A write-only key's writer identity (docs/format.md 5.6); `None` in full keys and in
    /// write-only keys made before format version 4.
    #[zeroize(skip)]
    pub(crate) writer: Option<WriterCredential>,
}

const MATERIAL_VERSION: u8 = 1;

impl KeyMaterial {
    /// Fresh material for a new vault.
    pub fn generate(vault_id: [u8; 16]) -> Self {
        let secret = SecretKey::generate();
        KeyMaterial {
            vault_id,
            id_key: crate::crypto::random_bytes(),
            index_key: SymKey::generate(),
            chunker_seed: u64::from_le_bytes(crate::crypto::random_bytes()),
            public: secret.public().0,
            secret: Some(secret),
            writer: None,
        }
    }

    /// Full or write-only.
    pub fn kind(&self) -> KeyKind {
        if self.secret.is_some() {
            KeyKind::Full
        } else {
            KeyKind::WriteOnly
        }
    }

    /// The same material without the X25519 secret (and without a writer identity: such a
    /// key cannot write to a format-4 vault; see [`KeyMaterial::issue_writer`]).
    pub fn write_only(&self) -> KeyMaterial {
        let mut m = self.clone();
        m.secret = None;
        m.writer = None;
        m
    }

    /// A write-only key with a new writer identity (docs/format.md 5.6), certified by this
    /// full key: `label` names the writer (usually its host), `scope` lists the resource
    /// patterns it may write (`*` wildcards; empty = any). `None` for a write-only key.
    pub fn issue_writer(
        &self,
        label: &str,
        scope: Vec<String>,
        created: i64,
    ) -> Option<Result<KeyMaterial, WireError>> {
        let owner = self.owner_signing()?;
        Some(
            WriterCredential::issue(&owner, &self.vault_id, label, scope, created).map(|c| {
                let mut m = self.write_only();
                m.writer = Some(c);
                m
            }),
        )
    }

    /// The writer identity of a write-only key.
    pub fn writer(&self) -> Option<&WriterCredential> {
        self.writer.as_ref()
    }

    /// The owner's verifying key (full keys only): what point signatures and writer
    /// certificates are checked against (docs/format.md 5.6).
    pub fn owner_verifying_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        self.owner_signing().map(|k| k.verifying_key())
    }

    /// Whether this key can sign points: a full key, or a write-only key with a writer
    /// identity.
    pub fn can_sign(&self) -> bool {
        self.secret.is_some() || self.writer.is_some()
    }

    /// The owner's signing key (full keys only).
    pub(crate) fn owner_signing(&self) -> Option<ed25519_dalek::SigningKey> {
        self.secret
            .as_ref()
            .map(|s| crate::identity::owner_signing_key(&s.0))
    }

    /// Who signs what this key writes: the owner (full key), its writer identity, or nobody
    /// (a write-only key from before format version 4).
    pub fn signer(&self) -> Option<Signer<'_>> {
        match (self.owner_signing(), &self.writer) {
            (Some(k), _) => Some(Signer::Owner(Box::new(k))),
            (None, Some(c)) => Some(Signer::Writer(c)),
            (None, None) => None,
        }
    }

    /// The vault this material belongs to.
    pub fn vault_id(&self) -> [u8; 16] {
        self.vault_id
    }

    /// The vault's public key (not secret: every key holds it).
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.public)
    }

    /// The index key. Write-only keys hold it too, so nothing it seals is trusted against a
    /// write-only holder (docs/format.md 15.4); exposed for tools and adversarial tests that
    /// write index objects and pack headers.
    pub fn index_key(&self) -> &SymKey {
        &self.index_key
    }

    /// The policy key: derived from the secret key, so only full keys have it. It
    /// authenticates garbage-collection notices and encrypts protection records (vault lock,
    /// legal holds), which write-only hosts must not be able to forge.
    pub(crate) fn policy_key(&self) -> Option<SymKey> {
        self.secret
            .as_ref()
            .map(|s| SymKey(blake3::derive_key("holdfast v2 policy key", &s.0)))
    }

    /// Encode (plaintext; callers encrypt it or protect the file).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(MATERIAL_VERSION);
        w.u8(match (self.kind(), &self.writer) {
            (KeyKind::Full, _) => 0,
            (KeyKind::WriteOnly, None) => 1,
            (KeyKind::WriteOnly, Some(_)) => 2,
        });
        w.raw(&self.vault_id);
        w.raw(&self.id_key);
        w.raw(&self.index_key.0);
        w.u64(self.chunker_seed);
        w.raw(&self.public);
        if let Some(s) = &self.secret {
            w.raw(&s.0);
        }
        if let Some(c) = &self.writer {
            c.encode(&mut w);
        }
        w.into_inner()
    }

    /// Decode what [`KeyMaterial::encode`] produced.
    pub fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let v = r.u8()?;
        if v != MATERIAL_VERSION {
            return Err(WireError(format!("unknown key material version {v}")));
        }
        let kind = r.u8()?;
        let vault_id = r.array()?;
        let id_key = r.array()?;
        let index_key = SymKey(r.array()?);
        let chunker_seed = r.u64()?;
        let public = r.array()?;
        let (secret, writer) = match kind {
            0 => (Some(SecretKey::from_bytes(r.array()?)), None),
            1 => (None, None),
            2 => (None, Some(WriterCredential::decode(&mut r)?)),
            k => return Err(WireError(format!("unknown key kind {k}"))),
        };
        r.finish()?;
        if let Some(s) = &secret
            && s.public().0 != public
        {
            return Err(WireError("secret and public key do not match".into()));
        }
        Ok(KeyMaterial {
            vault_id,
            id_key,
            index_key,
            chunker_seed,
            public,
            secret,
            writer,
        })
    }
}

/// Argon2id cost parameters, stored with each key object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 46 MiB, 2 passes, 1 lane: above OWASP's recommended Argon2id minimum (46 MiB, 1 pass),
    /// ~0.1 s here, and within the memory of small hosts and containers.
    fn default() -> Self {
        KdfParams {
            memory_kib: 46 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// The defaults, or a smaller memory cost from `HOLDFAST_KDF_MEMORY_KIB` (at least 8 MiB;
    /// for tests and very small machines).
    pub fn from_env() -> Self {
        let mut p = KdfParams::default();
        if let Some(m) = std::env::var("HOLDFAST_KDF_MEMORY_KIB")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
        {
            p.memory_kib = m.max(8 * 1024);
            p.iterations = 1;
        }
        p
    }

    fn derive(&self, passphrase: &[u8], salt: &[u8; 16]) -> Result<SymKey, WireError> {
        if self.memory_kib > 4 * 1024 * 1024 || self.iterations > 100 || self.parallelism > 64 {
            return Err(WireError("key derivation parameters out of range".into()));
        }
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| WireError(format!("bad key derivation parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        a.hash_password_into(passphrase, salt, &mut out)
            .map_err(|e| WireError(format!("key derivation failed: {e}")))?;
        let k = SymKey(out);
        out.zeroize();
        Ok(k)
    }
}

/// The public header of a key object (readable without the passphrase).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    /// Object name (hex).
    pub id: String,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Host that created it.
    pub host: String,
    /// Free-form label.
    pub label: String,
    /// KDF parameters.
    pub kdf: KdfParams,
}

const KEY_MAGIC: &[u8; 6] = b"HFKEY\x01";

/// Encode a passphrase-protected key object.
pub fn seal_key_object(
    material: &KeyMaterial,
    passphrase: &[u8],
    kdf: KdfParams,
    created: i64,
    host: &str,
    label: &str,
) -> Result<Vec<u8>, WireError> {
    let salt: [u8; 16] = crate::crypto::random_bytes();
    let mut w = Writer::new();
    w.raw(KEY_MAGIC);
    w.u8(1); // argon2id
    w.u32(kdf.memory_kib);
    w.u32(kdf.iterations);
    w.u32(kdf.parallelism);
    w.raw(&salt);
    w.i64(created);
    w.bytes16(host.as_bytes());
    w.bytes16(label.as_bytes());
    let header = w.into_inner();
    let kek = kdf.derive(passphrase, &salt)?;
    let mut plain = material.encode();
    let sealed = kek.seal(&header, &plain);
    plain.zeroize();
    let mut out = header;
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn parse_key_header(data: &[u8]) -> Result<(KeyInfo, [u8; 16], usize), WireError> {
    let mut r = Reader::new(data);
    if r.take(6)? != KEY_MAGIC {
        return Err(WireError("not a holdfast key object".into()));
    }
    if r.u8()? != 1 {
        return Err(WireError("unknown key derivation algorithm".into()));
    }
    let kdf = KdfParams {
        memory_kib: r.u32()?,
        iterations: r.u32()?,
        parallelism: r.u32()?,
    };
    let salt = r.array()?;
    let created = r.i64()?;
    let host = String::from_utf8_lossy(r.bytes16()?).into_owned();
    let label = String::from_utf8_lossy(r.bytes16()?).into_owned();
    let used = data.len() - r.remaining();
    Ok((
        KeyInfo {
            id: String::new(),
            created,
            host,
            label,
            kdf,
        },
        salt,
        used,
    ))
}

/// Read the public header of a key object.
pub fn key_object_info(id: &str, data: &[u8]) -> Result<KeyInfo, WireError> {
    let (mut info, _, _) = parse_key_header(data)?;
    info.id = id.to_string();
    Ok(info)
}

/// Why a key object did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenKeyError {
    /// Wrong passphrase (or an altered object: indistinguishable by design).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Open a key object with a passphrase.
pub fn open_key_object(data: &[u8], passphrase: &[u8]) -> Result<KeyMaterial, OpenKeyError> {
    let (info, salt, used) = parse_key_header(data)?;
    let kek = info.kdf.derive(passphrase, &salt)?;
    let mut plain = kek.open(&data[..used], &data[used..])?;
    let m = KeyMaterial::decode(&plain);
    plain.zeroize();
    Ok(m?)
}

const FILE_MAGIC: &[u8; 5] = b"HFKF\x01";

/// Encode a key file (plaintext material with a checksum; protect it like a private key).
pub fn encode_key_file(material: &KeyMaterial) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(FILE_MAGIC);
    let mut m = material.encode();
    w.bytes32(&m);
    m.zeroize();
    let sum = blake3::hash(&w.buf);
    w.raw(sum.as_bytes());
    w.into_inner()
}

/// Decode a key file.
pub fn decode_key_file(data: &[u8]) -> Result<KeyMaterial, WireError> {
    if data.len() < FILE_MAGIC.len() + 4 + 32 || &data[..FILE_MAGIC.len()] != FILE_MAGIC {
        return Err(WireError("not a holdfast key file".into()));
    }
    let (body, sum) = data.split_at(data.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(WireError(
            "key file checksum mismatch (damaged or edited)".into(),
        ));
    }
    let mut r = Reader::new(&body[FILE_MAGIC.len()..]);
    let m = KeyMaterial::decode(r.bytes32()?)?;
    r.finish()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn key_object_round_trip() {
        let m = KeyMaterial::generate([7; 16]);
        let obj = seal_key_object(&m, b"pw", fast(), 5, "host", "label").unwrap();
        let back = open_key_object(&obj, b"pw").unwrap();
        assert_eq!(back.encode(), m.encode());
        assert!(matches!(
            open_key_object(&obj, b"wrong"),
            Err(OpenKeyError::Crypto(_))
        ));
        let info = key_object_info("ab", &obj).unwrap();
        assert_eq!(
            (info.host.as_str(), info.label.as_str(), info.created),
            ("host", "label", 5)
        );
        for i in (0..obj.len()).step_by(7) {
            let mut t = obj.clone();
            t[i] ^= 0x40;
            assert!(
                open_key_object(&t, b"pw").is_err(),
                "flip at {i} went unnoticed"
            );
        }
    }

    #[test]
    fn key_file_round_trip_and_write_only() {
        let m = KeyMaterial::generate([1; 16]);
        let wo = m.write_only();
        assert_eq!(wo.kind(), KeyKind::WriteOnly);
        let f = encode_key_file(&wo);
        let back = decode_key_file(&f).unwrap();
        assert_eq!(back.kind(), KeyKind::WriteOnly);
        assert_eq!(back.encode(), wo.encode());
        let mut t = f.clone();
        t[10] ^= 1;
        assert!(decode_key_file(&t).is_err());
        assert!(decode_key_file(b"junk").is_err());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn material_and_key_file_round_trip(vault in any::<[u8; 16]>(), write_only in any::<bool>()) {
            let m = KeyMaterial::generate(vault);
            let m = if write_only { m.write_only() } else { m };
            prop_assert_eq!(KeyMaterial::decode(&m.encode()).unwrap().encode(), m.encode());
            prop_assert_eq!(decode_key_file(&encode_key_file(&m)).unwrap().encode(), m.encode());
        }

        #[test]
        fn key_parsers_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = KeyMaterial::decode(&data);
            let _ = decode_key_file(&data);
            let _ = key_object_info("00", &data);
        }
    }
}
