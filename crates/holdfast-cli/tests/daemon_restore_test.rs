//! Restore tests run by the daemon: on their schedule and through the API as `restore_test`
//! jobs; a failing check fails the job with the check named, alerts once through a real
//! webhook receiver and recovers once; the gauges pass promtool; a daemon killed with kill -9
//! in the middle of a test leaves nothing running, and the next start removes its folder.

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::*;
use common::*;

fn test_jobs(env: &Env, state: &Path) -> Vec<serde_json::Value> {
    jobs(env, state)
        .into_iter()
        .filter(|j| j["kind"] == "restore_test")
        .collect()
}

/// The plan: `app-db` (SQLite) and restore test `nightly` every 2 s with `checks`.
fn write_plan(env: &Env, head: &str, checks: &str) -> std::path::PathBuf {
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[categories.critical_data]
schedule = "0 0 1 1 *"
vault = "main"
rto = "4h"
[categories.critical_data.retention]
keep_last = 5

[resources.app-db]
kind = "sqlite"
category = "critical_data"
path = "{db}"

[restore_tests.nightly]
resources = ["app-db"]
schedule = "*/2 * * * * *"
max_rto = "15m"
completion_window = "10m"
checks = [{checks}]

[notifications.ops]
kind = "webhook"
url_env = "OPS_WEBHOOK"
"#,
            db = env.path("app.sqlite").display()
        ),
    )
    .unwrap();
    plan
}

fn tmp_env() -> (Env, std::path::PathBuf) {
    let mut env = Env::new();
    let tmp = env.private_tmpdir();
    sqlite_db(&env.path("app.sqlite"), 25);
    (env, tmp)
}

#[test]
fn scheduled_restore_tests_are_jobs_that_alert_once_and_recover() {
    let (env, tmp) = tmp_env();
    let hook = Receiver::start();
    let (_main, _dr, state, port, head) = setup(&env, "");
    let flag = env.path("broken");
    let plan = write_plan(
        &env,
        &head,
        &format!(
            r#"{{ row_counts = "match" }}, {{ command = "test ! -e {}" }}"#,
            flag.display()
        ),
    );
    let mut env = env;
    env.extra_env.push((
        "OPS_WEBHOOK".into(),
        format!("http://127.0.0.1:{}/hook", hook.port),
    ));
    let p = plan.to_str().unwrap();
    env.ok(&["run", "app-db", "--plan", p]);
    let mut d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    d.wait_healthy(port);
    wait_until(Duration::from_secs(60), "two passed restore tests", || {
        test_jobs(&env, &state)
            .iter()
            .filter(|j| j["state"] == "completed")
            .count()
            >= 2
    });
    let ok = test_jobs(&env, &state)
        .into_iter()
        .find(|j| j["state"] == "completed")
        .unwrap();
    assert_eq!(ok["resource"], "app-db");
    assert_eq!(ok["vault"], "main");
    assert_eq!(ok["test"], "nightly");
    assert_eq!(ok["trigger"], "schedule");
    let m = ok["message"].as_str().unwrap();
    assert!(
        m.starts_with("passed: 3 check(s), RTO ") && m.contains("(objective 15m)"),
        "{m}"
    );
    assert!(ok["point"].as_str().is_some_and(|p| p.len() == 64), "{ok}");

    // The smoke command fails: the jobs fail naming it; one alert however many fail.
    std::fs::write(&flag, "").unwrap();
    wait_until(
        Duration::from_secs(60),
        "three failed restore tests",
        || {
            test_jobs(&env, &state)
                .iter()
                .filter(|j| j["state"] == "failed")
                .count()
                >= 3
        },
    );
    let failed = test_jobs(&env, &state)
        .into_iter()
        .find(|j| j["state"] == "failed")
        .unwrap();
    let m = failed["message"].as_str().unwrap();
    assert!(
        m.starts_with("failed (point ") && m.contains("check command: test ! -e"),
        "{m}"
    );
    assert!(
        !m.contains("row_counts"),
        "only the failing check is named: {m}"
    );
    let (_, metrics) = http(port, "GET", "/metrics", Some(TOKEN));
    let labels = "{test=\"nightly\",resource=\"app-db\",vault=\"main\"}";
    assert!(
        metrics.contains(&format!("holdfast_restore_test_passed{labels} 0")),
        "{metrics}"
    );
    promtool_check(&metrics);

    // Mended: the next pass sends the recovery.
    std::fs::remove_file(&flag).unwrap();
    wait_until(Duration::from_secs(60), "a pass after the failures", || {
        test_jobs(&env, &state)
            .first()
            .is_some_and(|j| j["state"] == "completed")
    });
    // On demand through the API.
    assert_eq!(
        http(port, "POST", "/api/v1/restore-tests/nope/run", Some(TOKEN)).0,
        404
    );
    let (st, body) = http(
        port,
        "POST",
        "/api/v1/restore-tests/nightly/run",
        Some(TOKEN),
    );
    assert_eq!(st, 202, "{body}");
    let job = serde_json::from_str::<serde_json::Value>(&body).unwrap()["job"]
        .as_i64()
        .unwrap();
    wait_until(Duration::from_secs(60), "the API-triggered test", || {
        let (_, b) = http(port, "GET", &format!("/api/v1/jobs/{job}"), Some(TOKEN));
        serde_json::from_str::<serde_json::Value>(&b).is_ok_and(|j| {
            j["kind"] == "restore_test" && j["state"] == "completed" && j["trigger"] == "api"
        })
    });
    let (_, metrics) = http(port, "GET", "/metrics", Some(TOKEN));
    assert!(
        metrics.contains(&format!("holdfast_restore_test_passed{labels} 1")),
        "{metrics}"
    );
    let rto = metric(
        &metrics,
        &format!("holdfast_restore_test_last_rto_seconds{labels}"),
    )
    .unwrap();
    assert!(rto > 0.0 && rto < 60.0, "{rto}");
    assert!(
        metric(
            &metrics,
            &format!("holdfast_restore_test_last_success_timestamp_seconds{labels}")
        )
        .unwrap()
            > 1.7e9
    );
    promtool_check(&metrics);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());

    let ev = hook.events();
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["failure", "recovery"], "{ev:#?}");
    for e in &ev {
        assert_eq!(e["condition"], "restore_test:nightly");
        assert_eq!(e["resource"], "app-db");
    }
    let text = ev[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("holdfast: restore test nightly of app-db failed (job "),
        "{text}"
    );
    assert!(scratch_left(&tmp).is_empty(), "{:?}", scratch_left(&tmp));
}

#[test]
fn a_daemon_killed_during_a_restore_test_leaves_nothing_after_its_next_start() {
    let (env, tmp) = tmp_env();
    let (_main, _dr, state, port, head) = setup(&env, "");
    // A unique, long check; its shell keeps running a second command after it.
    let plan = write_plan(&env, &head, r#"{ command = "sleep 271; true" }"#);
    let mut env = env;
    env.extra_env
        .push(("OPS_WEBHOOK".into(), "http://127.0.0.1:9/none".into()));
    let p = plan.to_str().unwrap();
    env.ok(&["run", "app-db", "--plan", p]);
    let mut d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    d.wait_healthy(port);
    wait_until(Duration::from_secs(60), "a running restore test", || {
        !processes(|c| c == "sleep 271").is_empty() && !scratch_left(&tmp).is_empty()
    });
    assert!(
        test_jobs(&env, &state)
            .iter()
            .any(|j| j["state"] == "running"),
        "{:#?}",
        test_jobs(&env, &state)
    );
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait(Duration::from_secs(10));
    // The worker and the check's shell die with the daemon (PR_SET_PDEATHSIG); the shell's
    // own child and the folder stay until the next start.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!scratch_left(&tmp).is_empty());

    // The next start records the job aborted and removes the folder, before any new test.
    let plan_idle = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("schedule = \"*/2 * * * * *\"", "schedule = \"0 0 1 1 *\"");
    std::fs::write(&plan, plan_idle).unwrap();
    let mut d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    d.wait_healthy(port);
    assert!(scratch_left(&tmp).is_empty(), "{:?}", scratch_left(&tmp));
    let jobs = test_jobs(&env, &state);
    assert!(jobs.iter().any(|j| j["state"] == "aborted"), "{jobs:#?}");
    assert!(
        jobs.iter()
            .all(|j| j["state"] != "running" && j["state"] != "created"),
        "{jobs:#?}"
    );
    wait_until(
        Duration::from_secs(10),
        "the orphaned check to be killed",
        || processes(|c| c == "sleep 271").is_empty(),
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());
}
