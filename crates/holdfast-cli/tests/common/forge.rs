//! What an attacker's own program does to a vault: build recovery points byte by byte from
//! docs/format.md (11.1, 11.4), sign them with whatever key it holds, and create them in the
//! storage. Nothing here goes through holdfast's writer, which would refuse.
//!
//! A write-only host knows every field of a manifest it writes itself (its own backup's root
//! tree id included), so the tests take the JSON of a point the attacker made and change the
//! resource or time; reading it back uses the full key only for convenience.

use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::{Signer as _, SigningKey};
use holdfast_engine::internals::crypto;
use holdfast_engine::point::Manifest;
use holdfast_engine::{Id, KeylessVault, Vault, keys};
use holdfast_storage::local::LocalStorage;
use holdfast_storage::{Handle, Kind, Storage};

use super::Env;

/// The full-key vault of an env (passphrase `correct horse`).
pub fn full_vault(env: &Env) -> Vault {
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(env.vault.clone().into()));
    KeylessVault::open(storage)
        .unwrap()
        .unlock_passphrase(b"correct horse")
        .unwrap()
}

/// The manifest JSON of point `spec` (an id prefix or `latest…`), changed by `edit`.
pub fn manifest_json(env: &Env, spec: &str, edit: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let (_, mut m) = full_vault(env).find_point(spec).unwrap();
    edit(&mut m);
    m.to_json()
}

/// A write-only key file's parts: the key material, the writer certificate's bytes (as an
/// envelope carries them) and the writer's signing key. Key file (5.4): `HFKF\x01`, `u32 L`,
/// material, checksum; material kind 2 (5.2): 122 bytes, then the certificate, then the 32-byte
/// signing seed.
pub struct WriterParts {
    pub material: keys::KeyMaterial,
    pub cert: Vec<u8>,
    pub signing: SigningKey,
}

pub fn writer_parts(key_file: &Path) -> WriterParts {
    let bytes = std::fs::read(key_file).unwrap();
    let material = keys::decode_key_file(&bytes).unwrap();
    let m = &bytes[9..bytes.len() - 32];
    assert_eq!(m[1], 2, "not a write-only key with a writer identity");
    let cred = &m[122..];
    let (cert, seed) = cred.split_at(cred.len() - 32);
    WriterParts {
        material,
        cert: cert.to_vec(),
        signing: SigningKey::from_bytes(seed.try_into().unwrap()),
    }
}

/// A certificate for `verify_key`, signed by `issuer` (which is not the vault's owner key,
/// since the attacker does not hold it): 11.4's certificate layout.
pub fn self_made_cert(
    vault_id: &[u8; 16],
    issuer: &SigningKey,
    verify_key: &[u8; 32],
    label: &str,
    scope: &[&str],
) -> Vec<u8> {
    let mut fields = Vec::new();
    fields.extend_from_slice(&[0x5a; 16]);
    fields.extend_from_slice(verify_key);
    fields.extend_from_slice(&1_700_000_000i64.to_le_bytes());
    fields.extend_from_slice(&(label.len() as u16).to_le_bytes());
    fields.extend_from_slice(label.as_bytes());
    fields.extend_from_slice(&(scope.len() as u16).to_le_bytes());
    for s in scope {
        fields.extend_from_slice(&(s.len() as u16).to_le_bytes());
        fields.extend_from_slice(s.as_bytes());
    }
    let mut body = b"holdfast v4 writer certificate\0".to_vec();
    body.extend_from_slice(vault_id);
    body.extend_from_slice(&fields);
    fields.extend_from_slice(&issuer.sign(&body).to_bytes());
    fields
}

/// A signed envelope (11.4): `HFPM\x01`, `bytes32 json`, signer kind (1 = writer) and
/// certificate, then the Ed25519 signature of `signing` over the domain, vault id and head.
pub fn writer_envelope(
    json: &[u8],
    vault_id: &[u8; 16],
    cert: &[u8],
    signing: &SigningKey,
) -> Vec<u8> {
    let mut head = b"HFPM\x01".to_vec();
    head.extend_from_slice(&(json.len() as u32).to_le_bytes());
    head.extend_from_slice(json);
    head.push(1);
    head.extend_from_slice(cert);
    let mut msg = b"holdfast v4 point signature\0".to_vec();
    msg.extend_from_slice(vault_id);
    msg.extend_from_slice(&head);
    head.extend_from_slice(&signing.sign(&msg).to_bytes());
    head
}

/// Seal a point's plaintext (an envelope, or bare JSON as before format 4) to the vault's
/// public key and create it under its name (11.1), as create-only credentials allow.
pub fn plant_point(vault: &str, material: &keys::KeyMaterial, plaintext: &[u8]) -> Id {
    let sealed = crypto::seal_to(&material.public_key(), b"holdfast v1 point", plaintext);
    let id = Id::of_stored(&sealed);
    LocalStorage::new(vault.into())
        .create(&Handle::new(Kind::Point, id.to_hex()), &sealed)
        .unwrap();
    id
}

/// Nanoseconds since the epoch, `days` from now.
pub fn days_from_now_ns(days: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    now + days * 86_400 * 1_000_000_000
}
