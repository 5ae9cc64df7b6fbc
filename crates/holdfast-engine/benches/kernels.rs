//! Criterion benchmarks of the backup kernels: chunking, blob ids, compress+encrypt into a
//! pack, and decrypt+decompress. Run: `cargo bench -p holdfast-engine`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use holdfast_engine::chunker::ChunkParams;
use holdfast_engine::id::Id;
use holdfast_engine::internals::crypto::{self, SecretKey};
use holdfast_engine::internals::pack::{self, BlobType, PackBuilder};

fn data(len: usize) -> Vec<u8> {
    // Half incompressible, half text-like: closer to real backups than either alone.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut v: Vec<u8> = (0..len / 2)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let text = b"the quick brown fox jumps over the lazy dog 0123456789\n";
    while v.len() < len {
        v.extend_from_slice(text);
    }
    v.truncate(len);
    v
}

fn kernels(c: &mut Criterion) {
    let buf = data(32 << 20);
    let mut g = c.benchmark_group("kernels");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.sample_size(10);
    let params = ChunkParams {
        min: 512 << 10,
        avg: 1 << 20,
        max: 8 << 20,
        seed: 42,
    };
    g.bench_function("fastcdc_split_32MiB", |b| {
        b.iter(|| black_box(params.split_slice(&buf)))
    });
    let key = [7u8; 32];
    g.bench_function("blake3_keyed_32MiB", |b| {
        b.iter(|| black_box(blake3::keyed_hash(&key, &buf)))
    });
    let sk = SecretKey::generate();
    let pk = sk.public();
    let chunks = params.split_slice(&buf);
    g.bench_function("compress_encrypt_pack_32MiB", |b| {
        b.iter(|| {
            let mut pb = PackBuilder::new(&pk, 40 << 20);
            for &(o, l) in &chunks {
                pb.add_plain(BlobType::Data, Id([1; 32]), &buf[o..o + l], 3);
            }
            black_box(pb.len())
        })
    });
    let mut pb = PackBuilder::new(&pk, 40 << 20);
    for (i, &(o, l)) in chunks.iter().enumerate() {
        pb.add_plain(BlobType::Data, Id([i as u8; 32]), &buf[o..o + l], 3);
    }
    let fp = pb.finish(&crypto::SymKey::generate());
    let dk = crypto::unwrap(&sk, &fp.wrapped).unwrap();
    g.bench_function("decrypt_decompress_32MiB", |b| {
        b.iter(|| {
            for e in &fp.entries {
                let stored = fp.bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec();
                black_box(pack::open_blob(&dk, e, stored).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
