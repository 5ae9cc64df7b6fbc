//! The scheduler daemon end to end, on the real clock (schedules with a seconds field):
//! backups at their cron times, copies in the second vault, retention, the catalog, the
//! metrics (checked by promtool) and the API; a failing source retried, alerted once and
//! recovered once through a real webhook receiver; SIGHUP reloads; email alerts; the
//! systemd unit.

mod common;

use std::time::Duration;

use common::daemon::*;
use common::*;

#[test]
fn a_plan_runs_itself_under_the_daemon() {
    let env = Env::new();
    let (main, dr, state, port, head) = setup(&env, "");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "first").unwrap();
    let db = env.path("app.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b');")
            .unwrap();
    }
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[categories.often]
schedule = "*/3 * * * * *"
vault = "main"
copy_to = ["dr"]
start_window = "2s"
[categories.often.retention]
keep_last = 2

[categories.app]
schedule = "*/4 * * * * *"
vault = "main"
rpo = "1h"
[categories.app.retention]
keep_last = 3

[resources.docs]
kind = "files"
category = "often"
paths = ["{data}"]
post_hook = "echo \"$HOLDFAST_RESOURCE $HOLDFAST_JOB_STATE\" >> {hooklog}"

[resources.users]
kind = "command"
category = "often"
command = "sh -c 'date +%s%N'"
name = "users.txt"

[resources.appdb]
kind = "sqlite"
category = "app"
path = "{db}"
"#,
            data = data.display(),
            db = db.display(),
            hooklog = env.path("hook.log").display()
        ),
    )
    .unwrap();
    env.ok(&["plan", "check", plan.to_str().unwrap()]);
    let shown = env.ok(&["plan", "show", plan.to_str().unwrap()]);
    assert!(
        shown.contains("docs") && shown.contains("main -> dr"),
        "{shown}"
    );

    let mut d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    // Enough for several runs of each category.
    wait_until(
        Duration::from_secs(60),
        "three completed backups of each resource",
        || {
            let j = jobs(&env, &state);
            ["docs", "users", "appdb"].iter().all(|r| {
                j.iter()
                    .filter(|x| {
                        x["resource"] == *r && x["kind"] == "backup" && x["state"] == "completed"
                    })
                    .count()
                    >= 4
            })
        },
    );
    // The API: 401 without the token, data with it, a run on demand.
    assert_eq!(http(port, "GET", "/api/v1/jobs", None).0, 401);
    assert_eq!(http(port, "GET", "/api/v1/jobs", Some("wrong")).0, 401);
    assert_eq!(http(port, "GET", "/metrics", None).0, 401);
    assert_eq!(http(port, "GET", "/healthz", None).0, 200);
    let (st, body) = http(port, "GET", "/api/v1/resources", Some(TOKEN));
    assert_eq!(st, 200, "{body}");
    let res: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(res.as_array().unwrap().len(), 3);
    let (st, body) = http(port, "GET", "/api/v1/rpo", Some(TOKEN));
    assert_eq!(st, 200);
    let rpo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let app = rpo
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "appdb")
        .unwrap();
    assert_eq!(app["breach"], false, "{body}");
    assert_eq!(app["rpo_seconds"], 3600);
    let (st, body) = http(port, "GET", "/api/v1/points?resource=docs", Some(TOKEN));
    assert_eq!(st, 200, "{body}");
    assert!(
        !serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        http(port, "POST", "/api/v1/resources/nope/run", Some(TOKEN)).0,
        404
    );
    let (st, body) = http(port, "POST", "/api/v1/resources/appdb/run", Some(TOKEN));
    assert_eq!(st, 202, "{body}");
    let job = serde_json::from_str::<serde_json::Value>(&body).unwrap()["job"]
        .as_i64()
        .unwrap();
    wait_until(Duration::from_secs(30), "the API-triggered job", || {
        let (_, b) = http(port, "GET", &format!("/api/v1/jobs/{job}"), Some(TOKEN));
        serde_json::from_str::<serde_json::Value>(&b).is_ok_and(|j| j["state"] == "completed")
    });
    let (st, metrics) = http(port, "GET", "/metrics", Some(TOKEN));
    assert_eq!(st, 200);
    for m in [
        "holdfast_resource_last_success_timestamp_seconds{resource=\"docs\",category=\"often\"}",
        "holdfast_resource_last_duration_seconds{",
        "holdfast_resource_last_added_bytes{",
        "holdfast_resource_rpo_breach{resource=\"appdb\",category=\"app\"} 0",
        "holdfast_jobs{kind=\"backup\",state=\"completed\"}",
        "holdfast_jobs{kind=\"copy\",state=\"completed\"}",
    ] {
        assert!(metrics.contains(m), "{m} missing:\n{metrics}");
    }
    promtool_check(&metrics);

    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());

    let all = jobs(&env, &state);
    assert!(
        all.iter()
            .all(|j| j["state"] != "running" && j["state"] != "created"),
        "{all:#?}"
    );
    // Backups ran at their cron times: every scheduled time is on the 3 s / 4 s grid and
    // each started soon after it.
    for j in all
        .iter()
        .filter(|j| j["kind"] == "backup" && j["trigger"] == "schedule")
    {
        let sched = j["scheduled_ns"].as_i64().unwrap();
        let period = if j["resource"] == "appdb" { 4 } else { 3 };
        assert_eq!(sched % 1_000_000_000, 0, "{j}");
        assert_eq!((sched / 1_000_000_000) % period, 0, "{j}");
        if j["state"] == "completed" {
            let started = j["started_ns"].as_i64().unwrap();
            assert!(started >= sched, "{j}");
        }
    }
    // Every job completed; each backup of a copied category has its copy and retention.
    let failed: Vec<_> = all.iter().filter(|j| j["state"] != "completed").collect();
    assert!(
        failed
            .iter()
            .all(|j| j["state"] == "aborted" || j["state"] == "expired"),
        "{failed:#?}\n{}",
        d.log()
    );
    for kind in ["copy", "retention", "prune"] {
        assert!(
            all.iter()
                .any(|j| j["kind"] == kind && j["state"] == "completed"),
            "no completed {kind} job"
        );
    }
    // Copies landed in the second vault; retention kept 2 (docs, users) and 3 (appdb).
    let backups_docs = all
        .iter()
        .filter(|j| j["kind"] == "backup" && j["resource"] == "docs" && j["state"] == "completed")
        .count();
    assert!(backups_docs >= 4);
    // Points that arrived in a vault after its last completed retention of docs (the
    // shutdown may abort the retention job that follows a backup or copy) are kept on top
    // of the 2, as for appdb below.
    let late = |kind: &str, vault: &str| {
        let last = all
            .iter()
            .filter(|j| {
                j["kind"] == "retention"
                    && j["resource"] == "docs"
                    && j["vault"] == vault
                    && j["state"] == "completed"
            })
            .filter_map(|j| j["started_ns"].as_i64())
            .max()
            .unwrap_or(0);
        all.iter()
            .filter(|j| j["kind"] == kind && j["resource"] == "docs" && j["state"] == "completed")
            .filter(|j| j["vault"] == vault)
            .filter(|j| j["ended_ns"].as_i64().unwrap_or(0) > last)
            .count()
    };
    let docs_main = points(&env, &main, "docs");
    let docs_dr = points(&env, &dr, "docs");
    let (late_main, late_dr) = (late("backup", "main"), late("copy", "dr"));
    assert!(
        (1..=2 + late_main).contains(&docs_main.len()),
        "{late_main} after retention: {docs_main:#?}"
    );
    assert!(
        (1..=2 + late_dr).contains(&docs_dr.len()),
        "{late_dr} after retention: {docs_dr:#?}"
    );
    // A backup that completed after the last retention run (shutdown may abort the retention
    // job that follows it) is kept on top of the 3.
    let last_retention = all
        .iter()
        .filter(|j| {
            j["kind"] == "retention" && j["resource"] == "appdb" && j["state"] == "completed"
        })
        .filter_map(|j| j["started_ns"].as_i64())
        .max()
        .unwrap_or(0);
    let after = all
        .iter()
        .filter(|j| j["kind"] == "backup" && j["resource"] == "appdb" && j["state"] == "completed")
        .filter(|j| j["ended_ns"].as_i64().unwrap_or(0) > last_retention)
        .count();
    let appdb = points(&env, &main, "appdb");
    assert!(
        appdb.len() <= 3 + after,
        "{} points, {after} after retention",
        appdb.len()
    );
    assert!(points(&env, &dr, "appdb").is_empty(), "appdb is not copied");
    // The kept points are the newest backups, and each is in the catalog.
    let recorded: Vec<&str> = all.iter().filter_map(|j| j["point"].as_str()).collect();
    for p in &docs_main {
        assert!(recorded.contains(&p["id"].as_str().unwrap()), "{p}");
    }
    let hooks = std::fs::read_to_string(env.path("hook.log")).unwrap();
    assert!(
        hooks.lines().count() >= 4 && hooks.contains("docs completed"),
        "{hooks}"
    );
    env.ok(&["--vault", main.to_str().unwrap(), "verify"]);
    env.ok(&["--vault", dr.to_str().unwrap(), "verify"]);
    // `jobs` filters.
    let failed_only = env.json(&[
        "jobs",
        "--state-dir",
        state.to_str().unwrap(),
        "--state",
        "failed",
    ]);
    assert!(failed_only.as_array().unwrap().is_empty());
    let text = env.ok(&[
        "jobs",
        "--state-dir",
        state.to_str().unwrap(),
        "--resource",
        "docs",
        "--kind",
        "copy",
    ]);
    assert!(text.contains("copy") && !text.contains("appdb"), "{text}");
}

#[test]
fn a_failing_source_is_retried_alerted_once_and_recovers_once() {
    let env = Env::new();
    let hook = Receiver::start();
    let (_main, _dr, state, _port, head) = setup(&env, "retries = 1");
    let flag = env.path("down");
    std::fs::write(&flag, "").unwrap();
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[categories.often]
schedule = "*/2 * * * * *"
vault = "main"
[categories.often.retention]
keep_last = 5

[resources.exporter]
kind = "command"
category = "often"
command = "sh -c 'if [ -e {flag} ]; then echo \"the export API is down\" >&2; exit 1; fi; echo ok'"
name = "export.json"

[notifications.ops]
kind = "webhook"
url_env = "OPS_WEBHOOK"
"#,
            flag = flag.display()
        ),
    )
    .unwrap();
    let mut env = env;
    env.extra_env.push((
        "OPS_WEBHOOK".into(),
        format!("http://127.0.0.1:{}/hook", hook.port),
    ));
    let mut d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    wait_until(Duration::from_secs(60), "three failed backups", || {
        jobs(&env, &state)
            .iter()
            .filter(|j| j["kind"] == "backup" && j["state"] == "failed")
            .count()
            >= 3
    });
    let failed: Vec<_> = jobs(&env, &state)
        .into_iter()
        .filter(|j| j["state"] == "failed")
        .collect();
    for j in &failed {
        assert_eq!(j["attempts"], 2, "retried once: {j}");
        let m = j["message"].as_str().unwrap();
        assert!(
            m.contains("the export API is down") && m.contains("after 2 attempts"),
            "{m}"
        );
    }
    std::fs::remove_file(&flag).unwrap();
    wait_until(Duration::from_secs(30), "a completed backup", || {
        jobs(&env, &state)
            .iter()
            .any(|j| j["kind"] == "backup" && j["state"] == "completed")
    });
    // Let a few more successful runs happen: they must not notify again.
    std::thread::sleep(Duration::from_secs(5));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0));
    let ev = hook.events();
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["failure", "recovery"], "{ev:#?}");
    assert_eq!(ev[0]["resource"], "exporter");
    assert_eq!(ev[0]["condition"], "backup");
    assert_eq!(ev[0]["state"], "failed");
    assert!(
        ev[0]["text"]
            .as_str()
            .unwrap()
            .contains("the export API is down")
    );
    assert!(
        ev[1]["text"].as_str().unwrap().contains("recovered"),
        "{}",
        ev[1]
    );
    // The webhook URL (a secret) is not in the log.
    assert!(!d.log().contains(&hook.port.to_string()) || !d.log().contains("/hook"));
}

#[test]
fn sighup_reloads_the_plan_and_email_alerts_arrive() {
    let env = Env::new();
    let (smtp_port, mails) = smtp_server();
    let (_main, _dr, state, _port, head) = setup(&env, "retries = 0");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), "x").unwrap();
    let base = format!(
        r#"{head}
[categories.often]
schedule = "*/2 * * * * *"
vault = "main"
[categories.often.retention]
keep_last = 3

[resources.a]
kind = "files"
category = "often"
paths = ["{data}"]

[notifications.mail]
kind = "email"
to = ["ops@example.com"]
smtp = "127.0.0.1:{smtp_port}"
smtp_security = "none"
from = "holdfast@example.com"
events = ["failure", "recovery"]
"#,
        data = data.display()
    );
    let plan = env.path("holdfast.toml");
    std::fs::write(&plan, &base).unwrap();
    let mut d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    let count = |r: &str, st: &str| {
        jobs(&env, &state)
            .iter()
            .filter(|j| j["resource"] == r && j["kind"] == "backup" && j["state"] == st)
            .count()
    };
    wait_until(Duration::from_secs(30), "a backup of a", || {
        count("a", "completed") >= 1
    });
    // Add a resource that fails; SIGHUP.
    std::fs::write(
        &plan,
        format!(
            "{base}\n[resources.b]\nkind = \"command\"\ncategory = \"often\"\ncommand = \"sh -c 'echo no route to the export API >&2; exit 3'\"\n"
        ),
    )
    .unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until(Duration::from_secs(30), "a failed backup of b", || {
        count("b", "failed") >= 2
    });
    wait_until(Duration::from_secs(30), "the failure email", || {
        !mails.lock().unwrap().is_empty()
    });
    // A broken plan is refused; the running plan stays.
    std::fs::write(
        &plan,
        format!(
            "{base}\n[resources.c]\nkind = \"files\"\ncategory = \"often\"\npathz = [\"/x\"]\n"
        ),
    )
    .unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until(Duration::from_secs(10), "the refusal in the log", || {
        d.log().contains("plan not reloaded")
    });
    let a_before = count("a", "completed");
    let b_before = count("b", "failed");
    wait_until(
        Duration::from_secs(30),
        "more runs under the old plan",
        || count("a", "completed") > a_before && count("b", "failed") > b_before,
    );
    assert!(
        d.log().contains("pathz"),
        "the refusal names the problem:\n{}",
        d.log()
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0));
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "one alert for one outage: {mails:#?}");
    let m = &mails[0];
    assert!(m.contains("Subject: [holdfast] failure b: backup"), "{m}");
    assert!(m.contains("To: ops@example.com"), "{m}");
    assert!(m.contains("no route to the export API"), "{m}");
}

#[test]
fn the_systemd_unit_runs_the_daemon_and_outlasts_its_grace() {
    let unit = std::fs::read_to_string(
        holdfast_testkit::workspace_root().join("docs/examples/holdfast.service"),
    )
    .unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/local/bin/holdfast daemon --plan /etc/holdfast/holdfast.toml"
        )
    );
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("KillMode=mixed"));
    // TimeoutStopSec must exceed the default shutdown_grace (5 min) + 10 s of stopping.
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap();
    let secs = if let Some(m) = stop.strip_suffix("min") {
        m.parse::<u64>().unwrap() * 60
    } else {
        stop.trim_end_matches('s').parse::<u64>().unwrap()
    };
    assert!(secs > 310, "{stop}");
    // systemd's own parser, where there is one.
    let bin = assert_cmd::cargo::cargo_bin("holdfast");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holdfast.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/holdfast", bin.to_str().unwrap()),
    )
    .unwrap();
    match std::process::Command::new("systemd-analyze")
        .args(["verify", path.to_str().unwrap()])
        .output()
    {
        Ok(o) => assert!(
            o.status.success() && o.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => eprintln!("systemd-analyze not installed: unit syntax not checked by systemd"),
    }
}

/// An alert whose webhook is down is kept in the catalog's outbox and retried until it is
/// delivered — by the same daemon when the webhook comes back, and by the next daemon after
/// a crash — and still only once per incident. Old code tried three times (2 s, 4 s apart),
/// then dropped the alert while the incident stayed open: run against it, the wait for a
/// fourth attempt times out (and after the restart nothing would ever be delivered).
#[test]
fn an_undelivered_alert_is_retried_until_delivered_even_across_a_restart() {
    let env = Env::new();
    let hook_port = free_port();
    let (_main, _dr, state, port, head) = setup(&env, "retries = 0");
    let flag = env.path("down");
    std::fs::write(&flag, "").unwrap();
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[categories.often]
schedule = "*/2 * * * * *"
vault = "main"
[categories.often.retention]
keep_last = 5

[resources.exporter]
kind = "command"
category = "often"
command = "sh -c 'if [ -e {flag} ]; then echo \"the export API is down\" >&2; exit 1; fi; echo ok'"
name = "export.json"

[notifications.ops]
kind = "webhook"
url_env = "OPS_WEBHOOK"
"#,
            flag = flag.display()
        ),
    )
    .unwrap();
    let mut env = env;
    env.extra_env.push((
        "OPS_WEBHOOK".into(),
        format!("http://127.0.0.1:{hook_port}/hook"),
    ));
    let log = env.path("daemon.log");
    let failed = |env: &Env| {
        jobs(env, &state)
            .iter()
            .filter(|j| j["kind"] == "backup" && j["state"] == "failed")
            .count()
    };

    // 1. The webhook answers 500: the first alert fails, again and again (more than the three
    //    attempts the old code made).
    let hook = Webhook::start_on(hook_port, 500);
    let mut d = Daemon::start(&env, &plan, &log);
    wait_until(
        Duration::from_secs(60),
        "four attempts at the alert",
        || hook.hits() >= 4,
    );
    assert!(hook.events().is_empty());
    // 2. The daemon crashes with the alert undelivered; the webhook goes down too.
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait(Duration::from_secs(30));
    drop(hook);
    let before = failed(&env);
    assert!(before >= 2, "several failures, one incident");
    // 3. The webhook is back; a new daemon delivers the alert at once, and only that one.
    let hook = Webhook::start_on(hook_port, 200);
    let mut d = Daemon::start(&env, &plan, &log);
    wait_until(
        Duration::from_secs(30),
        "the failure alert, after the restart",
        || !hook.events().is_empty(),
    );
    wait_until(Duration::from_secs(30), "more failed runs", || {
        failed(&env) >= before + 2
    });
    let ev = hook.events();
    assert_eq!(ev.len(), 1, "one alert per incident: {ev:#?}");
    assert_eq!(
        (ev[0]["event"].as_str(), ev[0]["resource"].as_str()),
        (Some("failure"), Some("exporter"))
    );
    assert!(
        ev[0]["text"]
            .as_str()
            .unwrap()
            .contains("the export API is down")
    );
    // 4. The webhook fails again (500) while the source recovers: the recovery message is
    //    pending (and shown as such), then delivered when the webhook answers again.
    hook.set_status(500);
    let hits = hook.hits();
    std::fs::remove_file(&flag).unwrap();
    wait_until(
        Duration::from_secs(30),
        "a failed attempt at the recovery",
        || hook.hits() > hits,
    );
    let (_, metrics) = http(port, "GET", "/metrics", Some(TOKEN));
    assert_eq!(
        metric(&metrics, "holdfast_notifications_pending"),
        Some(1.0),
        "{metrics}"
    );
    promtool_check(&metrics);
    let (st, body) = http(
        port,
        "GET",
        "/api/v1/notifications?pending=true",
        Some(TOKEN),
    );
    assert_eq!(st, 200, "{body}");
    let pending: serde_json::Value = serde_json::from_str(&body).unwrap();
    let pending = pending.as_array().unwrap();
    assert_eq!(pending.len(), 1, "{body}");
    assert_eq!(pending[0]["event"]["event"], "recovery");
    assert_eq!(pending[0]["channel"], "ops");
    assert!(pending[0]["attempts"].as_u64().unwrap() >= 1, "{body}");
    assert!(
        pending[0]["last_error"].as_str().unwrap().contains("500"),
        "{body}"
    );
    hook.set_status(200);
    wait_until(Duration::from_secs(30), "the recovery message", || {
        hook.events().len() >= 2
    });
    let (_, metrics) = http(port, "GET", "/metrics", Some(TOKEN));
    assert_eq!(
        metric(&metrics, "holdfast_notifications_pending"),
        Some(0.0)
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());
    let kinds: Vec<String> = hook
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(kinds, ["failure", "recovery"]);
    // The webhook URL (a secret) is in neither the log nor the catalog's outbox.
    let url = format!("127.0.0.1:{hook_port}/hook");
    assert!(!d.log().contains(&url), "{}", d.log());
    let c = rusqlite::Connection::open(state.join("catalog.sqlite")).unwrap();
    let stored: String = c
        .query_row(
            "SELECT group_concat(event || COALESCE(last_error, ''), ' ') FROM outbox",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!stored.contains(&url), "{stored}");
}
