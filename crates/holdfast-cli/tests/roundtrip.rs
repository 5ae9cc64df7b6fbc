//! Back up and restore through the real binary: byte-identical trees with metadata, on a
//! local vault and on a real S3-compatible server.

mod common;

use common::*;

#[test]
fn local_round_trip_is_identical_with_metadata() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, true);
    let out = env.json(&["backup", src.to_str().unwrap(), "--tag", "first"]);
    assert_eq!(out["partial"], false);
    assert_eq!(out["summary"]["files_new"], 9);
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));

    // the point lists what it holds
    let pts = env.json(&["points"]);
    assert_eq!(pts.as_array().unwrap().len(), 1);
    assert_eq!(pts[0]["tags"][0], "first");
    assert_eq!(pts[0]["resource"], src.to_str().unwrap());
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("/docs/nested/deeper/random.bin"), "{ls}");
    assert!(ls.contains("/empty\n"), "{ls}");

    // one file out
    let o = env.run(&[
        "dump",
        "latest",
        &format!("{}/docs/readme.txt", src.display()),
    ]);
    assert_eq!(o.stdout, b"hello holdfast\n");
}

#[test]
fn incremental_backups_read_only_what_changed() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, false);
    let first = env.json(&["backup", src.to_str().unwrap()]);
    let second = env.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(
        second["summary"]["files_unchanged"],
        first["summary"]["files_new"]
    );
    assert_eq!(second["summary"]["bytes_read"], 0);
    // Only the trees of the parent folders (whose mtimes moved: the vault and cache live
    // there) are new; no data.
    assert!(
        second["summary"]["stored_added"].as_u64().unwrap() < 4096,
        "{second}"
    );
    std::fs::write(src.join("docs/new.txt"), b"new file").unwrap();
    std::fs::write(src.join("docs/empty-file"), b"now with content").unwrap();
    let third = env.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(third["summary"]["files_new"], 1);
    assert_eq!(third["summary"]["files_changed"], 1);
    assert_eq!(third["summary"]["bytes_read"], 8 + 16);
    // without the cache everything is read, but nothing new is stored
    let fourth = env.json(&["backup", "--no-cache", src.to_str().unwrap()]);
    assert!(
        fourth["summary"]["stored_added"].as_u64().unwrap() < 4096,
        "{fourth}"
    );
    let target = env.path("r");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
    // the first point still restores its own state
    let pts = env.json(&["points"]);
    let first_id = pts[0]["id"].as_str().unwrap();
    let t1 = env.path("r1");
    env.ok(&["restore", &first_id[..10], "--target", t1.to_str().unwrap()]);
    assert!(!restored(&t1, &src).join("docs/new.txt").exists());
    assert_eq!(
        std::fs::read(restored(&t1, &src).join("docs/empty-file")).unwrap(),
        b""
    );
}

#[test]
fn stdin_backup_excludes_includes_and_resources() {
    let env = Env::new();
    env.init();
    let data = random_bytes(9, 5 << 20);
    let o = env
        .cmd()
        .args([
            "backup",
            "--stdin",
            "--stdin-name",
            "db.dump",
            "--resource",
            "db",
            "--time",
            "2024-02-29 12:00:00",
        ])
        .write_stdin(data.clone())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let dump = env.run(&["dump", "latest:db", "db.dump"]);
    assert!(dump.stdout == data, "stdin round trip");
    let pts = env.json(&["points", "--resource", "db"]);
    assert_eq!(pts[0]["time"], "2024-02-29T12:00:00Z");
    assert_eq!(pts[0]["source"]["kind"], "stdin");

    let src = env.path("src");
    make_tree(&src, false);
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.bin",
        "--exclude",
        "**/private",
        "--resource",
        "files",
    ]);
    let ls = env.ok(&["ls", "latest:files"]);
    assert!(
        !ls.contains("random.bin") && !ls.contains("private"),
        "{ls}"
    );
    assert!(ls.contains("readme.txt"));
    let t = env.path("t");
    env.ok(&[
        "restore",
        "latest:files",
        "--target",
        t.to_str().unwrap(),
        "--include",
        "*.md",
    ]);
    let r = restored(&t, &src);
    assert!(r.join("docs/nested/text.md").exists());
    assert!(!r.join("docs/readme.txt").exists());
    // bad point names are clear input errors
    let o = env.run(&["restore", "latest:nope", "--target", t.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("no recovery point of resource \"nope\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn s3_round_trip_is_identical() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("vault-bucket");
    let mut env = Env::new();
    env.vault = "s3://vault-bucket/team/app".into();
    env.extra_env = s3_vars(&moto);
    env.init();
    let src = env.path("src");
    make_tree(&src, true);
    env.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("docs/added.txt"), b"second generation").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    // the server holds the objects under the prefix
    let keys = moto.list_keys("vault-bucket");
    assert!(keys.iter().any(|k| k == "team/app/config"));
    assert!(keys.iter().any(|k| k.starts_with("team/app/packs/")));
    assert!(
        keys.iter()
            .filter(|k| k.starts_with("team/app/points/"))
            .count()
            == 2
    );
}
