//! Session markers (`sessions/<sid><seq>`): object names (`session::parse_name`,
//! `session::list`), start markers (sealed JSON, `session::read_start`) and the
//! authentication of every marker (`session::assess`, `session::check_all`).
//!
//! Input: a mode byte, then
//! * even: newline-separated object names, stored (empty or with the bytes after a `=`)
//!   in a memory store; `list` must group exactly the names `parse_name` accepts, with
//!   consistent flags and sorted heartbeats, and `parse_name` must round-trip through
//!   `object_name`; `check_all` never panics and never calls a marker of a session
//!   without a valid start marker authentic;
//! * odd: the JSON content of a start marker, sealed to the vault key as a session does
//!   and stored as a start marker; `read_start` must open it exactly when the JSON has the
//!   session's fields and a 64-hex-digit key (as a mirror of the engine's private
//!   `StartMarker` reads it), with the same `SessionInfo`; forged markers
//!   of that session are never counted by `assess` and (one input in four) are reported by
//!   `check_all`.
#![no_main]
use std::sync::LazyLock;

use holdfast_engine::internals::crypto::{self, DataKey, SecretKey, WRAPPED_LEN};
use holdfast_engine::session::{self, CLAIM, Claim, END, SessionInfo};
use holdfast_storage::memory::MemoryStorage;
use holdfast_storage::{Handle, Kind, Storage};
use libfuzzer_sys::fuzz_target;

/// The associated data of start markers (session.rs `AAD`).
const AAD: &[u8] = b"holdfast v2 session";
const SID: &str = "0123456789abcdef0123456789abcdef";

struct Keys {
    secret: SecretKey,
    dk: DataKey,
    wrapped: [u8; WRAPPED_LEN],
}

/// One wrapped data key, reused: sealing is then one AES-GCM call (`seal_to` makes a fresh
/// one per message; the bytes have the same layout).
static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let secret = SecretKey::generate();
    let dk = DataKey::generate();
    let wrapped = crypto::wrap(&secret.public(), &dk);
    let k = Keys {
        secret,
        dk,
        wrapped,
    };
    // The harness must still produce start markers the engine opens.
    let good = format!(
        r#"{{"purpose":"backup","host":"h","pid":1,"started":0,"key":"{}"}}"#,
        "00".repeat(32)
    );
    let st = MemoryStorage::new();
    st.create(&Handle::new(Kind::Session, session::object_name(SID, 0)), &seal(&k, good.as_bytes()))
        .unwrap();
    assert!(
        session::read_start(&st, &k.secret, SID).unwrap().is_some(),
        "the harness's start marker layout no longer matches the engine"
    );
    k
});

fn seal(k: &Keys, plain: &[u8]) -> Vec<u8> {
    let mut body = plain.to_vec();
    k.dk.encrypt(0, AAD, &mut body);
    [k.wrapped.as_slice(), &body].concat()
}

fn names(data: &[u8]) {
    let st = MemoryStorage::new();
    let mut stored = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let (name, content) = match line.iter().position(|&b| b == b'=') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if let Some((sid, seq)) = session::parse_name(name) {
            assert_eq!(session::object_name(sid, seq), name);
            assert_eq!(sid.len(), 32);
        }
        if Handle::valid_name(name)
            && st.create(&Handle::new(Kind::Session, name), content).is_ok()
        {
            stored.push(name.to_string());
        }
    }
    let listed = session::list(&st).expect("list");
    let parsed: Vec<(&str, u32)> = stored.iter().filter_map(|n| session::parse_name(n)).collect();
    assert_eq!(listed.values().map(|s| s.objects.len()).sum::<usize>(), parsed.len());
    for (sid, s) in &listed {
        assert_eq!(&s.sid, sid);
        let seqs: Vec<u32> = parsed.iter().filter(|p| p.0 == sid).map(|p| p.1).collect();
        assert_eq!(s.started, seqs.contains(&0));
        assert_eq!(s.claimed, seqs.contains(&CLAIM));
        assert_eq!(s.ended, seqs.contains(&END));
        assert!(s.beats.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.beat, s.beats.last().copied().unwrap_or(0));
        let a = session::assess(&st, &KEYS.secret, s, None).expect("assess");
        assert!(a.info.is_none() && a.beat == 0 && !a.ended);
        assert_ne!(a.claim, Claim::Commit);
    }
    let _ = session::check_all(&st, &KEYS.secret).expect("check_all");
}

/// The engine's `StartMarker`, mirrored: what a start marker must contain to open.
#[derive(serde::Deserialize)]
struct Mirror {
    #[serde(flatten)]
    info: SessionInfo,
    key: String,
}

fn start_marker(json: &[u8]) {
    let st = MemoryStorage::new();
    st.create(&Handle::new(Kind::Session, session::object_name(SID, 0)), &seal(&KEYS, json))
        .unwrap();
    let opened = session::read_start(&st, &KEYS.secret, SID).expect("read_start");
    let expected = serde_json::from_slice::<Mirror>(json).ok().filter(|m| {
        let mut k = [0u8; 32];
        hex::decode_to_slice(&m.key, &mut k).is_ok()
    });
    assert_eq!(
        opened.as_ref().map(|o| &o.info),
        expected.as_ref().map(|m| &m.info),
        "read_start disagrees with the start marker's layout"
    );
    // Each read opens the start marker with an X25519 exchange, which dominates the cost:
    // the second read and `check_all` run on one input in four (by length).
    let thorough = json.len() % 4 == 0;
    if let Some(o) = &opened
        && thorough
    {
        assert_eq!(session::read_info(&st, &KEYS.secret, SID).as_ref(), Some(&o.info));
    }
    // Markers nobody with the session's key wrote: never counted, always reported.
    for seq in [1, 2, CLAIM, END] {
        st.create(&Handle::new(Kind::Session, session::object_name(SID, seq)), json)
            .unwrap();
    }
    let listed = session::list(&st).expect("list");
    let a = session::assess(&st, &KEYS.secret, &listed[SID], opened.as_ref()).expect("assess");
    assert!(a.beat == 0 && !a.ended);
    if a.claim == Claim::Abandon {
        // The input is the full key's own abandon claim: libFuzzer copies the operands of
        // comparisons into inputs (`-use_cmp`), so it can learn a MAC the engine compares
        // against. A forger without the secret cannot.
        return;
    }
    assert_eq!(a.claim, Claim::Forged);
    if thorough {
        let problems = session::check_all(&st, &KEYS.secret).expect("check_all");
        assert!(!problems.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    LazyLock::force(&KEYS);
    if mode & 1 == 0 {
        names(rest);
    } else {
        start_marker(rest);
    }
});
