//! Signed manifest envelopes (the plaintext of a format-4 point, `identity::open_manifest`,
//! docs/format.md 11.4) and the writer certificates they carry (5.6).
//!
//! Checks: opening never panics; bare JSON (no `HFPM\x01` magic) is `Unsigned` and returned
//! whole; what opens as `Owner` or `Writer` re-seals with that signer into an envelope that
//! opens to the same JSON and attribution; and (for one input in four, by length) the input,
//! sealed as the JSON of an envelope by the owner or by a writer, opens to exactly that input and signer, while one flipped
//! byte of the signature makes it `Forged` and a truncation is never trusted.
#![no_main]
use std::sync::LazyLock;

use holdfast_engine::identity::{self, Attribution, ENVELOPE_MAGIC};
use holdfast_engine::keys::KeyMaterial;
use libfuzzer_sys::fuzz_target;

const VAULT: [u8; 16] = [3; 16];

struct Keys {
    owner: KeyMaterial,
    writer: KeyMaterial,
    vk: ed25519_dalek::VerifyingKey,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let owner = KeyMaterial::generate(VAULT);
    let writer = owner
        .issue_writer("db1", vec!["db1:*".into()], 1_700_000_000)
        .expect("full key")
        .expect("issue");
    let vk = owner.owner_verifying_key().expect("full key");
    Keys { owner, writer, vk }
});

fn trusted(a: &Attribution) -> bool {
    matches!(a, Attribution::Owner | Attribution::Writer { .. })
}

fuzz_target!(|data: &[u8]| {
    let k = &*KEYS;
    match identity::open_manifest(data, &VAULT, &k.vk) {
        Ok((json, a)) => {
            if !data.starts_with(ENVELOPE_MAGIC) {
                assert_eq!(a, Attribution::Unsigned);
                assert_eq!(json, data);
            } else {
                assert_ne!(a, Attribution::Unsigned);
            }
            if trusted(&a) {
                let signer = match a {
                    Attribution::Owner => k.owner.signer(),
                    _ => k.writer.signer(),
                }
                .expect("signer");
                let again = identity::seal_manifest(json, &VAULT, &signer);
                let (j2, a2) = identity::open_manifest(&again, &VAULT, &k.vk).expect("re-open");
                assert_eq!(j2, json);
                // A valid writer envelope from the input names the fuzz writer only if it was
                // signed by it; compare the kind.
                assert_eq!(
                    matches!(a2, Attribution::Owner),
                    matches!(a, Attribution::Owner)
                );
            }
        }
        Err(_) => assert!(data.starts_with(ENVELOPE_MAGIC)),
    }
    // Signing and verifying dominate the cost (the parser is what is fuzzed): the sealing
    // checks run on one input in four (by length), with one signer, and one tampering.
    if data.len() % 8 > 1 {
        return;
    }
    let m = if data.len() % 16 < 8 { &k.owner } else { &k.writer };
    let sealed = identity::seal_manifest(data, &VAULT, &m.signer().expect("signer"));
    let (json, a) = identity::open_manifest(&sealed, &VAULT, &k.vk).expect("open own");
    assert_eq!(json, data);
    assert!(trusted(&a), "{a:?}");
    if data.len() % 8 == 0 {
        let mut bad = sealed.clone();
        let last = bad.len() - 1 - (data.len() % 64);
        bad[last] ^= 1;
        let (_, a) = identity::open_manifest(&bad, &VAULT, &k.vk).expect("structure intact");
        assert!(matches!(a, Attribution::Forged { .. }), "{a:?}");
    } else {
        let cut = &sealed[..sealed.len() - 1 - data.len() % 8];
        if let Ok((_, a)) = identity::open_manifest(cut, &VAULT, &k.vk) {
            assert!(!trusted(&a), "{a:?}");
        }
    }
});
