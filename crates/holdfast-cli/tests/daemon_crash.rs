//! The daemon stopped mid-job: SIGTERM (running jobs get their grace, then are recorded
//! aborted) and kill -9 (the next daemon records the job aborted, catches up or records the
//! missed run expired) leave a catalog and vault that are consistent: no job stays running,
//! no point is lost, the vault verifies.

mod common;

use std::time::Duration;

use common::daemon::*;
use common::*;

#[test]
fn sigterm_and_kill9_mid_job_leave_a_consistent_catalog_and_vault() {
    let env = Env::new();
    // Two jobs per vault: the stuck export must not hold up the quick backups.
    let (main, _dr, state, _port, head) = setup(&env, "max_jobs_per_vault = 2");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), "x").unwrap();
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[categories.often]
schedule = "*/4 * * * * *"
vault = "main"
start_window = "1s"
[categories.often.retention]
keep_last = 50

[categories.slow]
schedule = "*/4 * * * * *"
vault = "main"
start_window = "1s"
[categories.slow.retention]
keep_last = 50

[resources.quick]
kind = "files"
category = "often"
paths = ["{data}"]

[resources.stuck]
kind = "command"
category = "slow"
command = "sh -c 'sleep 120; echo {marker}'"
name = "slow.out"
"#,
            data = data.display(),
            marker = env.dir.path().display()
        ),
    )
    .unwrap();
    let running_stuck = |env: &Env| {
        jobs(env, &state)
            .iter()
            .any(|j| j["resource"] == "stuck" && j["state"] == "running")
    };
    // SIGTERM: the stuck job gets the 2 s grace, then is stopped and recorded aborted.
    let mut d = Daemon::start(&env, &plan, &env.path("daemon1.log"));
    wait_until(Duration::from_secs(30), "a running stuck job", || {
        running_stuck(&env)
    });
    wait_until(Duration::from_secs(30), "a completed quick backup", || {
        jobs(&env, &state)
            .iter()
            .any(|j| j["resource"] == "quick" && j["state"] == "completed")
    });
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());
    let all = jobs(&env, &state);
    assert!(
        all.iter()
            .all(|j| j["state"] != "running" && j["state"] != "created"),
        "{all:#?}"
    );
    let aborted = all
        .iter()
        .find(|j| j["resource"] == "stuck" && j["state"] == "aborted")
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert!(
        aborted["message"].as_str().unwrap().contains("shut down"),
        "{aborted}"
    );
    let quick_points = points(&env, &main, "quick").len();
    assert!(quick_points >= 1);

    // kill -9: the catalog shows the job running until a daemon starts again; the child
    // died with the daemon (no orphan keeps writing).
    let mut d = Daemon::start(&env, &plan, &env.path("daemon2.log"));
    wait_until(Duration::from_secs(30), "a running stuck job", || {
        running_stuck(&env)
    });
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait(Duration::from_secs(10));
    assert!(
        running_stuck(&env),
        "the killed daemon's job is still marked running"
    );
    std::thread::sleep(Duration::from_secs(1));
    // The holdfast child and its export program (both carry the marker in argv) are gone.
    let orphans = std::process::Command::new("pgrep")
        .args(["-f", &format!("echo {}", env.dir.path().display())])
        .output()
        .unwrap();
    let before_restart = jobs(&env, &state).len();
    // Down for longer than the start window: restart 2 s after a scheduled time (start
    // window 1 s) so the missed run is recorded expired, once, instead of caught up.
    std::thread::sleep(Duration::from_secs(3));
    loop {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 4000;
        if (2000..2300).contains(&ms) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut d = Daemon::start(&env, &plan, &env.path("daemon3.log"));
    wait_until(
        Duration::from_secs(30),
        "the stale job recorded aborted",
        || {
            !running_stuck(&env) || {
                jobs(&env, &state).iter().any(|j| {
                    j["resource"] == "stuck"
                        && j["state"] == "aborted"
                        && j["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("stopped before it ended"))
                })
            }
        },
    );
    wait_until(
        Duration::from_secs(30),
        "an expired catch-up record",
        || {
            jobs(&env, &state).iter().any(|j| {
                j["state"] == "expired"
                    && j["message"].as_str().is_some_and(|m| m.contains("missed"))
            })
        },
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());
    let all = jobs(&env, &state);
    assert!(all.len() > before_restart);
    assert!(
        all.iter()
            .all(|j| j["state"] != "running" && j["state"] != "created"),
        "{all:#?}"
    );
    assert!(
        all.iter().any(|j| j["resource"] == "stuck"
            && j["state"] == "aborted"
            && j["message"]
                .as_str()
                .is_some_and(|m| m.contains("stopped before it ended"))),
        "{all:#?}"
    );
    let expired: Vec<_> = all
        .iter()
        .filter(|j| {
            j["state"] == "expired" && j["message"].as_str().is_some_and(|m| m.contains("missed"))
        })
        .collect();
    assert!(!expired.is_empty() && expired.len() <= 2, "{expired:#?}");
    // No completed point was lost; every recorded point is in the vault; it verifies.
    let now_points: Vec<String> = points(&env, &main, "quick")
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert!(now_points.len() >= quick_points);
    for j in all
        .iter()
        .filter(|j| j["resource"] == "quick" && j["kind"] == "backup" && j["state"] == "completed")
    {
        let p = j["point"].as_str().unwrap();
        assert!(
            now_points.iter().any(|x| x == p),
            "point {p} of job {} is gone",
            j["id"]
        );
    }
    env.ok(&["--vault", main.to_str().unwrap(), "verify"]);
    assert!(
        String::from_utf8_lossy(&orphans.stdout).trim().is_empty(),
        "the stuck job's child outlived the killed daemon"
    );
}
