//! Vault lifecycle through the real binary: forget by policy, prune, locks and holds, copy
//! between vaults (local and S3), repair index, and prune racing concurrent backups.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

fn ids(env: &Env) -> Vec<String> {
    env.json(&["points"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

fn vault_bytes(env: &Env) -> u64 {
    env.vault_files()
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn forget_by_policy_then_prune_frees_space_and_keeps_the_rest_intact() {
    let env = Env::new();
    env.init();
    // Ten daily generations, each a fresh folder (all data unique per day).
    let mut dirs = BTreeMap::new();
    for day in 1..=10u64 {
        let d = env.path(&format!("day{day:02}"));
        write_gen(&d, day, 3, 200_000);
        let out = env.json(&[
            "backup",
            d.to_str().unwrap(),
            "--resource",
            "app",
            "--time",
            &format!("2026-03-{day:02}T10:00:00Z"),
        ]);
        dirs.insert(out["point"].as_str().unwrap().to_string(), d);
    }
    // Dry run changes nothing.
    let dry = env.json(&[
        "forget",
        "--keep-daily",
        "3",
        "--timezone",
        "UTC",
        "--dry-run",
    ]);
    assert_eq!(dry["forget"].as_array().unwrap().len(), 7);
    assert_eq!(ids(&env).len(), 10);
    let f = env.json(&["forget", "--keep-daily", "3", "--timezone", "UTC"]);
    let kept: Vec<&str> = f["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["time"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            "2026-03-10T10:00:00Z",
            "2026-03-09T10:00:00Z",
            "2026-03-08T10:00:00Z"
        ]
    );
    assert_eq!(f["keep"][0]["reasons"][0], "daily 2026-03-10");
    assert_eq!(ids(&env).len(), 3);
    let before = vault_bytes(&env);
    let dry = env.json(&["prune", "--dry-run"]);
    assert_eq!(dry["deleted_packs"], 0);
    assert!(dry["condemned_packs"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(vault_bytes(&env), before);
    let p = env.json(&["prune"]);
    assert!(p["freed_bytes"].as_u64().unwrap() > 3_500_000, "{p}");
    assert!(p["pending"].as_array().unwrap().is_empty(), "{p}");
    let after = vault_bytes(&env);
    assert!(after < before / 2, "{before} -> {after}");
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    for id in ids(&env) {
        let t = env.path(&format!("r-{id}"));
        env.ok(&["restore", &id[..12], "--target", t.to_str().unwrap()]);
        let src = &dirs[&id];
        assert_same_tree(src, &restored(&t, src));
    }
    // A second prune finds nothing to do.
    let p2 = env.json(&["prune"]);
    assert_eq!(p2["condemned_packs"], 0, "{p2}");
}

#[test]
fn prune_repacks_partly_used_packs() {
    let env = Env::new();
    env.init();
    // One backup of many small files lands in few packs; then most files go.
    let d = env.path("src");
    write_gen(&d, 1, 40, 60_000);
    env.ok(&["backup", d.to_str().unwrap(), "--resource", "r"]);
    for i in 0..34 {
        std::fs::remove_file(d.join(format!("f{i}.bin"))).unwrap();
    }
    env.ok(&["backup", d.to_str().unwrap(), "--resource", "r"]);
    env.ok(&["forget", "--keep-last", "1"]);
    let p = env.json(&["prune"]);
    assert!(p["repacked_packs"].as_u64().unwrap() >= 1, "{p}");
    assert!(p["freed_bytes"].as_u64().unwrap() > 1_500_000, "{p}");
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    let t = env.path("out");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&d, &restored(&t, &d));
}

#[test]
fn locks_and_holds_protect_points() {
    let env = Env::new();
    env.init();
    let d = env.path("src");
    write_gen(&d, 7, 2, 50_000);
    for day in 1..=4 {
        env.ok(&[
            "backup",
            d.to_str().unwrap(),
            "--resource",
            if day % 2 == 0 { "db" } else { "files" },
            "--time",
            &format!("2020-01-0{day}T00:00:00Z"),
        ]);
    }
    // A hold on the db resource.
    env.ok(&[
        "hold",
        "add",
        "case-42",
        "--resource",
        "db",
        "--reason",
        "litigation",
    ]);
    let o = env.run(&["forget", "latest:db"]);
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("legal hold \"case-42\""),
        "{}",
        stderr(&o)
    );
    let f = env.json(&["forget", "--keep-last", "1", "--timezone", "UTC"]);
    let protected: Vec<_> = f["keep"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["reasons"][0].as_str().unwrap().starts_with("protected"))
        .collect();
    assert_eq!(protected.len(), 1, "{f}"); // the older db point
    assert_eq!(ids(&env).len(), 3); // 2 db (held), newest files
    // Held points survive prune with their data.
    env.ok(&["prune"]);
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    let holds = env.json(&["hold", "list"]);
    assert_eq!(holds["holds"][0]["name"], "case-42");
    env.ok(&["hold", "release", "case-42"]);

    // Governance: forgetting needs the bypass, which is recorded.
    env.ok(&[
        "lock",
        "set",
        "--mode",
        "governance",
        "--min-retention",
        "100y",
    ]);
    let o = env.run(&["forget", "latest:db"]);
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(stderr(&o).contains("governance lock"), "{}", stderr(&o));
    let o = env.run(&[
        "lock",
        "set",
        "--mode",
        "governance",
        "--min-retention",
        "1d",
    ]);
    assert_eq!(code(&o), 11, "shortening needs the bypass");
    env.ok(&["forget", "latest:db", "--bypass-governance"]);
    let show = env.json(&["lock", "show"]);
    let actions: Vec<&str> = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("forget bypassing governance")),
        "{actions:?}"
    );
    assert_eq!(code(&env.run(&["lock", "remove"])), 11);
    env.ok(&["lock", "remove", "--bypass-governance"]);

    // Compliance: changeable during its cooling-off period, then never again.
    env.ok(&["backup", d.to_str().unwrap(), "--resource", "files"]);
    env.ok(&[
        "lock",
        "set",
        "--mode",
        "compliance",
        "--min-retention",
        "100y",
        "--cooling-off",
        "1s",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    for attempt in [
        vec!["lock", "remove"],
        vec!["lock", "remove", "--bypass-governance"],
        vec![
            "lock",
            "set",
            "--mode",
            "compliance",
            "--min-retention",
            "1d",
        ],
        vec![
            "lock",
            "set",
            "--mode",
            "governance",
            "--min-retention",
            "100y",
            "--bypass-governance",
        ],
        vec!["forget", "latest", "--bypass-governance"],
        vec!["forget", "--keep-last", "1", "--bypass-governance"],
        vec!["forget", "--keep-last", "1", "--resource", "files"],
    ] {
        let o = env.run(&attempt);
        if attempt[0] == "forget" && attempt[1] == "--keep-last" {
            // Policy forget keeps protected points and says why.
            assert_eq!(code(&o), 0, "{attempt:?}: {}", stderr(&o));
            assert!(stdout(&o).contains("compliance lock"), "{}", stdout(&o));
        } else {
            assert_eq!(code(&o), 11, "{attempt:?}: {}", stderr(&o));
        }
    }
    assert_eq!(ids(&env).len(), 3);
    let show = env.json(&["lock", "show"]);
    assert_eq!(show["lock"]["mode"], "compliance");
    assert_eq!(show["lock"]["min_retention"], "100y");
}

#[test]
fn write_only_keys_cannot_forget_prune_or_lock() {
    let env = Env::new();
    env.init();
    let kf = env.path("backup-only.key");
    env.ok(&[
        "key",
        "create-backup-only",
        "--output",
        kf.to_str().unwrap(),
    ]);
    let mut wo = Env::new();
    wo.vault = env.vault.clone();
    wo.extra_env = vec![("HOLDFAST_KEY_FILE".into(), kf.display().to_string())];
    let d = env.path("src");
    write_gen(&d, 3, 2, 10_000);
    let mut c = wo.std_cmd();
    c.env_remove("HOLDFAST_PASSPHRASE");
    assert!(
        c.args(["backup", d.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    for args in [
        vec!["forget", "--keep-last", "0", "--keep-within", "1d"],
        vec!["prune"],
        vec![
            "lock",
            "set",
            "--mode",
            "governance",
            "--min-retention",
            "1d",
        ],
        vec!["hold", "add", "x"],
        vec!["repair", "index"],
    ] {
        let mut c = wo.std_cmd();
        c.env_remove("HOLDFAST_PASSPHRASE");
        let o = c.args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(13), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(ids(&env).len(), 1);
}

#[test]
fn repair_index_rebuilds_from_packs() {
    let env = Env::new();
    env.init();
    let d = env.path("src");
    make_tree(&d, false);
    env.ok(&["backup", d.to_str().unwrap()]);
    for f in std::fs::read_dir(Path::new(&env.vault).join("index")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let o = env.run(&["verify"]);
    assert_eq!(code(&o), 4);
    assert!(
        stdout(&o).contains("holdfast repair index"),
        "{}",
        stdout(&o)
    );
    let r = env.json(&["repair", "index"]);
    assert!(r["packs_added"].as_u64().unwrap() >= 2, "{r}");
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    let t = env.path("out");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&d, &restored(&t, &d));
}

fn s3_env(moto: &Moto, vault: &str) -> Env {
    let mut env = Env::new();
    env.vault = vault.into();
    env.extra_env = s3_vars(moto);
    env
}

/// Copy every point of `from` to `to_vault` (passphrase `to_pass`), twice (idempotent).
fn copy_all(from: &Env, to_vault: &str) -> serde_json::Value {
    let mut e = Env::new();
    e.vault = from.vault.clone();
    e.extra_env = from.extra_env.clone();
    e.extra_env
        .push(("HOLDFAST_TO_PASSPHRASE".into(), "second vault".into()));
    let first = e.json(&["copy", "--to", to_vault, "--all"]);
    let again = e.json(&["copy", "--to", to_vault, "--all"]);
    assert!(again["copied"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(
        again["already_there"].as_array().unwrap().len(),
        first["copied"].as_array().unwrap().len()
    );
    first
}

fn second_vault_env(vault: &str, extra: Vec<(String, String)>) -> Env {
    let mut e = Env::new();
    e.vault = vault.into();
    e.extra_env = extra;
    e.extra_env
        .push(("HOLDFAST_PASSPHRASE".into(), "second vault".into()));
    e
}

fn check_copies(dst: &Env, srcs: &[PathBuf], n: usize) {
    let pts = ids(dst);
    assert_eq!(pts.len(), n);
    let v = dst.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    let t = dst.path("out");
    dst.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    let last = srcs.last().unwrap();
    assert_same_tree(last, &restored(&t, last));
}

#[test]
fn copy_local_to_s3_and_back_restores_without_the_source() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("copies");
    // local source
    let src_env = Env::new();
    src_env.init();
    let d = src_env.path("src");
    make_tree(&d, true);
    src_env.ok(&["backup", d.to_str().unwrap()]);
    std::fs::write(d.join("docs/second.txt"), b"second generation").unwrap();
    src_env.ok(&["backup", d.to_str().unwrap()]);

    // local -> S3
    let s3_url = "s3://copies/dr";
    let dst = second_vault_env(s3_url, s3_vars(&moto));
    dst.ok(&["init"]);
    let mut src_with_s3 = Env::new();
    src_with_s3.vault = src_env.vault.clone();
    src_with_s3.extra_env = s3_vars(&moto);
    let r = copy_all(&src_with_s3, s3_url);
    assert_eq!(r["copied"].as_array().unwrap().len(), 2, "{r}");
    assert!(r["blobs_verified"].as_u64().unwrap() > 0);
    // The destination holds no plaintext file name.
    assert!(
        !moto
            .list_keys("copies")
            .iter()
            .any(|k| k.contains("readme"))
    );
    std::fs::remove_dir_all(&src_env.vault).unwrap(); // the source is gone
    check_copies(&dst, std::slice::from_ref(&d), 2);

    // S3 -> local
    let back = src_env.path("back");
    let back_env = second_vault_env(back.to_str().unwrap(), vec![]);
    back_env.ok(&["init"]);
    let s3_src = s3_env(&moto, s3_url);
    let mut s3_src_pw = s3_src;
    s3_src_pw
        .extra_env
        .push(("HOLDFAST_PASSPHRASE".into(), "second vault".into()));
    let r = copy_all(&s3_src_pw, back.to_str().unwrap());
    assert_eq!(r["copied"].as_array().unwrap().len(), 2, "{r}");
    drop(moto); // the S3 source is gone with its server (moto keeps objects in memory)
    check_copies(&back_env, &[d], 2);
}

/// Four backup processes and a prune run at the same time, repeatedly, while the backups
/// deduplicate against data that only forgotten points used: afterwards the vault verifies
/// clean and every completed point restores identical.
#[test]
fn prune_racing_concurrent_backups_loses_nothing() {
    let mut env = Env::new();
    env.extra_env = vec![("HOLDFAST_HEARTBEAT_SECS".into(), "0.2".into())];
    env.init();
    let mut completed: BTreeMap<String, PathBuf> = BTreeMap::new();
    let rounds = 3;
    for round in 0..rounds {
        // Garbage the new backups will want: back up shared content, then forget it.
        let bait = env.path(&format!("bait{round}"));
        write_gen(&bait, 500 + round, 6, 150_000);
        let bait_point = env.json(&["backup", bait.to_str().unwrap(), "--resource", "bait"]);
        env.ok(&["forget", &bait_point["point"].as_str().unwrap()[..16]]);
        let mut children = Vec::new();
        for i in 0..4u64 {
            let d = env.path(&format!("src-{round}-{i}"));
            // the bait's files plus unique ones
            std::fs::create_dir_all(&d).unwrap();
            for f in std::fs::read_dir(&bait).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, d.join(f.file_name().unwrap())).unwrap();
            }
            write_gen(&d.join("own"), 10 * round + i + 1, 4, 120_000);
            let child = env
                .std_cmd()
                .args(["--json", "backup", d.to_str().unwrap(), "--resource"])
                .arg(format!("host{i}"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            children.push((child, d));
        }
        let prune = env
            .std_cmd()
            .args([
                "--json",
                "prune",
                "--max-wait",
                "60s",
                "--abandon-after",
                "30s",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        for (child, d) in children {
            let o = child.wait_with_output().unwrap();
            assert!(o.status.success(), "backup: {}", stderr(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            completed.insert(v["point"].as_str().unwrap().to_string(), d);
        }
        let o = prune.wait_with_output().unwrap();
        assert!(o.status.success(), "prune: {}", stderr(&o));
        let v = env.json(&["verify", "--read-data"]);
        assert_eq!(v["ok"], true, "round {round}: {v}");
    }
    // A final prune (nothing running) completes any notice left over.
    let p = env.json(&["prune"]);
    assert!(p["pending"].as_array().unwrap().is_empty(), "{p}");
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    for (id, src) in &completed {
        let t = env.path(&format!("r-{id}"));
        env.ok(&["restore", &id[..16], "--target", t.to_str().unwrap()]);
        assert_same_tree(src, &restored(&t, src));
    }
}

/// A compliance lock on a vault in an Object-Lock bucket: the S3 server itself refuses to
/// delete the locked objects' versions, including objects written after the lock was set.
#[test]
fn s3_object_lock_makes_the_server_refuse_deletion() {
    let Some(moto) = Moto::start() else { return };
    moto.create_locked_bucket("worm");
    let env = s3_env(&moto, "s3://worm/v");
    env.init();
    let d = env.path("src");
    write_gen(&d, 77, 2, 100_000);
    let p1 = env.json(&["backup", d.to_str().unwrap()]);
    let out = env.ok(&[
        "lock",
        "set",
        "--mode",
        "compliance",
        "--min-retention",
        "2d",
        "--cooling-off",
        "1s",
    ]);
    assert!(out.contains("storage retention:"), "{out}");
    assert!(!out.contains("not available"), "{out}");
    // A point made after the lock is covered at the next `lock apply` (or prune) — or at
    // once by the bucket's default retention, which moto only accepts on an empty bucket.
    write_gen(&d.join("more"), 78, 1, 100_000);
    let p2 = env.json(&["backup", d.to_str().unwrap()]);
    env.ok(&["lock", "apply"]);
    let keys = moto.list_keys("worm");
    let mut checked = 0;
    for point in [&p1, &p2] {
        let key = format!("v/points/{}", point["point"].as_str().unwrap());
        assert!(keys.contains(&key), "{key} in {keys:?}");
        let versions = moto.versions("worm", &key);
        assert_eq!(versions.len(), 1, "{versions:?}");
        let (status, body) = moto.delete_version("worm", &key, &versions[0]);
        assert!(status == 403 || status == 400, "{key}: {status} {body}");
        checked += 1;
    }
    // Every pack too, and the first point's retention is COMPLIANCE as the server says.
    for key in keys.iter().filter(|k| k.starts_with("v/packs/")) {
        let v = moto.versions("worm", key);
        let (status, body) = moto.delete_version("worm", key, &v[0]);
        assert!(status == 403 || status == 400, "{key}: {status} {body}");
        checked += 1;
    }
    assert!(checked >= 4);
    let h = moto.head(
        "worm",
        &format!("v/points/{}", p1["point"].as_str().unwrap()),
    );
    assert!(
        h.to_ascii_lowercase()
            .contains("x-amz-object-lock-mode: compliance"),
        "{h}"
    );
    // holdfast's own view is intact.
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
}

/// A backup that stalls (SIGSTOP) while a prune deletes data it deduplicated against is
/// declared abandoned; when it resumes it must fail at its commit claim instead of writing a
/// point with missing data.
#[test]
fn a_stalled_backup_declared_abandoned_cannot_commit() {
    let mut env = Env::new();
    env.extra_env = vec![("HOLDFAST_HEARTBEAT_SECS".into(), "0.2".into())];
    env.init();
    // The new backup holds the bait's files (deduplicated) and a lot of new data.
    let d = bait(&env, 64);
    let (child, _) = frozen_backup(&env, &d);
    let p = env.json(&["prune", "--abandon-after", "1s", "--max-wait", "20s"]);
    assert_eq!(p["abandoned_sessions"].as_array().unwrap().len(), 1, "{p}");
    assert!(p["deleted_packs"].as_u64().unwrap() > 0, "{p}");
    let o = resume(child);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("declared this run abandoned"),
        "{}",
        stderr(&o)
    );
    assert!(ids(&env).is_empty());
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    // Run again: it completes and restores.
    env.ok(&["backup", d.to_str().unwrap()]);
    let t = env.path("out");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&d, &restored(&t, &d));
}

#[test]
fn delete_after_forgets_old_points_whatever_the_keep_rules_say() {
    let env = Env::new();
    env.init();
    let d = env.path("src");
    write_gen(&d, 1, 1, 1000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Points 400, 200, 20 and 1 days old.
    for age in [400i64, 200, 20, 1] {
        let t = jiff::Timestamp::from_second(now - age * 86_400).unwrap();
        env.ok(&[
            "backup",
            d.to_str().unwrap(),
            "--resource",
            "r",
            "--time",
            &t.to_string(),
        ]);
    }
    // keep-yearly would keep the 400-day-old point; delete-after 1y overrides it.
    let f = env.json(&[
        "forget",
        "--keep-last",
        "10",
        "--delete-after",
        "1y",
        "--timezone",
        "UTC",
    ]);
    assert_eq!(f["forget"].as_array().unwrap().len(), 1, "{f}");
    assert_eq!(ids(&env).len(), 3);
    // delete-after alone: a lifecycle limit without keep rules.
    let f = env.json(&["forget", "--delete-after", "30d"]);
    assert_eq!(f["forget"].as_array().unwrap().len(), 1, "{f}");
    assert_eq!(ids(&env).len(), 2);
    let o = env.run(&["forget", "--delete-after", "soon"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--delete-after"), "{}", stderr(&o));
}
