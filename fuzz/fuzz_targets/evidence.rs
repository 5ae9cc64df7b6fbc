//! Evidence envelopes (the plaintext of an evidence object, `evidence::open`, docs/format.md
//! 11.5) and the records they carry.
//!
//! Checks: opening never panics; what opens re-seals by the same owner to an envelope that
//! opens to the same JSON; the input sealed as a record's JSON opens to exactly itself, while
//! one flipped byte anywhere, another vault's id or a truncation never opens; a record that
//! decodes re-encodes to one that decodes the same.
#![no_main]
use std::sync::LazyLock;

use ed25519_dalek::SigningKey;
use holdfast_engine::evidence::{self, Evidence};
use libfuzzer_sys::fuzz_target;

const VAULT: [u8; 16] = [5; 16];

static OWNER: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&[9; 32]));

fuzz_target!(|data: &[u8]| {
    let vk = OWNER.verifying_key();
    if let Ok(json) = evidence::open(data, &VAULT, &vk) {
        let again = evidence::seal(json, &VAULT, &OWNER);
        assert_eq!(evidence::open(&again, &VAULT, &vk).expect("re-open"), json);
        if let Ok(e) = serde_json::from_slice::<Evidence>(json) {
            let enc = serde_json::to_vec(&e).expect("encode");
            let back: Evidence = serde_json::from_slice(&enc).expect("re-decode");
            assert_eq!(serde_json::to_vec(&back).expect("encode"), enc);
        }
    }
    let sealed = evidence::seal(data, &VAULT, &OWNER);
    assert_eq!(evidence::open(&sealed, &VAULT, &vk).expect("own seal"), data);
    assert!(evidence::open(&sealed, &[6; 16], &vk).is_err());
    let at = data.first().map_or(0, |b| *b as usize) % sealed.len();
    let mut flipped = sealed.clone();
    flipped[at] ^= 0x80;
    assert!(evidence::open(&flipped, &VAULT, &vk).is_err());
    assert!(evidence::open(&sealed[..sealed.len() - 1], &VAULT, &vk).is_err());
});
