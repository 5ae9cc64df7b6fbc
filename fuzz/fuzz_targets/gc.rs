//! Deletion notices, their companions, protection records (decrypted JSON) and session
//! object names.
#![no_main]
use holdfast_engine::gc::{Companion, Notice};
use holdfast_engine::protect::Protection;
use holdfast_engine::session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = serde_json::from_slice::<Notice>(data) {
        let again: Notice = serde_json::from_slice(&serde_json::to_vec(&n).unwrap()).unwrap();
        assert_eq!(again, n);
    }
    if let Ok(c) = serde_json::from_slice::<Companion>(data) {
        let again: Companion = serde_json::from_slice(&serde_json::to_vec(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }
    if let Ok(p) = serde_json::from_slice::<Protection>(data) {
        let again: Protection =
            serde_json::from_slice(&serde_json::to_vec(&p).unwrap()).unwrap();
        assert_eq!(again, p);
        if let Some(l) = &p.lock {
            let _ = l.retain_until(i64::MAX);
            let _ = l.retain_until(i64::MIN);
        }
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Some((sid, seq)) = session::parse_name(s)
    {
        assert_eq!(session::object_name(sid, seq), s);
    }
});
