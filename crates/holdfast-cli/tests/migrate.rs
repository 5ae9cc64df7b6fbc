//! `holdfast migrate`: a format-2 vault is refused with the command that converts it, and the
//! conversion keeps every point restorable and abandons the sessions left open.

mod common;

use std::path::Path;

use common::*;
use holdfast_engine::config::VaultConfig;
use holdfast_engine::keys;

/// Turn a freshly written vault back into format version 2 (its objects are the same bytes,
/// apart from session markers).
fn downgrade_to_v2(vault: &str, passphrase: &[u8]) {
    let root = Path::new(vault);
    let (mut cfg, _) = VaultConfig::decode(&std::fs::read(root.join("config")).unwrap()).unwrap();
    let key = std::fs::read_dir(root.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let m = keys::open_key_object(&std::fs::read(key).unwrap(), passphrase).unwrap();
    cfg.version = 2;
    std::fs::write(root.join("config"), cfg.encode_for(m.index_key())).unwrap();
}

#[test]
fn a_format_2_vault_is_refused_then_migrated() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, false);
    env.ok(&["backup", src.to_str().unwrap()]);
    downgrade_to_v2(&env.vault, b"correct horse");
    // A format-2 session left open (no end marker): empty markers, as format 2 wrote them.
    let sessions = Path::new(&env.vault).join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let sid = "00112233445566778899aabbccddeeff";
    std::fs::write(sessions.join(format!("{sid}00000000")), b"v2 start").unwrap();
    std::fs::write(sessions.join(format!("{sid}00000001")), b"").unwrap();

    let o = env.run(&["points"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("holdfast migrate"), "{}", stderr(&o));
    assert!(stderr(&o).contains("format version 2"), "{}", stderr(&o));

    let out = env.ok(&["migrate"]);
    assert!(
        out.contains("converted from format version 2 to 3"),
        "{out}"
    );
    assert!(
        sessions.join(format!("{sid}fffffffe")).exists(),
        "the open session was not declared abandoned"
    );
    let again = env.ok(&["migrate"]);
    assert!(again.contains("already at format version 3"), "{again}");

    let t = env.path("out");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&t, &src));
    env.ok(&["prune"]);
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
}
