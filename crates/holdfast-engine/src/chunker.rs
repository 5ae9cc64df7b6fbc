//! Content-defined chunking (FastCDC 2020, gear table mixed with the vault's secret seed).

use std::io::Read;

use fastcdc::v2020::{Normalization, StreamCDC};

use crate::config::VaultConfig;

/// Chunking parameters of a vault.
#[derive(Debug, Clone, Copy)]
pub struct ChunkParams {
    /// Minimum chunk size.
    pub min: u32,
    /// Average chunk size.
    pub avg: u32,
    /// Maximum chunk size.
    pub max: u32,
    /// Secret seed of the gear table.
    pub seed: u64,
}

impl ChunkParams {
    /// From a validated config and the key's seed.
    pub fn new(c: &VaultConfig, seed: u64) -> Self {
        ChunkParams {
            min: c.chunk_min,
            avg: c.chunk_avg,
            max: c.chunk_max,
            seed,
        }
    }

    /// Chunk boundaries `(offset, length)` of a buffer held in memory.
    pub fn split_slice(&self, data: &[u8]) -> Vec<(usize, usize)> {
        if data.len() <= self.min as usize {
            return vec![(0, data.len())];
        }
        fastcdc::v2020::FastCDC::with_level_and_seed(
            data,
            self.min,
            self.avg,
            self.max,
            Normalization::Level1,
            self.seed,
        )
        .map(|c| (c.offset, c.length))
        .collect()
    }

    /// Split a stream into chunks, calling `f` with each in order. Stops at the first error.
    pub fn split<R: Read, E>(
        &self,
        reader: R,
        mut f: impl FnMut(Vec<u8>) -> Result<(), E>,
        io_err: impl Fn(std::io::Error) -> E,
    ) -> Result<u64, E> {
        let cdc = StreamCDC::with_level_and_seed(
            reader,
            self.min,
            self.avg,
            self.max,
            Normalization::Level1,
            self.seed,
        );
        let mut total = 0u64;
        for c in cdc {
            let c = c.map_err(|e| match e {
                fastcdc::v2020::Error::IoError(e) => io_err(e),
                other => io_err(std::io::Error::other(other.to_string())),
            })?;
            total += c.length as u64;
            f(c.data)?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_depend_on_seed_and_cover_input() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let p = ChunkParams {
            min: 64 * 1024,
            avg: 256 * 1024,
            max: 1024 * 1024,
            seed: 1,
        };
        let mut a = Vec::new();
        p.split(
            &data[..],
            |c| {
                a.push(c.len());
                Ok::<_, std::io::Error>(())
            },
            |e| e,
        )
        .unwrap();
        assert_eq!(a.iter().sum::<usize>(), data.len());
        let mut b = Vec::new();
        ChunkParams { seed: 2, ..p }
            .split(
                &data[..],
                |c| {
                    b.push(c.len());
                    Ok::<_, std::io::Error>(())
                },
                |e| e,
            )
            .unwrap();
        assert_ne!(a, b);
        insta::assert_debug_snapshot!("chunk_boundaries_seed1", a);
    }
}
