//! Attacks on *who wrote a point* (docs/format.md 11.4, 13.5, 15.4): a compromised backup host
//! holds a write-only key file with its own writer identity and create-only storage access.
//! With format version 3 each of these made `latest` restore the attacker's data: manifests
//! were not signed, so a point could claim any resource, host or time.

mod common;

use std::path::{Path, PathBuf};

use common::forge::*;
use common::*;
use ed25519_dalek::SigningKey;
use holdfast_engine::keys;

/// A write-only key file for `label`, allowed to write `scope` (empty: any resource).
fn writer_key(env: &Env, label: &str, scope: &[&str]) -> PathBuf {
    let kf = env.path(&format!("{label}.key"));
    let mut args = vec![
        "key",
        "create-backup-only",
        "--label",
        label,
        "--output",
        kf.to_str().unwrap(),
    ];
    for s in scope {
        args.extend(["--resource", s]);
    }
    env.ok(&args);
    kf
}

/// Run holdfast with a key file instead of the passphrase.
fn with_key(env: &Env, key: &Path, args: &[&str]) -> std::process::Output {
    env.cmd()
        .env_remove("HOLDFAST_PASSPHRASE")
        .env("HOLDFAST_KEY_FILE", key)
        .args(args)
        .output()
        .unwrap()
}

fn backup_as(env: &Env, key: &Path, src: &Path, resource: &str) -> String {
    let o = with_key(
        env,
        key,
        &[
            "--json",
            "backup",
            src.to_str().unwrap(),
            "--resource",
            resource,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["point"].as_str().unwrap().to_string()
}

fn point_json(env: &Env, id: &str) -> serde_json::Value {
    let all = env.json(&["points"]);
    all.as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"].as_str().unwrap().starts_with(id))
        .unwrap_or_else(|| panic!("point {id} not listed: {all:#}"))
        .clone()
}

/// `restore latest:RESOURCE` and return what it restored from `src`.
fn restore_latest(env: &Env, resource: &str, src: &Path, out: &str) -> PathBuf {
    let t = env.path(out);
    env.ok(&[
        "restore",
        &format!("latest:{resource}"),
        "--target",
        t.to_str().unwrap(),
    ]);
    restored(&t, src)
}

/// Two hosts, each with a writer identity scoped to its own resources. Host db1 is taken over.
fn two_hosts(env: &Env) -> (PathBuf, PathBuf, PathBuf, PathBuf, String) {
    env.init();
    let k1 = writer_key(env, "db1", &["db1:*"]);
    let k2 = writer_key(env, "db2", &["db2:*"]);
    let s1 = env.path("src1");
    let s2 = env.path("src2");
    write_gen(&s1, 1, 5, 3000);
    write_gen(&s2, 2, 5, 3000);
    let genuine = backup_as(env, &k2, &s2, "db2:files");
    backup_as(env, &k1, &s1, "db1:files");
    (k1, s1, k2, s2, genuine)
}

#[test]
fn a_writer_cannot_take_over_latest_of_another_hosts_resource() {
    let env = Env::new();
    let (k1, s1, _k2, s2, genuine) = two_hosts(&env);

    // Through holdfast the key refuses another host's resource before reading anything.
    let o = with_key(
        &env,
        &k1,
        &["backup", s1.to_str().unwrap(), "--resource", "db2:files"],
    );
    assert_eq!(code(&o), 13, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("may write only db1:*"),
        "{}",
        stderr(&o)
    );

    // With its own program: a point signed by its genuine identity, claiming db2's resource,
    // a day in the future, pointing at db1's data.
    let parts = writer_parts(&k1);
    let vid = parts.material.vault_id();
    let json = manifest_json(&env, "latest:db1:files", |m| {
        m.resource = "db2:files".into();
        m.host = "db2".into();
        m.time_ns = days_from_now_ns(1);
    });
    let forged = plant_point(
        &env.vault,
        &parts.material,
        &writer_envelope(&json, &vid, &parts.cert, &parts.signing),
    );

    assert_same_tree(&s2, &restore_latest(&env, "db2:files", &s2, "out"));
    let p = point_json(&env, &forged.to_hex());
    assert_eq!(p["trusted"], false, "{p}");
    assert_eq!(p["writer"]["label"], "db1", "{p}");
    assert_eq!(p["untrusted_because"]["kind"], "out-of-scope", "{p}");
    assert_eq!(point_json(&env, &genuine)["trusted"], true);
    let table = env.ok(&["points"]);
    assert!(table.contains("UNTRUSTED"), "{table}");
    assert!(table.contains("may write only db1:*"), "{table}");

    // verify names it and fails.
    let o = env.run(&["verify"]);
    assert_eq!(code(&o), 4, "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!("untrusted point {}", forged.short())),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_future_dated_point_does_not_become_latest() {
    let env = Env::new();
    let (k1, s1, _, _, _) = two_hosts(&env);
    let genuine = full_vault(&env).find_point("latest:db1:files").unwrap().0;
    // Within its own scope, through holdfast, a day ahead.
    let other = env.path("other");
    write_gen(&other, 9, 3, 1000);
    let tomorrow = jiff::Timestamp::from_nanosecond(days_from_now_ns(1) as i128)
        .unwrap()
        .to_string();
    let o = with_key(
        &env,
        &k1,
        &[
            "--json",
            "backup",
            other.to_str().unwrap(),
            "--resource",
            "db1:files",
            "--time",
            &tomorrow,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let future = v["point"].as_str().unwrap();
    let p = point_json(&env, future);
    assert_eq!(p["untrusted_because"]["kind"], "future-time", "{p}");
    let (latest, _) = full_vault(&env).find_point("latest:db1:files").unwrap();
    assert_eq!(latest, genuine);
    assert_same_tree(&s1, &restore_latest(&env, "db1:files", &s1, "out"));
    // Named by id it still restores: nothing is hidden, it just does not win `latest`.
    let t = env.path("by-id");
    env.ok(&["restore", future, "--target", t.to_str().unwrap()]);
    assert_same_tree(&other, &restored(&t, &other));
}

#[test]
fn impersonation_self_made_certificates_and_unsigned_points_are_not_trusted() {
    let env = Env::new();
    let (k1, _s1, k2, s2, genuine) = two_hosts(&env);
    let a = writer_parts(&k1);
    let b = writer_parts(&k2);
    let vid = a.material.vault_id();
    let json = manifest_json(&env, "latest:db1:files", |m| {
        m.resource = "db2:files".into();
        m.time_ns = days_from_now_ns(1);
    });
    // 1. db2's certificate (say, from a stolen copy of its key file's public part) signed with
    //    db1's key.
    let impersonated = plant_point(
        &env.vault,
        &a.material,
        &writer_envelope(&json, &vid, &b.cert, &a.signing),
    );
    // 2. A certificate db1 issued itself, for any resource.
    let issuer = SigningKey::from_bytes(&[7; 32]);
    let cert = self_made_cert(
        &vid,
        &issuer,
        &a.signing.verifying_key().to_bytes(),
        "db2",
        &[],
    );
    let self_made = plant_point(
        &env.vault,
        &a.material,
        &writer_envelope(&json, &vid, &cert, &a.signing),
    );
    // 3. A bare manifest, as format 3 wrote them.
    let unsigned = plant_point(&env.vault, &a.material, &json);

    for (id, kind, words) in [
        (impersonated, "forged", "does not verify"),
        (self_made, "forged", "not issued by this vault's owner"),
        (unsigned, "unsigned", "without a signature"),
    ] {
        let p = point_json(&env, &id.to_hex());
        assert_eq!(p["trusted"], false, "{p}");
        assert_eq!(p["untrusted_because"]["kind"], kind, "{p}");
        assert!(
            p["untrusted_because"]["reason"]
                .as_str()
                .unwrap()
                .contains(words),
            "{p}"
        );
    }
    // `latest` is the newest trusted point (the listing is oldest first).
    let all = env.json(&["points"]);
    let newest_trusted = all
        .as_array()
        .unwrap()
        .iter()
        .rfind(|p| p["trusted"] == true)
        .unwrap()["id"]
        .clone();
    assert_eq!(
        full_vault(&env).find_point("latest").unwrap().0.to_hex(),
        newest_trusted.as_str().unwrap()
    );
    assert_same_tree(&s2, &restore_latest(&env, "db2:files", &s2, "out"));
    assert_eq!(point_json(&env, &genuine)["trusted"], true);
    let v = env.json_any(&["verify"]);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["report"]["untrusted"].as_array().unwrap().len(), 3, "{v}");
}

#[test]
fn a_quarantined_writer_no_longer_wins_latest() {
    let env = Env::new();
    let (k1, s1, _, _, _) = two_hosts(&env);
    let good = full_vault(&env).find_point("latest:db1:files").unwrap().0;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let since = jiff::Timestamp::now().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The intruder's backups after the compromise look like ordinary ones.
    let other = env.path("other");
    write_gen(&other, 5, 3, 1000);
    let bad = backup_as(&env, &k1, &other, "db1:files");
    assert_eq!(point_json(&env, &bad)["trusted"], true);

    let out = env.ok(&[
        "key",
        "quarantine",
        "db1",
        "--reason",
        "host compromised",
        "--since",
        &since,
    ]);
    assert!(out.contains("quarantined"), "{out}");
    let p = point_json(&env, &bad);
    assert_eq!(p["untrusted_because"]["kind"], "quarantined", "{p}");
    assert!(
        p["untrusted_because"]["reason"]
            .as_str()
            .unwrap()
            .contains("host compromised"),
        "{p}"
    );
    assert_eq!(point_json(&env, &good.to_hex())["trusted"], true);
    assert_eq!(
        full_vault(&env).find_point("latest:db1:files").unwrap().0,
        good
    );
    assert_same_tree(&s1, &restore_latest(&env, "db1:files", &s1, "out"));
    // A decision already taken is not a problem: verify passes and lists the point.
    let v = env.json(&["verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["report"]["untrusted"][0]["point"], bad, "{v}");
    // It shows in the writer list and in the protection chain's audit record.
    let w = env.ok(&["key", "writers"]);
    assert!(
        w.contains("db1") && w.contains("QUARANTINED: points stored since"),
        "{w}"
    );
    // Quarantine only ever moves earlier: a later --since does not release points.
    env.ok(&[
        "key",
        "quarantine",
        "db1",
        "--reason",
        "again",
        "--since",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(
        point_json(&env, &bad)["untrusted_because"]["kind"],
        "quarantined"
    );
    // Without --since: every point of the writer.
    env.ok(&["key", "quarantine", "db1", "--reason", "all of it"]);
    assert_eq!(
        point_json(&env, &good.to_hex())["untrusted_because"]["kind"],
        "quarantined"
    );
}

#[test]
fn a_key_file_without_a_writer_identity_is_refused() {
    let env = Env::new();
    env.init();
    let k = writer_key(&env, "old", &[]);
    // What `key backup-only` wrote before format version 4: kind 1, no writer identity.
    let old = keys::decode_key_file(&std::fs::read(&k).unwrap())
        .unwrap()
        .write_only();
    let old_file = env.path("old-format.key");
    std::fs::write(&old_file, keys::encode_key_file(&old)).unwrap();
    let src = env.path("src");
    write_gen(&src, 3, 2, 100);
    let o = with_key(&env, &old_file, &["backup", src.to_str().unwrap()]);
    assert_eq!(code(&o), 13, "{}", stderr(&o));
    assert!(stderr(&o).contains("no writer identity"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("key create-backup-only"),
        "{}",
        stderr(&o)
    );
    assert!(objects(&env.vault, "points").is_empty());
    // Nothing was left behind that a prune would have to clean up.
    assert!(objects(&env.vault, "packs").is_empty());
}

#[test]
fn forgeries_are_not_counted_by_retention_nor_laundered_by_copy() {
    let env = Env::new();
    let (k1, _s1, _, s2, genuine) = two_hosts(&env);
    let parts = writer_parts(&k1);
    let vid = parts.material.vault_id();
    let genuine_time = full_vault(&env).find_point(&genuine).unwrap().1.time_ns;
    // Three newer points claiming db2's resource (in the past, so only the scope betrays them).
    let mut forged = Vec::new();
    for n in 1..=3 {
        let json = manifest_json(&env, "latest:db1:files", |m| {
            m.resource = "db2:files".into();
            m.time_ns = genuine_time + n * 1_000_000;
        });
        forged.push(plant_point(
            &env.vault,
            &parts.material,
            &writer_envelope(&json, &vid, &parts.cert, &parts.signing),
        ));
    }
    // --keep-last 1 keeps the genuine point: the forgeries are not counted (and not deleted).
    let out = env.json(&["forget", "--resource", "db2:files", "--keep-last", "1"]);
    let ids: Vec<String> = env
        .json(&["points", "--resource", "db2:files"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ids.contains(&genuine),
        "the genuine point was forgotten: {out}"
    );
    assert_eq!(ids.len(), 4, "{out}");
    assert!(out.to_string().contains("untrusted, not counted"), "{out}");
    assert_same_tree(&s2, &restore_latest(&env, "db2:files", &s2, "out"));

    // A copy to the second vault takes only trusted points: the destination would sign them.
    let dr = env.path("dr");
    env.ok(&["--vault", dr.to_str().unwrap(), "init"]);
    let o = env
        .cmd()
        .env("HOLDFAST_TO_PASSPHRASE", "correct horse")
        .args(["copy", "--all", "--to", dr.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not copying untrusted point"),
        "{}",
        stderr(&o)
    );
    let copied = env.json(&["--vault", dr.to_str().unwrap(), "points"]);
    assert_eq!(copied.as_array().unwrap().len(), 2, "{copied}");
    assert!(
        copied
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["trusted"] == true)
    );
    let o = env
        .cmd()
        .env("HOLDFAST_TO_PASSPHRASE", "correct horse")
        .args(["copy", &forged[0].to_hex(), "--to", dr.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("is untrusted"), "{}", stderr(&o));
}
