//! Recovery-point manifests (decrypted JSON).
#![no_main]
use holdfast_engine::point::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_json(data) {
        let again = Manifest::from_json(&m.to_json()).expect("re-decode");
        assert_eq!(again, m);
    }
});
