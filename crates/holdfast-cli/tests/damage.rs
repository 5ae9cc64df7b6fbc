//! Damage and bad input: every flipped byte is found and attributed; damaged points restore
//! what is intact; each failure is one clear line with a documented exit code.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A vault with two points over two files each big enough for their own chunks.
fn damaged_fixture() -> (Env, PathBuf) {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.bin"), random_bytes(11, 700_000)).unwrap();
    std::fs::write(src.join("b.bin"), random_bytes(12, 700_000)).unwrap();
    std::fs::write(src.join("c.txt"), b"small file").unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "--resource", "r1"]);
    std::fs::write(src.join("d.txt"), b"second point").unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "--resource", "r1"]);
    (env, src)
}

#[test]
fn a_single_flipped_byte_in_any_object_is_detected() {
    let (base, _src) = damaged_fixture();
    assert_eq!(code(&base.run(&["verify", "--read-data"])), 0);
    let all = base.vault_files();
    assert!(all.len() >= 7, "{all:?}");
    for (n, obj) in all.iter().enumerate() {
        if std::fs::metadata(obj).unwrap().len() == 0 {
            continue; // session end markers are empty: no byte to flip
        }
        let rel = obj.strip_prefix(&base.vault).unwrap().to_path_buf();
        for at in [0usize, 37, 1_000_003] {
            let env = Env {
                dir: tempfile::tempdir().unwrap(),
                vault: String::new(),
                extra_env: vec![],
            };
            let vault = env.path("vault");
            copy_dir(Path::new(&base.vault), &vault);
            let env = Env {
                vault: vault.display().to_string(),
                ..env
            };
            flip(&vault.join(&rel), at + n);
            let o = env.run(&["verify", "--read-data"]);
            let c = code(&o);
            assert!(
                c == 4,
                "flip at {at} in {} went unnoticed or misreported (exit {c}):\n{}\n{}",
                rel.display(),
                stdout(&o),
                stderr(&o)
            );
            let all_out = format!("{}{}", stdout(&o), stderr(&o));
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .into_owned();
            assert!(
                all_out.contains(&top),
                "the report names the {top} object:\n{all_out}"
            );
        }
    }
}

#[test]
fn verify_names_affected_points_and_restore_saves_the_rest() {
    let (env, src) = damaged_fixture();
    // the largest pack holds the file data
    let packs = objects(&env.vault, "packs");
    let data_pack = packs.last().unwrap();
    flip(data_pack, 100); // inside the first blob
    let o = env.run(&["--json", "verify", "--read-data"]);
    assert_eq!(code(&o), 4);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let affected = j["report"]["affected"].as_array().unwrap();
    assert_eq!(affected.len(), 2, "both points share the damaged blob: {j}");
    let paths: Vec<String> = affected[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    let damaged_name = if paths[0].ends_with("a.bin") {
        "a.bin"
    } else {
        "b.bin"
    };
    assert!(paths[0].ends_with(damaged_name));

    let t = env.path("t");
    let o = env.run(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "partial restore: {}", stderr(&o));
    assert!(stderr(&o).contains(damaged_name), "{}", stderr(&o));
    let r = restored(&t, &src);
    assert!(
        !r.join(damaged_name).exists(),
        "a damaged file is not left half-written"
    );
    for f in ["a.bin", "b.bin", "c.txt", "d.txt"] {
        if f != damaged_name {
            assert_eq!(
                std::fs::read(r.join(f)).unwrap(),
                std::fs::read(src.join(f)).unwrap(),
                "{f}"
            );
        }
    }
}

#[test]
fn truncated_and_missing_objects_are_reported() {
    let (env, _src) = damaged_fixture();
    let packs = objects(&env.vault, "packs");
    let data_pack = packs.last().unwrap();
    let d = std::fs::read(data_pack).unwrap();
    std::fs::write(data_pack, &d[..d.len() / 2]).unwrap();
    let o = env.run(&["verify"]);
    assert_eq!(code(&o), 4);
    assert!(stdout(&o).contains("truncated"), "{}", stdout(&o));
    std::fs::remove_file(data_pack).unwrap();
    let o = env.run(&["verify"]);
    assert_eq!(code(&o), 4);
    assert!(stdout(&o).contains("missing"), "{}", stdout(&o));
    let t = env.path("t");
    let o = env.run(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
}

#[test]
fn bad_input_gets_one_clear_line_and_a_documented_code() {
    let env = Env::new();
    // no vault
    let o = env.run(&["points"]);
    assert_eq!(code(&o), 10);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no vault at") && stderr(&o).contains("holdfast init"),
        "{}",
        stderr(&o)
    );
    // JSON errors for scripts
    let o = env.run(&["--json", "points"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["error"]["kind"], "no_vault");
    assert_eq!(j["error"]["exit_code"], 10);
    // init twice
    env.init();
    let o = env.run(&["init"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    // usage errors
    assert_eq!(code(&env.run(&["backup"])), 1);
    assert_eq!(code(&env.run(&["frobnicate"])), 2);
    assert_eq!(code(&env.run(&["verify", "--read-data-subset", "250"])), 1);
    assert_eq!(
        code(&env.run(&["restore", "zzzz", "--target", "/tmp/x"])),
        1
    );
    assert_eq!(code(&env.run(&["backup", "/definitely/not/here"])), 1);
    // unreachable S3 endpoint: retryable, code 14, names the endpoint
    let port = holdfast_testkit::free_port();
    let mut c = env.cmd();
    let o = c
        .env("HOLDFAST_VAULT", "s3://bucket/p")
        .env("HOLDFAST_S3_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .args(["points"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 14, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    // a sample of the data is read with --read-data-subset
    let src = env.path("s");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["verify", "--read-data-subset", "50%"]);
}

#[test]
fn unreadable_files_make_a_partial_point_with_everything_else() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, false);
    std::fs::write(src.join("locked.txt"), b"no access").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        src.join("locked.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let root = nix::unistd::geteuid().is_root();
    let o = if root {
        // root reads everything: run the backup as an unprivileged user instead.
        std::process::Command::new("chmod")
            .args(["-R", "a+rwX", env.dir.path().to_str().unwrap()])
            .status()
            .unwrap();
        std::fs::set_permissions(
            src.join("locked.txt"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        std::fs::set_permissions(src.join("private"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let bin = assert_cmd::cargo::cargo_bin("holdfast");
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&bin)
            .args(["--json", "backup", src.to_str().unwrap()])
            .env("HOLDFAST_VAULT", &env.vault)
            .env("HOLDFAST_PASSPHRASE", "correct horse")
            .env("HOLDFAST_KDF_MEMORY_KIB", "8192")
            .env("HOLDFAST_CACHE_DIR", env.path("nobody-cache"))
            .output()
            .unwrap()
    } else {
        env.run(&["--json", "backup", src.to_str().unwrap()])
    };
    assert_eq!(code(&o), 3, "partial: {}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["partial"], true);
    let errs = j["errors"].to_string();
    assert!(errs.contains("locked.txt"), "{errs}");
    assert!(stderr(&o).contains("locked.txt"), "{}", stderr(&o));
    let pts = env.json(&["points"]);
    assert_eq!(pts[0]["partial"], true);
    let ls = env.ok(&["ls", "latest"]);
    assert!(
        ls.contains("docs/nested/text.md"),
        "everything else was saved: {ls}"
    );
    assert!(!ls.contains("locked.txt"));
}
