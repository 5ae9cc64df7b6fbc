//! kill -9 at random moments of `prune` and `copy`: afterwards the vault verifies clean, no
//! completed point is lost, and re-running the interrupted command completes.
//! `HOLDFAST_CRASH_TRIALS` sets the number of trials per command (default 30).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};

fn trials() -> usize {
    std::env::var("HOLDFAST_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

fn point_ids(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = env
        .json(&["points"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Run `args` and SIGKILL it after a random share of `full`; returns whether it finished.
fn run_and_kill(
    env: &Env,
    args: &[&str],
    rng: &mut rand::rngs::StdRng,
    full: &mut Duration,
) -> (bool, Duration) {
    let delay = Duration::from_micros(rng.gen_range(0..full.as_micros() as u64 + 1));
    let start = Instant::now();
    let mut child = env
        .std_cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    let ok = child.wait().unwrap().success();
    if ok {
        *full = (*full).max(start.elapsed());
    }
    (ok, delay)
}

fn assert_clean(env: &Env, what: &str) {
    let o = env.run(&["--json", "verify", "--read-data"]);
    assert_eq!(code(&o), 0, "{what}: {}\n{}", stdout(&o), stderr(&o));
}

fn crash_env() -> Env {
    let mut env = Env::new();
    env.extra_env = vec![("HOLDFAST_HEARTBEAT_SECS".into(), "0.2".into())];
    env
}

#[test]
fn kill_9_during_prune_loses_no_kept_point() {
    let seed: u64 = rand::random();
    eprintln!("prune crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let env = crash_env();
    env.init();
    let mut full = Duration::from_millis(300);
    let mut gens: Vec<(String, std::path::PathBuf)> = Vec::new();
    for t in 0..trials() {
        // A new generation with unique data and data shared with the previous one, then
        // forget all but the newest three: garbage for this prune.
        let d = env.path(&format!("gen{t}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("own.bin"), random_bytes(t as u64, 600_000)).unwrap();
        std::fs::write(d.join("shared.bin"), random_bytes(t as u64 / 2, 400_000)).unwrap();
        let out = env.json(&["backup", d.to_str().unwrap(), "--resource", "r"]);
        gens.push((out["point"].as_str().unwrap().to_string(), d));
        env.ok(&["forget", "--keep-last", "3"]);
        let before = point_ids(&env);
        let args = ["prune", "--abandon-after", "1s", "--max-wait", "30s"];
        let (_, delay) = run_and_kill(&env, &args, &mut rng, &mut full);
        let what = format!("trial {t}, killed after {delay:?}, seed {seed}");
        assert_clean(&env, &what);
        assert_eq!(point_ids(&env), before, "{what}: points changed");
        // Re-running completes and leaves nothing pending.
        let p = env.json(&args);
        assert!(p["pending"].as_array().unwrap().is_empty(), "{what}: {p}");
        assert_clean(&env, &what);
    }
    for (id, src) in gens.iter().rev().take(3) {
        let t = env.path(&format!("out-{id}"));
        env.ok(&["restore", &id[..16], "--target", t.to_str().unwrap()]);
        assert_same_tree(src, &restored(&t, src));
    }
}

#[test]
fn kill_9_during_copy_loses_nothing_and_resumes() {
    let seed: u64 = rand::random();
    eprintln!("copy crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut env = crash_env();
    env.init();
    let dst_path = env.path("second");
    let dst_url = dst_path.display().to_string();
    let mut dst = crash_env();
    dst.vault = dst_url.clone();
    dst.extra_env
        .push(("HOLDFAST_PASSPHRASE".into(), "other pass".into()));
    dst.ok(&["init"]);
    env.extra_env
        .push(("HOLDFAST_TO_PASSPHRASE".into(), "other pass".into()));
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut full = Duration::from_millis(300);
    let mut copied_before = 0;
    for t in 0..trials() {
        std::fs::write(
            src.join(format!("t{t}.bin")),
            random_bytes(9000 + t as u64, 800_000),
        )
        .unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
        let args = ["copy", "--to", dst_url.as_str(), "--all"];
        let (_, delay) = run_and_kill(&env, &args, &mut rng, &mut full);
        let what = format!("trial {t}, killed after {delay:?}, seed {seed}");
        assert_clean(&dst, &what);
        let now = point_ids(&dst).len();
        assert!(
            now >= copied_before && now <= t + 1,
            "{what}: {now} points in the copy"
        );
        // Re-running completes the copy.
        env.ok(&args);
        assert_eq!(point_ids(&dst).len(), t + 1, "{what}");
        copied_before = t + 1;
    }
    assert_clean(&dst, "final");
    let out = env.path("restored");
    dst.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&out, &src));
}
