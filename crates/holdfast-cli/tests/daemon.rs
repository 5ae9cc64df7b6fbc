//! The scheduler daemon end to end, on the real clock (schedules with a seconds field):
//! backups at their cron times, copies in the second vault, retention, the catalog, the
//! metrics (checked by promtool) and the API; a failing source retried, alerted once and
//! recovered once through a real webhook receiver; SIGTERM and kill -9 mid-job leaving a
//! consistent catalog and vault.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const TOKEN: &str = "s3cret-api-token";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; returns (status, body).
fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // Chunked bodies: strip the chunk sizes (small bodies come in one chunk).
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n.min(tail.len())]);
            rest = tail.get(n + 2..).unwrap_or("");
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}

/// A webhook receiver recording every JSON body it gets.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let b = bodies.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let body = loop {
                    let n = s.read(&mut tmp).unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break Some(body[..len].to_string());
                        }
                    }
                };
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                if let Some(body) = body
                    && let Ok(v) = serde_json::from_str(&body)
                {
                    b.lock().unwrap().push(v);
                }
            }
        });
        Receiver { port, bodies }
    }

    fn events(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// A running `holdfast daemon`, killed when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(env: &Env, plan: &Path, log: &Path) -> Daemon {
        let f = std::fs::File::create(log).unwrap();
        let child = env
            .std_cmd()
            .args(["daemon", "--plan", plan.to_str().unwrap()])
            .env("HOLDFAST_API_TOKEN", TOKEN)
            .env("HOLDFAST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Wait for the process to end; its exit code.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the daemon did not stop within {limit:?}:\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

fn jobs(env: &Env, state: &Path) -> Vec<serde_json::Value> {
    if !state.join("catalog.sqlite").exists() {
        return vec![];
    }
    let v = env.json(&[
        "jobs",
        "--state-dir",
        state.to_str().unwrap(),
        "--limit",
        "0",
    ]);
    v.as_array().cloned().unwrap_or_default()
}

fn points(env: &Env, vault: &Path, resource: &str) -> Vec<serde_json::Value> {
    let o = env
        .cmd()
        .args([
            "--json",
            "--vault",
            vault.to_str().unwrap(),
            "points",
            "--resource",
            resource,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

/// Two vaults (same test passphrase, in a file) and the plan header.
fn setup(env: &Env, daemon_extra: &str) -> (PathBuf, PathBuf, PathBuf, u16, String) {
    let main = env.path("main");
    let dr = env.path("dr");
    for v in [&main, &dr] {
        env.ok(&["--vault", v.to_str().unwrap(), "init"]);
    }
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let state = env.path("state");
    let port = free_port();
    let head = format!(
        r#"[daemon]
state_dir = "{state}"
listen = "127.0.0.1:{port}"
api_token_env = "HOLDFAST_API_TOKEN"
retry_backoff = "1s"
shutdown_grace = "2s"
max_jobs = 3
{daemon_extra}

[vaults.main]
url = "{main}"
passphrase_file = "{pass}"

[vaults.dr]
url = "{dr}"
passphrase_file = "{pass}"
"#,
        state = state.display(),
        main = main.display(),
        dr = dr.display(),
        pass = pass.display()
    );
    (main, dr, state, port, head)
}

fn promtool_check(metrics: &str) {
    let Ok(mut c) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed (apt-get install prometheus)"
        );
        eprintln!("promtool not found: metrics not validated (CI installs it)");
        return;
    };
    c.stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics failed:\n{}{}\n{metrics}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

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
    let docs_main = points(&env, &main, "docs");
    let docs_dr = points(&env, &dr, "docs");
    assert!((1..=2).contains(&docs_main.len()), "{docs_main:#?}");
    assert!((1..=2).contains(&docs_dr.len()), "{docs_dr:#?}");
    assert!(points(&env, &main, "appdb").len() <= 3);
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

/// A loopback SMTP server recording each message's DATA.
fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::BufRead;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let m = mails.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut w) = s else { continue };
            let mut r = std::io::BufReader::new(w.try_clone().unwrap());
            let _ = w.write_all(b"220 test ESMTP\r\n");
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let cmd = line.trim_end().to_ascii_uppercase();
                if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                    let _ = w.write_all(b"250-test\r\n250 8BITMIME\r\n");
                } else if cmd.starts_with("DATA") {
                    let _ = w.write_all(b"354 go ahead\r\n");
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
                            break;
                        }
                        data.push_str(&line);
                    }
                    m.lock().unwrap().push(data);
                    let _ = w.write_all(b"250 queued\r\n");
                } else if cmd.starts_with("QUIT") {
                    let _ = w.write_all(b"221 bye\r\n");
                    break;
                } else {
                    let _ = w.write_all(b"250 OK\r\n");
                }
            }
        }
    });
    (port, mails)
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
