//! Reading the secret that unlocks a vault — a passphrase or a key file — the one way every
//! caller reads it: the CLI's `HOLDFAST_*` variables, the daemon's workers (which get the
//! plan's secret source as those variables) and `plan check --connect` (which reads the
//! plan's source directly). Where the secret comes from is the caller's; how a file is read
//! is decided here. Secret bytes are wiped from memory when dropped and never printed.

use std::path::Path;
use std::sync::Arc;

use holdfast_engine::keys::{self, KeyMaterial};
use holdfast_engine::{Error, KeylessVault, Result, Vault};
use holdfast_storage::url::{Location, OpenLocation, S3Options};
use zeroize::Zeroizing;

/// What unlocks a vault.
pub enum Secret {
    /// A passphrase.
    Passphrase(Zeroizing<Vec<u8>>),
    /// Key material from a key file.
    KeyFile(Box<KeyMaterial>),
}

impl Secret {
    /// Unlock `vault` with this secret.
    pub fn unlock(self, vault: KeylessVault) -> Result<Vault> {
        match self {
            Secret::Passphrase(p) => vault.unlock_passphrase(&p),
            Secret::KeyFile(m) => vault.unlock_material(*m),
        }
    }
}

/// `v` without its trailing line ending(s).
pub fn trim_newline(v: Vec<u8>) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(v);
    while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        v.pop();
    }
    v
}

/// A secret file's bytes, wiped from memory when dropped.
pub fn read_secret_file(p: impl AsRef<Path>) -> Result<Zeroizing<Vec<u8>>> {
    let p = p.as_ref();
    std::fs::read(p)
        .map(Zeroizing::new)
        .map_err(|e| Error::io(p, e))
}

/// A passphrase file's passphrase: its first line, without the line ending.
pub fn passphrase_file(p: impl AsRef<Path>) -> Result<Zeroizing<Vec<u8>>> {
    let data = read_secret_file(p)?;
    let first = data.split(|b| *b == b'\n').next().unwrap_or(&[]).to_vec();
    Ok(trim_newline(first))
}

/// A key file's key material.
pub fn key_file(p: impl AsRef<Path>) -> Result<Secret> {
    let p = p.as_ref();
    let data = read_secret_file(p)?;
    let m =
        keys::decode_key_file(&data).map_err(|e| Error::Input(format!("{}: {e}", p.display())))?;
    Ok(Secret::KeyFile(Box::new(m)))
}

/// A passphrase from environment variable `var` (as it is: no trimming), None when unset.
pub fn passphrase_env(var: &str) -> Option<Secret> {
    std::env::var_os(var).map(|s| Secret::Passphrase(Zeroizing::new(s.into_encoded_bytes())))
}

/// Open the vault at `url` (a path, `file://` or `s3://` URL) and unlock it with `secret`.
pub fn open_vault(url: &str, s3: &S3Options, secret: Secret) -> Result<Vault> {
    let loc = Location::parse(url).map_err(|e| Error::Input(e.message))?;
    let storage = loc.open(s3)?;
    secret.unlock(KeylessVault::open(Arc::clone(&storage))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passphrase_file_gives_its_first_line_without_the_line_ending() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (content, want) in [
            (&b"correct horse\n"[..], &b"correct horse"[..]),
            (b"crlf\r\nsecond line\n", b"crlf"),
            (b"no newline", b"no newline"),
            (b"  spaces kept  \n", b"  spaces kept  "),
            (b"", b""),
        ] {
            let p = dir.path().join("pass");
            std::fs::write(&p, content).expect("write");
            assert_eq!(&passphrase_file(&p).expect("read")[..], want);
        }
    }

    #[test]
    fn unreadable_and_malformed_secret_files_name_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.pass");
        let Err(e) = passphrase_file(&missing) else {
            panic!("a missing file was read")
        };
        assert!(e.to_string().contains("missing.pass"), "{e}");
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, b"not a key file").expect("write");
        let Err(e) = key_file(&bad) else {
            panic!("a malformed key file was read")
        };
        assert!(e.to_string().contains("bad.key"), "{e}");
        assert_eq!(e.kind(), holdfast_engine::ErrorKind::Input);
    }
}
