//! `holdfast migrate`: a format-2 or format-3 vault is refused with the command that converts
//! it, and the conversion keeps every point restorable, abandons the sessions a format-2
//! writer left open, and trusts the unsigned points stored before it — not those after.

mod common;

use std::path::Path;

use common::*;
use holdfast_engine::config::VaultConfig;
use holdfast_engine::keys;

/// Turn a freshly written vault back into format version `version`: its points become bare
/// manifests (as formats 2 and 3 stored them); other objects are the same bytes, apart from
/// session markers.
fn downgrade(env: &Env, version: u32) {
    let v = forge::full_vault(env);
    let (points, _) = v.list_points().unwrap();
    for (id, m) in points {
        forge::plant_point(&env.vault, v.key_material(), &m.to_json());
        let h = id.to_hex();
        std::fs::remove_file(Path::new(&env.vault).join("points").join(&h)).unwrap();
    }
    set_version(&env.vault, b"correct horse", version);
}

fn set_version(vault: &str, passphrase: &[u8], version: u32) {
    let root = Path::new(vault);
    let (mut cfg, _) = VaultConfig::decode(&std::fs::read(root.join("config")).unwrap()).unwrap();
    let key = std::fs::read_dir(root.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let m = keys::open_key_object(&std::fs::read(key).unwrap(), passphrase).unwrap();
    cfg.version = version;
    std::fs::write(root.join("config"), cfg.encode_for(m.index_key())).unwrap();
}

#[test]
fn a_format_2_vault_is_refused_then_migrated() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, false);
    env.ok(&["backup", src.to_str().unwrap()]);
    downgrade(&env, 2);
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
        out.contains("converted from format version 2 to 4"),
        "{out}"
    );
    assert!(
        sessions.join(format!("{sid}fffffffe")).exists(),
        "the open session was not declared abandoned"
    );
    let again = env.ok(&["migrate"]);
    assert!(again.contains("already at format version 4"), "{again}");

    let t = env.path("out");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&t, &src));
    env.ok(&["prune"]);
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn a_format_3_vault_keeps_its_unsigned_points_and_trusts_no_new_ones() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, false);
    env.ok(&["backup", src.to_str().unwrap(), "--resource", "app"]);
    downgrade(&env, 3);
    let o = env.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("format version 3"), "{}", stderr(&o));
    assert!(stderr(&o).contains("holdfast migrate"), "{}", stderr(&o));

    let out = env.ok(&["migrate"]);
    assert!(
        out.contains("converted from format version 3 to 4"),
        "{out}"
    );
    let pts = env.json(&["points"]);
    assert_eq!(pts[0]["writer"]["kind"], "unsigned", "{pts}");
    assert_eq!(pts[0]["trusted"], true, "{pts}");
    let old = pts[0]["id"].as_str().unwrap().to_string();

    // After the conversion an unsigned point is a forgery, even a newer one of the resource.
    let json = forge::manifest_json(&env, &old, |m| m.time_ns += 1_000_000_000);
    let v = forge::full_vault(&env);
    let planted = forge::plant_point(&env.vault, v.key_material(), &json);
    let pts = env.json(&["points"]);
    let p = pts
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == planted.to_hex())
        .unwrap();
    assert_eq!(p["untrusted_because"]["kind"], "unsigned", "{p}");
    assert_eq!(v.find_point("latest:app").unwrap().0.to_hex(), old);
    let t = env.path("out");
    env.ok(&["restore", "latest:app", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&t, &src));
    let report = env.json_any(&["verify"]);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["report"]["untrusted"].as_array().unwrap().len(), 1);

    // New backups are signed by the owner.
    let b = env.json(&["backup", src.to_str().unwrap(), "--resource", "app"]);
    let (latest, m) = v.find_point("latest:app").unwrap();
    assert_eq!(latest.to_hex(), b["point"].as_str().unwrap());
    assert_eq!(m.attribution, holdfast_engine::identity::Attribution::Owner);
}
