//! kill -9 at random moments of a real `holdfast backup`: afterwards the vault verifies
//! clean, no completed point is lost, and the interrupted backup completes when re-run.
//! `HOLDFAST_CRASH_TRIALS` sets the number of trials (default 30; `scripts/crash-soak.sh`
//! runs many more). Prune and copy are crash-tested in `lifecycle_crash.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};

#[test]
fn kill_9_during_backup_loses_nothing() {
    let trials: usize = std::env::var("HOLDFAST_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed: u64 = rand::random();
    eprintln!("crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, false);
    std::fs::write(src.join("base.bin"), random_bytes(100, 12 << 20)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first = env.json(&["points"])[0]["id"].as_str().unwrap().to_string();

    let mut completed = 1;
    let mut full = Duration::from_millis(400);
    for t in 0..trials {
        std::fs::write(
            src.join(format!("trial-{t}.bin")),
            random_bytes(1000 + t as u64, 6 << 20),
        )
        .unwrap();
        let delay = Duration::from_micros(rng.gen_range(0..full.as_micros() as u64 + 1));
        let start = Instant::now();
        let mut child = env
            .std_cmd()
            .args(["backup", src.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
            full = full.max(start.elapsed());
        }
        let o = env.run(&["--json", "verify", "--read-data"]);
        assert_eq!(
            code(&o),
            0,
            "trial {t} (kill after {delay:?}, seed {seed}): {}\n{}",
            stdout(&o),
            stderr(&o)
        );
        let pts = env.json(&["points"]);
        let pts = pts.as_array().unwrap();
        assert_eq!(
            pts.len(),
            completed,
            "trial {t}: every completed point and no half point"
        );
        assert!(pts.iter().any(|p| p["id"] == first.as_str()));
    }
    // Re-running completes, and the result restores identical.
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
    let t1 = env.path("first");
    env.ok(&["restore", &first[..12], "--target", t1.to_str().unwrap()]);
    assert!(restored(&t1, &src).join("base.bin").exists());
    assert!(!restored(&t1, &src).join("trial-0.bin").exists());
}
