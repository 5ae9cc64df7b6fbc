//! Secrets and keys: nothing readable at rest, write-only keys, passphrase sources.

mod common;

use common::*;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn nothing_sensitive_is_stored_in_plaintext() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("holdfast-secret-folder-q7w8e9")).unwrap();
    let marker = b"SSN-123-45-6789-unique-marker-7f3a9c";
    // the marker both in a compressible and an incompressible context
    let mut content = random_bytes(4, 100_000);
    content.extend_from_slice(marker);
    content.extend(random_bytes(5, 100_000));
    std::fs::write(
        src.join("holdfast-secret-folder-q7w8e9/payroll-z1x2c3.csv"),
        &content,
    )
    .unwrap();
    std::fs::write(
        src.join("plain.txt"),
        [&marker[..], b"\n"].concat().repeat(1000),
    )
    .unwrap();
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--tag",
        "tag-secret-v5b6n7",
    ]);
    let files = env.vault_files();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let data = std::fs::read(&f).unwrap();
        for needle in [
            &marker[..],
            b"payroll-z1x2c3",
            b"holdfast-secret-folder-q7w8e9",
            b"tag-secret-v5b6n7",
            b"correct horse",
        ] {
            assert!(
                !contains(&data, needle),
                "{} holds {:?} in plaintext",
                f.display(),
                String::from_utf8_lossy(needle)
            );
        }
        let name = f.to_string_lossy();
        assert!(
            !name.contains("payroll") && !name.contains("secret"),
            "object name leaks: {name}"
        );
    }
}

#[test]
fn write_only_key_backs_up_but_cannot_read_restore_or_delete() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, false);
    env.ok(&["backup", src.to_str().unwrap()]);
    let key = env.path("backup-only.key");
    env.ok(&[
        "key",
        "create-backup-only",
        "--output",
        key.to_str().unwrap(),
    ]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // refuses to overwrite
    assert_ne!(
        code(&env.run(&[
            "key",
            "create-backup-only",
            "--output",
            key.to_str().unwrap()
        ])),
        0
    );

    let mut wo = Env {
        dir: tempfile::tempdir().unwrap(),
        vault: env.vault.clone(),
        extra_env: vec![],
    };
    wo.extra_env
        .push(("HOLDFAST_KEY_FILE".into(), key.display().to_string()));
    // the write-only host has no passphrase at all
    let only_key = |args: &[&str]| {
        let mut c = wo.cmd();
        c.env_remove("HOLDFAST_PASSPHRASE");
        c.args(args).output().unwrap()
    };
    // it can add points, deduplicating against what the vault holds
    let o = only_key(&["--json", "backup", src.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        j["summary"]["stored_added"].as_u64().unwrap() < 4096,
        "dedup against the vault: {j}"
    );
    std::fs::write(
        src.join("docs/from-write-only-host.txt"),
        b"written by the write-only host",
    )
    .unwrap();
    let o = only_key(&["backup", src.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // it cannot read anything back, not even what it wrote
    let t = wo.path("t");
    for args in [
        vec!["points"],
        vec!["ls", "latest"],
        vec!["dump", "latest", "x"],
        vec!["restore", "latest", "--target", t.to_str().unwrap()],
        vec!["verify"],
        vec!["key", "list"],
        vec!["key", "add"],
        vec!["key", "remove", "00"],
        vec![
            "key",
            "create-backup-only",
            "--output",
            wo.path("k2").to_str().unwrap(),
        ],
    ] {
        let o = only_key(&args);
        assert_eq!(code(&o), 13, "{args:?} must be refused: {}", stderr(&o));
        assert!(stderr(&o).contains("write-only"), "{}", stderr(&o));
    }
    assert!(
        !t.exists() || std::fs::read_dir(&t).unwrap().next().is_none(),
        "nothing restored"
    );

    // the full key restores what the write-only host wrote
    let t = env.path("full");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&t, &src));
    assert_eq!(env.json(&["points"]).as_array().unwrap().len(), 3);
}

#[test]
fn passphrase_sources_and_key_management() {
    let env = Env::new();
    env.init();
    let pwfile = env.path("pw");
    std::fs::write(&pwfile, "correct horse\n").unwrap();
    let run_with = |k: &str, v: &str| {
        let mut c = env.cmd();
        c.env_remove("HOLDFAST_PASSPHRASE")
            .env(k, v)
            .args(["key", "list"]);
        c.output().unwrap()
    };
    assert_eq!(
        code(&run_with(
            "HOLDFAST_PASSPHRASE_FILE",
            pwfile.to_str().unwrap()
        )),
        0
    );
    assert_eq!(
        code(&run_with(
            "HOLDFAST_PASSPHRASE_COMMAND",
            "echo 'correct horse'"
        )),
        0
    );
    let bad = run_with("HOLDFAST_PASSPHRASE", "wrong");
    assert_eq!(code(&bad), 12);
    assert_eq!(
        stderr(&bad).lines().count(),
        1,
        "one line: {}",
        stderr(&bad)
    );
    assert!(stderr(&bad).contains("hint:"));
    // no secret at all, no TTY: a clear error, not a hang
    let mut c = env.cmd();
    let o = c
        .env_remove("HOLDFAST_PASSPHRASE")
        .args(["points"])
        .output()
        .unwrap();
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("HOLDFAST_PASSPHRASE"), "{}", stderr(&o));

    // add a second key, open with it, change its passphrase, remove the first
    let mut c = env.cmd();
    let o = c
        .env("HOLDFAST_NEW_PASSPHRASE", "second")
        .args(["--json", "key", "add", "--label", "ops"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let keys = env.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let first = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let with_second = |args: &[&str], extra: Option<(&str, &str)>| {
        let mut c = env.cmd();
        c.env("HOLDFAST_PASSPHRASE", "second");
        if let Some((k, v)) = extra {
            c.env(k, v);
        }
        c.args(args).output().unwrap()
    };
    // cannot remove the key in use
    assert_ne!(code(&env.run(&["key", "remove", &first[..8]])), 0);
    assert_eq!(code(&with_second(&["key", "remove", &first[..8]], None)), 0);
    assert_eq!(
        code(&env.run(&["points"])),
        12,
        "the removed passphrase no longer opens the vault"
    );
    assert_eq!(
        code(&with_second(
            &["key", "passwd"],
            Some(("HOLDFAST_NEW_PASSPHRASE", "third"))
        )),
        0
    );
    assert_eq!(code(&with_second(&["points"], None)), 12);
    let mut c = env.cmd();
    assert_eq!(
        code(
            &c.env("HOLDFAST_PASSPHRASE", "third")
                .args(["points"])
                .output()
                .unwrap()
        ),
        0
    );
}

#[test]
fn weak_test_kdf_settings_warn_every_time_they_write_a_key() {
    let env = Env::new();
    // Env's commands set HOLDFAST_KDF_MEMORY_KIB=8192 (fast tests): init and key add warn.
    let o = env.run(&["init"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let warning = "warning: HOLDFAST_KDF_MEMORY_KIB=8192 wrote a weak key object";
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));
    assert!(stderr(&o).contains("holdfast key passwd"), "{}", stderr(&o));
    let o = env
        .cmd()
        .args(["key", "add", "--label", "second"])
        .env("HOLDFAST_NEW_PASSPHRASE", "another horse")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));
    // Without it, the default parameters and no warning; reading never warns.
    let o = env
        .cmd()
        .args(["key", "passwd"])
        .env("HOLDFAST_NEW_PASSPHRASE", "third horse")
        .env_remove("HOLDFAST_KDF_MEMORY_KIB")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("HOLDFAST_KDF_MEMORY_KIB"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["points"]);
    assert!(
        !stderr(&o).contains("HOLDFAST_KDF_MEMORY_KIB"),
        "{}",
        stderr(&o)
    );
}
