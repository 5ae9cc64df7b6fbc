//! Attacks by a compromised backup host (a write-only key and create-only storage access) on
//! the recovery points already in a vault, each run through the real binary against a real
//! vault (docs/format.md 15.4). Every attack here lost data with format version 2.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use holdfast_engine::index::{self, IndexedPack};
use holdfast_engine::internals::pack::PackBuilder;
use holdfast_engine::keys;
use holdfast_engine::{Id, KeylessVault};
use holdfast_storage::local::LocalStorage;
use holdfast_storage::{Handle, Kind, Storage};

fn backup_only_key(env: &Env) -> std::path::PathBuf {
    let kf = env.path("backup-only.key");
    env.ok(&[
        "key",
        "create-backup-only",
        "--output",
        kf.to_str().unwrap(),
    ]);
    kf
}

/// What the attacker does with nothing but the write-only key file and create rights: for
/// every blob the index lists, create a junk pack whose (well-formed, authenticated) header
/// claims that blob, and `copies` index objects that say the junk packs hold every blob — so
/// that, in whatever order storage lists index objects, a forgery almost surely comes first.
/// Nothing is modified or deleted. Returns the junk pack names.
fn forge_junk_locations(vault: &str, key_file: &Path, copies: usize) -> Vec<Id> {
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(vault.into()));
    let material = keys::decode_key_file(&std::fs::read(key_file).unwrap()).unwrap();
    let v = KeylessVault::open(storage.clone())
        .unwrap()
        .unlock_material(material)
        .unwrap();
    assert!(v.load_index().unwrap().is_empty());
    let km = v.key_material();
    let mut junk: Vec<IndexedPack> = Vec::new();
    let mut claims = Vec::new();
    {
        let idx = v.index();
        for loc in idx.blobs() {
            claims.push(loc.entry);
        }
    }
    for (n, e) in claims.into_iter().enumerate() {
        let mut pb = PackBuilder::new(&km.public_key(), 1 << 20);
        let garbage = random_bytes(777 + n as u64, e.raw_len as usize);
        pb.add_plain(e.ty, e.id, &garbage, 0);
        let p = pb.finish(km.index_key());
        storage
            .create(&Handle::new(Kind::Pack, p.id.to_hex()), &p.bytes)
            .unwrap();
        junk.push(IndexedPack {
            id: p.id,
            size: p.bytes.len() as u64,
            wrapped: p.wrapped,
            entries: p.entries,
        });
    }
    for _ in 0..copies {
        let data = index::encode(&junk, km.index_key());
        storage
            .create(
                &Handle::new(Kind::Index, Id::of_stored(&data).to_hex()),
                &data,
            )
            .unwrap();
    }
    junk.into_iter().map(|p| p.id).collect()
}

fn pack_exists(vault: &str, id: &Id) -> bool {
    let h = id.to_hex();
    Path::new(vault)
        .join("packs")
        .join(&h[..2])
        .join(&h)
        .exists()
}

/// Attack 1 of the review: forged index entries and pack headers from a write-only key.
/// Before: restore failed (the first indexed location won, no fallback), and `forget` +
/// `prune` with the full key deleted the real data packs. Now: reads fall back to the
/// location that authenticates, verify names the forged entries, and prune authenticates
/// before it relies on a copy — it deletes the junk, never the data.
#[test]
fn forged_index_entries_never_make_prune_delete_live_data() {
    let env = Env::new();
    env.init();
    let keep = env.path("keep");
    write_gen(&keep, 11, 3, 700_000);
    env.ok(&["backup", keep.to_str().unwrap(), "--resource", "keep"]);
    let drop = env.path("drop");
    write_gen(&drop, 12, 2, 300_000);
    let d = env.json(&["backup", drop.to_str().unwrap(), "--resource", "drop"]);
    let kf = backup_only_key(&env);

    let junk = forge_junk_locations(&env.vault, &kf, 63);
    assert!(junk.len() >= 4, "{junk:?}");

    // The kept point restores, whatever location the index lists first.
    let t = env.path("out1");
    env.ok(&["restore", "latest:keep", "--target", t.to_str().unwrap()]);
    assert_same_tree(&keep, &restored(&t, &keep));

    // verify --read-data names the forged entries but no point is affected.
    let o = env.run(&["--json", "verify", "--read-data"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["report"]["affected"].as_array().unwrap().is_empty(),
        "a point is reported affected although an intact copy exists: {v}"
    );
    let problems = v["report"]["problems"].to_string();
    assert!(problems.contains("does not authenticate"), "{v}");

    // forget + prune with the full key: the junk goes, the data stays.
    env.ok(&["forget", &d["point"].as_str().unwrap()[..16]]);
    let p = env.json(&["prune"]);
    for j in &junk {
        assert!(!pack_exists(&env.vault, j), "junk pack {j:?} kept: {p}");
    }
    let t = env.path("out2");
    env.ok(&["restore", "latest:keep", "--target", t.to_str().unwrap()]);
    assert_same_tree(&keep, &restored(&t, &keep));
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
}

/// Attack 1, repaired: `repair index` reads every pack and drops the forged entries (it did
/// not fix the vault before); afterwards verify is clean and the point restores.
#[test]
fn repair_index_removes_forged_entries() {
    let env = Env::new();
    env.init();
    let keep = env.path("keep");
    write_gen(&keep, 21, 2, 500_000);
    env.ok(&["backup", keep.to_str().unwrap()]);
    let kf = backup_only_key(&env);
    forge_junk_locations(&env.vault, &kf, 15);
    let r = env.json(&["repair", "index"]);
    assert!(r["entries_dropped"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["read_data"], true, "{r}");
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    let t = env.path("out");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&keep, &restored(&t, &keep));
    // The next prune deletes the junk packs, now unused.
    let p = env.json(&["prune"]);
    assert!(p["unused_packs"].as_u64().unwrap() >= 2, "{p}");
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
}

fn plant(env: &Env, name: &str, bytes: &[u8]) {
    let p = Path::new(&env.vault).join("sessions").join(name);
    std::fs::write(p, bytes).unwrap();
}

/// After a backup of `d` was refused: no point, a clean vault, and a rerun that works.
fn check_refused_then_rerun(env: &Env, o: &std::process::Output, d: &Path) {
    assert_ne!(
        code(o),
        0,
        "the backup reported success although its session was tampered with: {}",
        stdout(o)
    );
    assert!(env.json(&["points"]).as_array().unwrap().is_empty());
    let p = env.json(&["prune", "--abandon-after", "1s", "--max-wait", "30s"]);
    assert!(p["pending"].as_array().unwrap().is_empty(), "{p}");
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    env.ok(&["backup", d.to_str().unwrap()]);
    let t = env.path("out");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(d, &restored(&t, d));
}

/// Attack 2 of the review: an empty end marker, created with no key at all for a running
/// backup's session, let a waiting prune sweep at once; the backup then said "saved" (exit 0)
/// and its point did not restore. Now end markers are authenticated with the session's own
/// key: the prune keeps waiting, and the backup, finding its session ended behind its back,
/// refuses to commit.
#[test]
fn a_forged_end_marker_neither_releases_prune_nor_lets_the_backup_commit() {
    let mut env = Env::new();
    env.extra_env = vec![("HOLDFAST_HEARTBEAT_SECS".into(), "0.2".into())];
    env.init();
    let d = bait(&env, 48);
    let (child, sid) = frozen_backup(&env, &d);
    plant(&env, &format!("{sid}ffffffff"), b"");
    // The session is frozen, so its heartbeat stands still, but not for 60 s: a prune that
    // honours only authenticated end markers must leave its notice pending.
    let p = env.json(&["prune", "--abandon-after", "60s", "--max-wait", "2s"]);
    assert_eq!(
        p["deleted_packs"].as_u64().unwrap(),
        0,
        "prune swept although the backup was still running: {p}"
    );
    assert_eq!(p["pending"].as_array().unwrap().len(), 1, "{p}");
    let o = resume(child);
    assert!(
        stderr(&o).contains("ended by someone else"),
        "{}",
        stderr(&o)
    );
    check_refused_then_rerun(&env, &o, &d);
}

/// A forged claim (`commit` or `abandon` written without the keys that authenticate them)
/// takes the claim slot of a running backup: the backup must fail, never report success;
/// a prune counts the session as over (it can never commit) and loses nothing.
#[test]
fn forged_claims_make_the_backup_fail_not_lie() {
    for forged in [&b"abandon"[..], b"commit"] {
        let mut env = Env::new();
        env.extra_env = vec![("HOLDFAST_HEARTBEAT_SECS".into(), "0.2".into())];
        env.init();
        let d = bait(&env, 48);
        let (child, sid) = frozen_backup(&env, &d);
        plant(&env, &format!("{sid}fffffffe"), forged);
        let p = env.json(&["prune", "--abandon-after", "60s", "--max-wait", "2s"]);
        assert!(p["pending"].as_array().unwrap().is_empty(), "{p}");
        let o = resume(child);
        assert!(
            stderr(&o).contains("nothing was committed"),
            "exit {:?}: {} {}",
            o.status,
            stderr(&o),
            stdout(&o)
        );
        check_refused_then_rerun(&env, &o, &d);
    }
}

/// Forged heartbeats (empty objects, as format 2 wrote them) do not keep a dead session
/// alive, and planted start markers that do not open hold nothing back.
#[test]
fn forged_heartbeats_and_planted_sessions_do_not_stall_prune() {
    let env = Env::new();
    env.init();
    let a = env.path("a");
    write_gen(&a, 5, 2, 200_000);
    let b = env.json(&["backup", a.to_str().unwrap()]);
    env.ok(&["forget", &b["point"].as_str().unwrap()[..16]]);
    let fake = "0123456789abcdef0123456789abcdef";
    plant(&env, &format!("{fake}00000000"), b"not sealed to the vault");
    for n in 1..20 {
        plant(&env, &format!("{fake}{n:08x}"), b"");
    }
    let p = env.json(&["prune", "--abandon-after", "30s", "--max-wait", "3s"]);
    assert!(p["pending"].as_array().unwrap().is_empty(), "{p}");
    assert!(p["deleted_packs"].as_u64().unwrap() > 0, "{p}");
    // The planted family is cleaned up by the prune.
    let left: Vec<_> = std::fs::read_dir(Path::new(&env.vault).join("sessions"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(fake))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let v = env.json(&["verify"]);
    assert_eq!(v["ok"], true, "{v}");
}

/// Attack 6 of the review: a point whose writer claims a time six months ago could be
/// forgotten at once under a 35-day compliance lock (retention counted from the claimed
/// time). Now retention counts from the later of the claimed time and the time the storage
/// wrote the point, which a writer with create-only credentials cannot choose.
#[test]
fn a_backdated_point_is_still_retained_for_the_lock_minimum() {
    let env = Env::new();
    env.init();
    env.ok(&[
        "lock",
        "set",
        "--mode",
        "compliance",
        "--min-retention",
        "35d",
        "--cooling-off",
        "1h",
    ]);
    let kf = backup_only_key(&env);
    let mut wo = Env::new();
    wo.vault = env.vault.clone();
    wo.extra_env = vec![("HOLDFAST_KEY_FILE".into(), kf.display().to_string())];
    let d = env.path("src");
    write_gen(&d, 31, 1, 10_000);
    let six_months_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 182);
    let mut c = wo.std_cmd();
    c.env_remove("HOLDFAST_PASSPHRASE");
    let o = c
        .args([
            "backup",
            d.to_str().unwrap(),
            "--resource",
            "payroll",
            "--time",
            &six_months_ago.to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = env.run(&["forget", "latest:payroll"]);
    assert_eq!(
        code(&o),
        11,
        "a backdated point escaped the lock: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("compliance lock"), "{}", stderr(&o));
    let f = env.json(&["forget", "--keep-last", "0", "--keep-within", "1d"]);
    assert!(f["forget"].as_array().unwrap().is_empty(), "{f}");
    assert_eq!(env.json(&["points"]).as_array().unwrap().len(), 1);
}

/// Attack 7 of the review: deleting the newest `policy/` object silently turned a compliance
/// lock back into its earlier state (on storage without Object Lock). Now every full-key
/// host records the newest protection record it has seen beside its local cache, and a chain
/// that ends before it is reported as a rollback: forget, lock and hold refuse to act.
#[test]
fn a_rolled_back_vault_lock_is_reported() {
    let env = Env::new();
    env.init();
    env.ok(&["hold", "add", "audit", "--reason", "first"]);
    env.ok(&[
        "lock",
        "set",
        "--mode",
        "compliance",
        "--min-retention",
        "7y",
        "--cooling-off",
        "1h",
    ]);
    let show = env.json(&["lock", "show"]);
    assert_eq!(show["lock"]["mode"], "compliance", "{show}");
    let d = env.path("src");
    write_gen(&d, 41, 1, 1000);
    env.ok(&["backup", d.to_str().unwrap()]);
    // The attacker deletes the newest record: the chain now ends with "no lock".
    let newest = Path::new(&env.vault)
        .join("policy")
        .join(format!("{:016x}", 1));
    std::fs::remove_file(&newest).unwrap();
    for args in [vec!["lock", "show"], vec!["forget", "latest"]] {
        let o = env.run(&args);
        assert_eq!(code(&o), 4, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("rolled back"), "{}", stderr(&o));
    }
    assert_eq!(env.json(&["points"]).as_array().unwrap().len(), 1);
    let o = env.run(&["verify"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
}
