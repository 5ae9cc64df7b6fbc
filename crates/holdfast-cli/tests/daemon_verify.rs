//! Verify and restore jobs: a vault verified on its `[vaults.NAME.verify]` schedule by the
//! daemon, a damaged pack failing the verify with the points it affects, one alert and one
//! recovery through a real webhook receiver, the vault gauges passing promtool; restores
//! through the plan recorded as jobs with their duration against the RTO.

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::*;
use common::*;

fn verify_jobs(env: &Env, state: &Path) -> Vec<serde_json::Value> {
    jobs(env, state)
        .into_iter()
        .filter(|j| j["kind"] == "verify")
        .collect()
}

#[test]
fn a_scheduled_verify_finds_damage_alerts_once_and_recovers() {
    let env = Env::new();
    let hook = Receiver::start();
    let (main, _dr, state, port, head) = setup(&env, "");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("report.pdf"), random_bytes(7, 300_000)).unwrap();
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[vaults.main.verify]
schedule = "*/2 * * * * *"
read_data = "all"
completion_window = "1m"

[categories.yearly]
schedule = "0 0 1 1 *"
vault = "main"
[categories.yearly.retention]
keep_last = 5

[resources.docs]
kind = "files"
category = "yearly"
paths = ["{data}"]

[notifications.ops]
kind = "webhook"
url_env = "OPS_WEBHOOK"
"#,
            data = data.display()
        ),
    )
    .unwrap();
    let mut env = env;
    env.extra_env.push((
        "OPS_WEBHOOK".into(),
        format!("http://127.0.0.1:{}/hook", hook.port),
    ));
    let shown = env.ok(&["plan", "show", plan.to_str().unwrap()]);
    assert!(
        shown.contains("verify:all") && shown.contains("*/2 * * * * *"),
        "{shown}"
    );
    env.ok(&["run", "docs", "--plan", plan.to_str().unwrap()]);
    let point = points(&env, &main, "docs")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    wait_until(Duration::from_secs(60), "two clean verifies", || {
        verify_jobs(&env, &state)
            .iter()
            .filter(|j| j["state"] == "completed")
            .count()
            >= 2
    });
    let clean = verify_jobs(&env, &state)
        .into_iter()
        .find(|j| j["state"] == "completed")
        .unwrap();
    assert_eq!(clean["resource"], "*");
    assert_eq!(clean["vault"], "main");
    assert_eq!(clean["trigger"], "schedule");
    let m = clean["message"].as_str().unwrap();
    assert!(
        m.starts_with("no problems: 1 point(s)") && m.contains("read in full"),
        "{m}"
    );

    // Damage the data pack: the next verify fails, naming the pack and the point.
    let pack = objects(main.to_str().unwrap(), "packs").pop().unwrap();
    let mid = std::fs::metadata(&pack).unwrap().len() as usize / 2;
    flip(&pack, mid);
    wait_until(Duration::from_secs(30), "a failed verify", || {
        verify_jobs(&env, &state)
            .iter()
            .any(|j| j["state"] == "failed")
    });
    let failed = verify_jobs(&env, &state)
        .into_iter()
        .find(|j| j["state"] == "failed")
        .unwrap();
    let m = failed["message"].as_str().unwrap();
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    assert!(
        m.contains("damaged object(s)") && m.contains(&pack_name[..8]),
        "{m}"
    );
    assert!(m.contains(&format!("{} of docs", &point[..8])), "{m}");
    // Several failing verifies: still one alert.
    wait_until(Duration::from_secs(30), "three failed verifies", || {
        verify_jobs(&env, &state)
            .iter()
            .filter(|j| j["state"] == "failed")
            .count()
            >= 3
    });
    let (st, body) = http(port, "GET", "/api/v1/vaults", Some(TOKEN));
    assert_eq!(st, 200, "{body}");
    let vaults: serde_json::Value = serde_json::from_str(&body).unwrap();
    let v = vaults
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vault"] == "main")
        .unwrap();
    assert_eq!(v["verify_schedule"], "*/2 * * * * *");
    assert_eq!(v["read_data"], "all");
    assert!(v["next_verify"].is_string(), "{v}");
    let (_, metrics) = http(port, "GET", "/metrics", Some(TOKEN));
    assert!(
        metrics.contains("holdfast_vault_verify_ok{vault=\"main\"} 0"),
        "{metrics}"
    );
    promtool_check(&metrics);

    // Repaired (the original bytes back): the next verify is clean, one recovery message.
    flip(&pack, mid);
    let failed_count = verify_jobs(&env, &state)
        .iter()
        .filter(|j| j["state"] == "failed")
        .count();
    wait_until(
        Duration::from_secs(30),
        "a clean verify after the repair",
        || {
            let v = verify_jobs(&env, &state);
            v.first().is_some_and(|j| j["state"] == "completed")
                && v.iter().filter(|j| j["state"] == "failed").count() >= failed_count
        },
    );
    // On demand through the API.
    assert_eq!(
        http(port, "POST", "/api/v1/vaults/nope/verify", Some(TOKEN)).0,
        404
    );
    assert_eq!(
        http(port, "POST", "/api/v1/vaults/main/verify", None).0,
        401
    );
    let (st, body) = http(port, "POST", "/api/v1/vaults/main/verify", Some(TOKEN));
    assert_eq!(st, 202, "{body}");
    let job = serde_json::from_str::<serde_json::Value>(&body).unwrap()["job"]
        .as_i64()
        .unwrap();
    wait_until(Duration::from_secs(30), "the API-triggered verify", || {
        let (_, b) = http(port, "GET", &format!("/api/v1/jobs/{job}"), Some(TOKEN));
        serde_json::from_str::<serde_json::Value>(&b)
            .is_ok_and(|j| j["state"] == "completed" && j["trigger"] == "api")
    });
    let (_, metrics) = http(port, "GET", "/metrics", Some(TOKEN));
    for m in [
        "holdfast_vault_verify_ok{vault=\"main\"} 1",
        "holdfast_vault_last_verify_timestamp_seconds{vault=\"main\"}",
        "holdfast_vault_last_clean_verify_timestamp_seconds{vault=\"main\"}",
        "holdfast_jobs{kind=\"verify\",state=\"failed\"}",
    ] {
        assert!(metrics.contains(m), "{m} missing:\n{metrics}");
    }
    promtool_check(&metrics);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());

    let ev = hook.events();
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["failure", "recovery"], "{ev:#?}");
    for e in &ev {
        assert_eq!(e["condition"], "verify");
        assert_eq!(e["vault"], "main");
        assert_eq!(e["resource"], "*");
    }
    let text = ev[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("holdfast: verify of vault main failed") && text.contains("damaged"),
        "{text}"
    );
    let all = jobs(&env, &state);
    assert!(
        all.iter()
            .all(|j| j["state"] != "running" && j["state"] != "created"),
        "{all:#?}"
    );
}

#[test]
fn restores_through_the_plan_are_jobs_measured_against_the_rto() {
    let env = Env::new();
    let (main, _dr, state, _port, head) = setup(&env, "");
    let data = env.path("data");
    make_tree(&data, false);
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[categories.app]
schedule = "0 2 * * *"
rto = "1h"
vault = "main"
[categories.app.retention]
keep_last = 5

[resources.docs]
kind = "files"
category = "app"
paths = ["{data}"]
"#,
            data = data.display()
        ),
    )
    .unwrap();
    let p = plan.to_str().unwrap();
    env.ok(&["run", "docs", "--plan", p]);
    let point = points(&env, &main, "docs")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The vault and its secret come from the plan: no --vault, no passphrase in the env.
    let target = env.path("restored");
    let o = env
        .cmd()
        .env_remove("HOLDFAST_VAULT")
        .env_remove("HOLDFAST_PASSPHRASE")
        .args(["restore", "latest:docs", "--plan", p, "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("restore: completed: restored") && out.contains("within the RTO of 1h"),
        "{out}"
    );
    assert_same_tree(&data, &restored(&target, &data));
    let restores = env.json(&[
        "jobs",
        "--state-dir",
        state.to_str().unwrap(),
        "--kind",
        "restore",
    ]);
    let r = &restores.as_array().unwrap()[0];
    assert_eq!(r["state"], "completed", "{r}");
    assert_eq!(r["resource"], "docs");
    assert_eq!(r["vault"], "main");
    assert_eq!(r["trigger"], "manual");
    assert_eq!(r["point"], point.as_str());
    assert!(r["ended_ns"].as_i64() >= r["started_ns"].as_i64());

    // An id without a vault: a clear error, and no job.
    let o = env
        .cmd()
        .args(["restore", &point[..8], "--plan", p, "--target"])
        .arg(env.path("x"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--from VAULT"), "{}", stderr(&o));
    // A point that is not there: the job is recorded failed with the cause.
    let o = env
        .cmd()
        .args([
            "restore", "ffffffff", "--plan", p, "--from", "main", "--target",
        ])
        .arg(env.path("y"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("restore job"), "{}", stderr(&o));
    let failed = env.json(&[
        "jobs",
        "--state-dir",
        state.to_str().unwrap(),
        "--kind",
        "restore",
        "--state",
        "failed",
    ]);
    let f = &failed.as_array().unwrap()[0];
    assert_eq!(f["resource"], "*");
    assert!(f["message"].as_str().unwrap().contains("ffffffff"), "{f}");
    assert!(!env.path("y").exists());

    // `run --verify` records a verify job of the vault.
    let v = env.json(&["run", "--verify", "main", "--plan", p]);
    let job = &v.as_array().unwrap()[0]["jobs"][0];
    assert_eq!(job["kind"], "verify");
    assert_eq!(job["state"], "completed", "{v}");
    let o = env
        .cmd()
        .args(["run", "--verify", "nowhere", "--plan", p])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("vault \"nowhere\" is not in the plan"));
}
