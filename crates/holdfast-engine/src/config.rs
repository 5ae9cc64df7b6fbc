//! The `config` object: format version, vault id and the parameters every writer must share.
//! Stored in plaintext so `holdfast` can tell "no vault" from "wrong key", and authenticated
//! with a MAC under a key derived from the index key once a key is opened.

use crate::wire::{Reader, WireError, Writer};

/// The vault format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 4;
/// The older versions this build can convert (`holdfast migrate`) but not otherwise use.
pub const MIGRATABLE_VERSIONS: [u32; 2] = [2, 3];
const MAGIC: &[u8; 4] = b"HFVT";

/// Chunking, packing and compression parameters of a vault.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VaultConfig {
    /// Format version.
    pub version: u32,
    /// Random vault id.
    pub vault_id: [u8; 16],
    /// Creation time, Unix seconds.
    pub created: i64,
    /// FastCDC minimum chunk size.
    pub chunk_min: u32,
    /// FastCDC average chunk size.
    pub chunk_avg: u32,
    /// FastCDC maximum chunk size.
    pub chunk_max: u32,
    /// Target pack size in bytes.
    pub pack_target: u32,
    /// zstd level (0 stores uncompressed).
    pub zstd_level: i32,
}

impl VaultConfig {
    /// The defaults for a new vault.
    pub fn new(vault_id: [u8; 16], created: i64) -> Self {
        VaultConfig {
            version: FORMAT_VERSION,
            vault_id,
            created,
            chunk_min: 512 * 1024,
            chunk_avg: 1024 * 1024,
            chunk_max: 8 * 1024 * 1024,
            pack_target: 8 * 1024 * 1024,
            zstd_level: 3,
        }
    }

    /// The vault id as hex.
    pub fn id_hex(&self) -> String {
        hex::encode(self.vault_id)
    }

    fn body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(MAGIC);
        w.u32(self.version);
        w.raw(&self.vault_id);
        w.i64(self.created);
        w.u32(self.chunk_min);
        w.u32(self.chunk_avg);
        w.u32(self.chunk_max);
        w.u32(self.pack_target);
        w.u32(self.zstd_level as u32);
        w.into_inner()
    }

    /// Encode with the MAC under `mac_key`.
    pub fn encode(&self, mac_key: &[u8; 32]) -> Vec<u8> {
        let mut b = self.body();
        let mac = blake3::keyed_hash(mac_key, &b);
        b.extend_from_slice(mac.as_bytes());
        b
    }

    /// Decode without checking the MAC; returns the config and a closure-free check value.
    pub fn decode(data: &[u8]) -> Result<(VaultConfig, [u8; 32]), WireError> {
        let mut r = Reader::new(data);
        if r.take(4)? != MAGIC {
            return Err(WireError("not a holdfast vault config".into()));
        }
        let version = r.u32()?;
        if version != FORMAT_VERSION && !MIGRATABLE_VERSIONS.contains(&version) {
            return Err(WireError(format!(
                "format version {version} (this holdfast reads {FORMAT_VERSION})"
            )));
        }
        let c = VaultConfig {
            version,
            vault_id: r.array()?,
            created: r.i64()?,
            chunk_min: r.u32()?,
            chunk_avg: r.u32()?,
            chunk_max: r.u32()?,
            pack_target: r.u32()?,
            zstd_level: r.u32()? as i32,
        };
        let mac = r.array()?;
        r.finish()?;
        c.validate()?;
        Ok((c, mac))
    }

    /// Whether `mac` authenticates this config under `mac_key`.
    pub fn mac_ok(&self, mac_key: &[u8; 32], mac: &[u8; 32]) -> bool {
        blake3::keyed_hash(mac_key, &self.body()) == blake3::Hash::from_bytes(*mac)
    }

    /// Reject parameters the chunker or packer cannot work with.
    pub fn validate(&self) -> Result<(), WireError> {
        let ok = (64..=1 << 20).contains(&self.chunk_min)
            && (256..=4 << 20).contains(&self.chunk_avg)
            && (1024..=16 << 20).contains(&self.chunk_max)
            && self.chunk_min <= self.chunk_avg
            && self.chunk_avg <= self.chunk_max
            && (1 << 16..=1 << 30).contains(&self.pack_target)
            && (-7..=22).contains(&self.zstd_level);
        if ok {
            Ok(())
        } else {
            Err(WireError("config parameters out of range".into()))
        }
    }
}

/// The key of the config MAC, derived from the index key.
pub fn mac_key(index_key: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("holdfast v1 config mac", index_key)
}

impl VaultConfig {
    /// Encode with the MAC derived from the vault's index key.
    pub fn encode_for(&self, index_key: &crate::crypto::SymKey) -> Vec<u8> {
        self.encode(&mac_key(&index_key.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_mac() {
        let c = VaultConfig::new([3; 16], 42);
        let k = [9u8; 32];
        let b = c.encode(&k);
        let (d, mac) = VaultConfig::decode(&b).unwrap();
        assert_eq!(c, d);
        assert!(d.mac_ok(&k, &mac));
        assert!(!d.mac_ok(&[8u8; 32], &mac));
        let mut t = b.clone();
        t[30] ^= 1;
        if let Ok((d, mac)) = VaultConfig::decode(&t) {
            assert!(!d.mac_ok(&k, &mac));
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn config_round_trip(id in any::<[u8; 16]>(), created in any::<i64>(), level in -7i32..=22, key in any::<[u8; 32]>()) {
            let mut c = VaultConfig::new(id, created);
            c.zstd_level = level;
            let (d, mac) = VaultConfig::decode(&c.encode(&key)).unwrap();
            prop_assert_eq!(&d, &c);
            prop_assert!(d.mac_ok(&key, &mac));
        }

        #[test]
        fn config_decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..120)) {
            let _ = VaultConfig::decode(&data);
        }
    }
}
