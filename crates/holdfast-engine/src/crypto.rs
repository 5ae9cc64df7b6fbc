//! Cryptographic primitives of the vault format (see docs/format.md, "Cryptography").
//!
//! * [`SymKey`]: XChaCha20-Poly1305 with a random 24-byte nonce — for objects under long-lived
//!   symmetric keys (index objects, pack headers, key objects).
//! * [`DataKey`]: AES-256-GCM under a fresh random key per pack or per point manifest; the
//!   nonce is derived from the blob's offset in its pack, unique per key.
//! * [`wrap`] / [`unwrap`]: a data key sealed to the vault's X25519 public key (ephemeral
//!   Diffie-Hellman, HKDF-SHA256, AES-256-GCM). Anyone with the public key can wrap; only the
//!   holder of the secret key can unwrap. This is what makes write-only keys possible.
//!
//! All key types zeroize on drop and have no `Debug` output of their bytes.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Authentication failed: the bytes were altered, truncated, or the key is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed (altered, truncated, or wrong key)")]
pub struct CryptoError;

/// Length of the AEAD tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of the XChaCha20 nonce prefixed to symmetric ciphertexts.
pub const XNONCE_LEN: usize = 24;
/// Length of a wrapped data key: ephemeral public key (32) + encrypted key (32) + tag (16).
pub const WRAPPED_LEN: usize = 80;

/// Fill a fresh array with random bytes from the OS generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// A long-lived symmetric key (XChaCha20-Poly1305).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymKey(pub(crate) [u8; 32]);

impl SymKey {
    /// A new random key.
    pub fn generate() -> Self {
        SymKey(random_bytes())
    }

    /// Encrypt: `nonce(24) || ciphertext || tag(16)`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; XNONCE_LEN] = random_bytes();
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut out = Vec::with_capacity(XNONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(XNONCE_LEN);
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut body)
            .expect("XChaCha20-Poly1305 encrypts any length that fits in memory");
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        out
    }

    /// Decrypt what [`SymKey::seal`] produced.
    pub fn open(&self, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if data.len() < XNONCE_LEN + TAG_LEN {
            return Err(CryptoError);
        }
        let (nonce, rest) = data.split_at(XNONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut buf = body.to_vec();
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut buf, tag.into())
            .map_err(|_| CryptoError)?;
        Ok(buf)
    }
}

/// A one-use content key (AES-256-GCM): one per pack, one per point manifest.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

fn nonce_for(n: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&n.to_le_bytes());
    nonce
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        DataKey(random_bytes())
    }

    /// Encrypt `buf` in place and append the tag. `n` must never repeat under one key (the
    /// blob's offset within its pack; 0 for a manifest).
    pub fn encrypt(&self, n: u64, aad: &[u8], buf: &mut Vec<u8>) {
        let cipher = Aes256Gcm::new((&self.0).into());
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce_for(n)), aad, buf)
            .expect("AES-GCM encrypts any blob below 64 GiB");
        buf.extend_from_slice(&tag);
    }

    /// Encrypt `buf` in place; returns the tag to append. Same nonce rules as [`DataKey::encrypt`].
    pub fn encrypt_slice(&self, n: u64, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = Aes256Gcm::new((&self.0).into())
            .encrypt_in_place_detached(Nonce::from_slice(&nonce_for(n)), aad, buf)
            .expect("AES-GCM encrypts any blob below 64 GiB");
        tag.into()
    }

    /// Decrypt what [`DataKey::encrypt`] produced with the same `n` and `aad`.
    pub fn decrypt(&self, n: u64, aad: &[u8], mut data: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        if data.len() < TAG_LEN {
            return Err(CryptoError);
        }
        let tag = data.split_off(data.len() - TAG_LEN);
        Aes256Gcm::new((&self.0).into())
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce_for(n)),
                aad,
                &mut data,
                tag.as_slice().into(),
            )
            .map_err(|_| CryptoError)?;
        Ok(data)
    }
}

/// The vault's X25519 public key: lets anyone holding it encrypt for the vault.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

/// The vault's X25519 secret key: opens every pack and manifest. It keeps its public key,
/// computed once, since every unwrap needs it (a scalar multiplication saved per pack key
/// and per manifest read).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(pub(crate) [u8; 32], [u8; 32]);

impl SecretKey {
    /// A new random secret key.
    pub fn generate() -> Self {
        Self::from_bytes(random_bytes())
    }

    /// The secret key with these bytes.
    pub(crate) fn from_bytes(secret: [u8; 32]) -> Self {
        let public = XPublic::from(&StaticSecret::from(secret)).to_bytes();
        SecretKey(secret, public)
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.1)
    }
}

fn kek(shared: &[u8; 32], eph: &[u8; 32], recipient: &[u8; 32]) -> [u8; 32] {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(eph);
    salt[32..].copy_from_slice(recipient);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut out = [0u8; 32];
    hk.expand(b"holdfast v1 key wrap", &mut out)
        .expect("32 bytes is a valid HKDF length");
    out
}

/// Seal `dk` to the vault's public key.
pub fn wrap(public: &PublicKey, dk: &DataKey) -> [u8; WRAPPED_LEN] {
    let eph = StaticSecret::from(random_bytes::<32>());
    let eph_pub = XPublic::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&XPublic::from(public.0));
    let mut k = kek(shared.as_bytes(), &eph_pub, &public.0);
    let mut buf = dk.0.to_vec();
    Aes256Gcm::new((&k).into())
        .encrypt_in_place(Nonce::from_slice(&[0u8; 12]), &eph_pub, &mut buf)
        .expect("AES-GCM encrypts 32 bytes");
    k.zeroize();
    let mut out = [0u8; WRAPPED_LEN];
    out[..32].copy_from_slice(&eph_pub);
    out[32..].copy_from_slice(&buf);
    buf.zeroize();
    out
}

/// Open a wrapped data key with the vault's secret key.
pub fn unwrap(secret: &SecretKey, wrapped: &[u8; WRAPPED_LEN]) -> Result<DataKey, CryptoError> {
    let mut eph_pub = [0u8; 32];
    eph_pub.copy_from_slice(&wrapped[..32]);
    let sk = StaticSecret::from(secret.0);
    let recipient = secret.1;
    let shared = sk.diffie_hellman(&XPublic::from(eph_pub));
    let mut k = kek(shared.as_bytes(), &eph_pub, &recipient);
    let mut buf = wrapped[32..].to_vec();
    let res = Aes256Gcm::new((&k).into()).decrypt_in_place(
        Nonce::from_slice(&[0u8; 12]),
        &eph_pub,
        &mut buf,
    );
    k.zeroize();
    res.map_err(|_| CryptoError)?;
    let mut dk = [0u8; 32];
    dk.copy_from_slice(&buf);
    buf.zeroize();
    let out = DataKey(dk);
    dk.zeroize();
    Ok(out)
}

/// Seal a whole message to the public key: `wrapped key (80) || AES-GCM(ciphertext || tag)`.
pub fn seal_to(public: &PublicKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let dk = DataKey::generate();
    let mut out = wrap(public, &dk).to_vec();
    let mut body = plaintext.to_vec();
    dk.encrypt(0, aad, &mut body);
    out.extend_from_slice(&body);
    out
}

/// Open what [`seal_to`] produced.
pub fn open_sealed(secret: &SecretKey, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if data.len() < WRAPPED_LEN + TAG_LEN {
        return Err(CryptoError);
    }
    let mut w = [0u8; WRAPPED_LEN];
    w.copy_from_slice(&data[..WRAPPED_LEN]);
    let dk = unwrap(secret, &w)?;
    dk.decrypt(0, aad, data[WRAPPED_LEN..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sym_round_trip_and_tamper() {
        let k = SymKey::generate();
        let c = k.seal(b"aad", b"hello");
        assert_eq!(k.open(b"aad", &c).unwrap(), b"hello");
        assert!(k.open(b"other", &c).is_err());
        let mut t = c.clone();
        t[30] ^= 1;
        assert!(k.open(b"aad", &t).is_err());
        assert!(k.open(b"aad", &c[..10]).is_err());
        assert!(SymKey::generate().open(b"aad", &c).is_err());
    }

    #[test]
    fn wrap_needs_the_secret() {
        let sk = SecretKey::generate();
        let pk = sk.public();
        let dk = DataKey::generate();
        let w = wrap(&pk, &dk);
        let back = unwrap(&sk, &w).unwrap();
        let mut m = b"msg".to_vec();
        dk.encrypt(7, b"x", &mut m);
        assert_eq!(back.decrypt(7, b"x", m.clone()).unwrap(), b"msg");
        assert!(back.decrypt(8, b"x", m).is_err());
        assert!(unwrap(&SecretKey::generate(), &w).is_err());
        let s = seal_to(&pk, b"p", b"payload");
        assert_eq!(open_sealed(&sk, b"p", &s).unwrap(), b"payload");
        assert!(open_sealed(&SecretKey::generate(), b"p", &s).is_err());
    }
}
