//! Tree blobs (`Tree::decode`).
//!
//! Checks: decoding never panics; what decodes has sorted, unique names that cannot escape
//! a restore target; it re-encodes (`Tree::encode`) to exactly the input unless an owner or
//! group name was not UTF-8 (decoded lossily), and in any case to bytes that decode to the
//! same tree.
#![no_main]
use holdfast_engine::tree::Tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut t) = Tree::decode(data) else {
        return;
    };
    for w in t.nodes.windows(2) {
        assert!(w[0].name < w[1].name, "names not sorted and unique");
    }
    for n in &t.nodes {
        assert!(!n.name.is_empty() && n.name != b"." && n.name != b"..");
        assert!(!n.name.iter().any(|&b| b == b'/' || b == 0));
    }
    // Writer::bytes16 truncates at 65535 bytes: a lossily decoded name can grow past it.
    let fits = t
        .nodes
        .iter()
        .all(|n| n.user.len() <= u16::MAX as usize && n.group.len() <= u16::MAX as usize);
    let before = t.clone();
    let enc = t.encode();
    assert_eq!(t, before, "encode reordered a decoded tree");
    if enc != data {
        assert!(
            t.nodes
                .iter()
                .any(|n| n.user.contains('\u{fffd}') || n.group.contains('\u{fffd}')),
            "re-encoding changed a tree without lossy names"
        );
    }
    if fits {
        assert_eq!(Tree::decode(&enc).expect("re-decode"), t);
    }
});
