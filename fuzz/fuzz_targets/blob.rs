//! Blob payloads: the compression flag and zstd frames.
#![no_main]
use holdfast_engine::pack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&n, rest)) = data.split_first() {
        let _ = pack::decompress(rest, n as usize * 1024);
    }
    let c = pack::compress(data, 3);
    assert_eq!(pack::decompress(&c, data.len()).expect("round trip"), data);
});
