//! `holdfast worker`, the daemon's child: a job on standard input, JSON-lines events on
//! standard output — progress, warnings, then `done` with the typed report or `failed` with
//! the error's kind and whether a retry may help.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;
use holdfast_ops::backup::{BackupRequest, SourceSpec};
use holdfast_ops::points::PointsRequest;
use holdfast_ops::worker::{Event, Job, PROTOCOL, Report, Request};

/// Run a worker with `request`; its events, its exit code and its stderr.
fn worker(env: &Env, request: Request) -> (Vec<Event>, i32, String) {
    let job = serde_json::to_vec(&Job {
        protocol: PROTOCOL,
        request,
    })
    .unwrap();
    worker_raw(env, &job)
}

/// Run a worker with `job` (bytes, as the daemon writes them) on its standard input.
fn worker_raw(env: &Env, job: &[u8]) -> (Vec<Event>, i32, String) {
    let mut child = env
        .std_cmd()
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(job).unwrap();
    let out = child.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event ({e}): {l}")))
        .collect();
    (events, code(&out), stderr(&out))
}

fn backup_request(src: &std::path::Path) -> Request {
    Request::Backup(BackupRequest {
        source: SourceSpec::Files {
            paths: vec![src.to_path_buf()],
            excludes: vec![],
            no_cache: false,
        },
        resource: Some("docs".into()),
        tags: vec!["category=test".into()],
        time_ns: None,
        host: None,
    })
}

#[test]
fn a_backup_job_reports_progress_then_its_typed_report() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, false);
    let (events, code, err) = worker(&env, backup_request(&src));
    assert_eq!(code, 0, "{err}");
    let Some(Event::Done {
        report: Report::Backup(b),
    }) = events.last()
    else {
        panic!("the last event is not a backup report: {events:?}");
    };
    assert_eq!(b.resource, "docs");
    assert!(!b.partial);
    assert!(b.summary.files_new > 0);
    // The report names a point the vault has.
    let pts = env.json(&["points"]);
    assert_eq!(pts[0]["id"], b.point.as_str());
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Progress { bytes } if *bytes > 0)),
        "{events:?}"
    );
}

#[test]
fn a_failure_says_its_kind_and_whether_a_retry_may_help() {
    let mut env = Env::new();
    // No vault there.
    env.vault = env.path("nothing-here").display().to_string();
    let (events, code, _) = worker(
        &env,
        Request::Points(PointsRequest {
            resource: None,
            tags: vec![],
        }),
    );
    assert_eq!(code, 10);
    match events.last() {
        Some(Event::Failed(f)) => {
            assert_eq!(f.kind, holdfast_engine::ErrorKind::NoVault);
            assert!(!f.retryable);
            assert!(f.message.contains("no vault"), "{}", f.message);
        }
        other => panic!("{other:?}"),
    }
    // A job of another protocol version is refused, not guessed at.
    let env = Env::new();
    env.init();
    let (events, _, _) = worker_raw(&env, br#"{"protocol": 99, "request": {"op": "points"}}"#);
    let last = events.last().unwrap();
    assert!(
        matches!(last, Event::Failed(f) if f.kind == holdfast_engine::ErrorKind::Unsupported),
        "{last:?}"
    );
}

#[test]
fn a_damaged_index_object_is_a_warning_event_not_stderr_only() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, false);
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["backup", src.to_str().unwrap(), "--no-cache"]);
    // Damage one index object of the two backups.
    let index = objects(&env.vault, "index");
    flip(&index[0], 40);
    let (events, code, err) = worker(
        &env,
        Request::Points(PointsRequest {
            resource: None,
            tags: vec![],
        }),
    );
    let warned = events
        .iter()
        .any(|e| matches!(e, Event::Warning { message } if message.contains("is damaged")));
    assert!(warned, "events {events:?}, exit {code}, stderr {err}");
}
