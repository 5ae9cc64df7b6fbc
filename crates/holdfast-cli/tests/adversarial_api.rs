//! The daemon's API against a client that does not play nice, through the real daemon on
//! loopback: a `limit` that overflows, bodies and headers too large, two runs asked for at
//! once, `/points` hammered (it must not start a process per call), and the state files'
//! modes under a permissive umask. Each test fails on the daemon before issue 10 item 9
//! (see each test's comment for how).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::daemon::*;
use common::*;

/// A schedule that does not fire during a test (midnight on January 1st).
const NEVER: &str = "0 0 0 1 1 *";

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn wait_job(port: u16, job: i64, limit: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(limit, &format!("job {job} to end"), || {
        let (_, b) = http(port, "GET", &format!("/api/v1/jobs/{job}"), Some(TOKEN));
        last = serde_json::from_str(&b).unwrap_or_default();
        matches!(
            last["state"].as_str(),
            Some("completed" | "partial" | "failed" | "expired" | "aborted")
        )
    });
    last
}

/// Old code: `limit=18446744073709551615` was formatted into the SQL and answered 500;
/// `limit=abc` got axum's plain-text rejection (not JSON); a 1 MiB body was ignored and the
/// run queued (202); 70 header fields and a 17 KiB header were accepted (hyper's defaults:
/// 100 fields, ~400 KiB); the state directory was 0755 and the catalog, its -wal and -shm
/// 0644 under umask 022.
#[test]
fn limits_bodies_headers_and_state_file_modes_are_bounded() {
    let env = Env::new();
    let (_main, _dr, state, port, head) = setup(&env, "");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "a").unwrap();
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[categories.c]
schedule = "{NEVER}"
vault = "main"
[categories.c.retention]
keep_last = 10

[resources.docs]
kind = "files"
category = "c"
paths = ["{data}"]
"#,
            data = data.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start_with_umask(&env, &plan, &env.path("daemon.log"), Some(0o022));
    d.wait_healthy(port);

    // `limit`: bounded, and every bad value is a 400 with a JSON error.
    for bad in ["18446744073709551615", "0", "1001", "-1", "abc", "1e3"] {
        let (st, body) = http(
            port,
            "GET",
            &format!("/api/v1/jobs?limit={bad}"),
            Some(TOKEN),
        );
        assert_eq!(st, 400, "limit={bad}: {body}");
        let e = json(&body)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(e.contains("limit"), "limit={bad}: {body}");
    }
    for good in ["1", "1000"] {
        let (st, body) = http(
            port,
            "GET",
            &format!("/api/v1/jobs?limit={good}"),
            Some(TOKEN),
        );
        assert_eq!(st, 200, "limit={good}: {body}");
    }
    let (st, body) = http(port, "GET", "/api/v1/jobs?state=bogus", Some(TOKEN));
    assert_eq!(
        (st, json(&body)["error"].is_string()),
        (400, true),
        "{body}"
    );
    let (st, body) = http(port, "GET", "/api/v1/jobs/abc", Some(TOKEN));
    assert_eq!(
        (st, json(&body)["error"].is_string()),
        (400, true),
        "{body}"
    );
    let (st, body) = http(port, "GET", "/api/v1/points", Some(TOKEN));
    assert_eq!(
        (st, json(&body)["error"].is_string()),
        (400, true),
        "{body}"
    );

    // A body over the limit: 413, and nothing queued.
    let (st, body) = http_raw(
        port,
        &format!(
            "POST /api/v1/resources/docs/run HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Length: 1048576\r\nConnection: close"
        ),
        b"",
    );
    assert_eq!(st, 413, "{body}");
    assert!(json(&body)["error"].is_string(), "{body}");
    // A small body is still fine.
    let (st, body) = http_raw(
        port,
        &format!(
            "GET /api/v1/rpo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: 2\r\nConnection: close"
        ),
        b"{}",
    );
    assert_eq!(st, 200, "{body}");

    // Too many header fields, and one header too large: 431.
    let many: String = (0..70).map(|i| format!("\r\nX-F{i}: v")).collect();
    let (st, _) = http_raw(
        port,
        &format!(
            "GET /api/v1/rpo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}{many}\r\nConnection: close"
        ),
        b"",
    );
    assert_eq!(st, 431, "70 header fields");
    let pad = "x".repeat(17 * 1024);
    let (st, _) = http_raw(
        port,
        &format!(
            "GET /api/v1/rpo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nX-Pad: {pad}\r\nConnection: close"
        ),
        b"",
    );
    assert_eq!(st, 431, "a 17 KiB header");
    // The server still answers after all that.
    assert_eq!(http(port, "GET", "/healthz", None).0, 200);

    // A run, so the catalog has written its WAL; then the modes.
    let (st, body) = http(port, "POST", "/api/v1/resources/docs/run", Some(TOKEN));
    assert_eq!(st, 202, "{body}");
    let job = json(&body)["job"].as_i64().unwrap();
    assert_eq!(
        wait_job(port, job, Duration::from_secs(60))["state"],
        "completed"
    );
    let backups = jobs(&env, &state)
        .into_iter()
        .filter(|j| j["kind"] == "backup")
        .count();
    assert_eq!(backups, 1, "the 413 request queued nothing");
    assert_eq!(mode(&state), 0o700, "state directory");
    for f in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
        assert_eq!(mode(&state.join(f)), 0o600, "{f}");
    }
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());
    assert_eq!(mode(&state.join("catalog.sqlite")), 0o600);
}

/// Old code: every POST recorded and queued a new job, so the second POST answered a
/// different job id and two backups (two verifies) ran.
#[test]
fn a_run_or_verify_already_queued_is_not_queued_twice() {
    let env = Env::new();
    let (_main, _dr, state, port, head) = setup(&env, "");
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[categories.c]
schedule = "{NEVER}"
vault = "main"
[categories.c.retention]
keep_last = 10

[resources.slow]
kind = "command"
category = "c"
command = "sh -c 'sleep 3; echo done'"
name = "slow.txt"
"#
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    d.wait_healthy(port);
    let post = |path: &str| {
        let (st, body) = http(port, "POST", path, Some(TOKEN));
        assert_eq!(st, 202, "{path}: {body}");
        let v = json(&body);
        (v["job"].as_i64().unwrap(), v["queued"].as_bool())
    };
    let run = "/api/v1/resources/slow/run";
    let verify = "/api/v1/vaults/main/verify";
    let (first, queued_first) = post(run);
    // The backup runs for 3 s and holds the vault's only job slot (max_jobs_per_vault = 1),
    // so the verify below stays queued behind it.
    let (again, queued_again) = post(run);
    assert_eq!(again, first, "the same run, not a new one");
    assert_eq!((queued_first, queued_again), (Some(true), Some(false)));
    // Several at the same moment: still the one run.
    let ids: Vec<i64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| post(run).0)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|i| *i == first), "{ids:?} vs {first}");
    let (v1, queued_v1) = post(verify);
    let (v2, queued_v2) = post(verify);
    assert_eq!(v2, v1, "the same verify, not a new one");
    assert_eq!((queued_v1, queued_v2), (Some(true), Some(false)));
    assert_ne!(v1, first);
    assert_eq!(
        wait_job(port, first, Duration::from_secs(60))["state"],
        "completed"
    );
    assert_eq!(
        wait_job(port, v1, Duration::from_secs(60))["state"],
        "completed"
    );
    let all = jobs(&env, &state);
    let count = |kind: &str| all.iter().filter(|j| j["kind"] == kind).count();
    assert_eq!((count("backup"), count("verify")), (1, 1), "{all:#?}");
    // Once it ended, a new request queues a new run.
    let (next, queued) = post(run);
    assert_eq!(queued, Some(true));
    assert_ne!(next, first);
    assert_eq!(
        wait_job(port, next, Duration::from_secs(60))["state"],
        "completed"
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());
}

/// Old code: each call started `holdfast points` (key derivation, index load), so once the
/// passphrase file was gone every call answered 502; and there was no
/// `holdfast_points_refreshes` to count the children.
#[test]
fn points_are_served_without_a_process_per_request() {
    let env = Env::new();
    let (_main, _dr, _state, port, head) = setup(&env, "");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "a").unwrap();
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"{head}
[categories.c]
schedule = "{NEVER}"
vault = "main"
[categories.c.retention]
keep_last = 10

[resources.docs]
kind = "files"
category = "c"
paths = ["{data}"]
"#,
            data = data.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    d.wait_healthy(port);
    let (_, body) = http(port, "POST", "/api/v1/resources/docs/run", Some(TOKEN));
    let job = json(&body)["job"].as_i64().unwrap();
    assert_eq!(
        wait_job(port, job, Duration::from_secs(60))["state"],
        "completed"
    );
    let get = || http(port, "GET", "/api/v1/points?resource=docs", Some(TOKEN));

    // Eight at once, on an empty cache: one answer for all.
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(get)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = answers[0].1.clone();
    assert_eq!(json(&first).as_array().map(Vec::len), Some(1), "{first}");
    for (st, body) in &answers {
        assert_eq!((*st, body), (200, &first));
    }
    // With the vault's passphrase gone a `holdfast points` child cannot open the vault:
    // every answer below comes from the daemon's cache, not from a process.
    let pass = env.path("pass");
    let away = env.path("pass.away");
    std::fs::rename(&pass, &away).unwrap();
    for i in 0..20 {
        let (st, body) = get();
        assert_eq!((st, &body), (200, &first), "call {i}");
    }
    let (_, metrics) = http(port, "GET", "/metrics", Some(TOKEN));
    assert_eq!(
        metric(&metrics, "holdfast_points_refreshes"),
        Some(1.0),
        "one child for 28 calls:\n{metrics}"
    );
    promtool_check(&metrics);
    // A job of this daemon that changes the vault makes the next call read it again.
    std::fs::rename(&away, &pass).unwrap();
    let (_, body) = http(port, "POST", "/api/v1/resources/docs/run", Some(TOKEN));
    let job = json(&body)["job"].as_i64().unwrap();
    assert_eq!(
        wait_job(port, job, Duration::from_secs(60))["state"],
        "completed"
    );
    let (st, body) = get();
    assert_eq!(st, 200, "{body}");
    assert_eq!(json(&body).as_array().map(Vec::len), Some(2), "{body}");
    let (_, metrics) = http(port, "GET", "/metrics", Some(TOKEN));
    assert_eq!(metric(&metrics, "holdfast_points_refreshes"), Some(2.0));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log());
}
