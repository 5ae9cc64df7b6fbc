//! Recovery-point manifests (decrypted JSON, `Manifest::from_json`).
//!
//! Checks: decoding never panics; what decodes re-encodes (`to_json`) to JSON that decodes
//! to the same manifest, and re-encoding is stable; the retention time is the point's time
//! (no storage time is ever read from the JSON).
#![no_main]
use holdfast_engine::point::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_json(data) {
        assert_eq!(m.stored_ns, None);
        assert_eq!(m.retention_time_ns(), m.time_ns);
        let enc = m.to_json();
        let again = Manifest::from_json(&enc).expect("re-decode");
        assert_eq!(again, m);
        assert_eq!(again.to_json(), enc);
    }
});
