//! `holdfast worker` (hidden): run one operation for the daemon. The job comes as JSON on
//! stdin, events go out as JSON lines on stdout (holdfast_ops::worker). Nothing else is
//! written to stdout; stderr carries only what a person reading the daemon's log may want.

use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use holdfast_engine::{Error, ErrorKind, Result};
use holdfast_ops::Sink;
use holdfast_ops::worker::{Event, Failure, Job, PROTOCOL, Report, Request};

use super::Ctx;
use crate::exit;

/// How often progress is reported at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Events to stdout, one line each; progress at most every [`PROGRESS_EVERY`].
struct Lines {
    out: Mutex<(std::io::Stdout, u64, Option<Instant>)>,
}

impl Lines {
    fn emit(&self, e: &Event) {
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(g.0, "{}", e.to_line());
        let _ = g.0.flush();
    }
}

impl Sink for Lines {
    fn bytes(&self, n: u64) {
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        g.1 += n;
        if g.2.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            g.2 = Some(Instant::now());
            let line = Event::Progress { bytes: g.1 }.to_line();
            let _ = writeln!(g.0, "{line}");
            let _ = g.0.flush();
        }
    }
    fn warning(&self, message: &str) {
        self.emit(&Event::Warning {
            message: message.into(),
        });
    }
    fn note(&self, message: &str) {
        self.emit(&Event::Note {
            message: message.into(),
        });
    }
}

fn read_job() -> Result<Job> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Error::io("<stdin>", e))?;
    let job: Job = serde_json::from_str(&text)
        .map_err(|e| Error::Input(format!("the worker's job is not valid: {e}")))?;
    if job.protocol != PROTOCOL {
        return Err(Error::Unsupported(format!(
            "worker protocol {} asked; this holdfast speaks {PROTOCOL}",
            job.protocol
        )));
    }
    Ok(job)
}

/// Run the operation; Ok((report, partial)).
fn perform(ctx: &Ctx, sink: &Lines, request: &Request) -> Result<(Report, bool)> {
    Ok(match request {
        Request::Backup(req) => {
            if matches!(req.source, holdfast_ops::backup::SourceSpec::Stdin { .. }) {
                return Err(Error::Input(
                    "a worker's standard input carries its job, not data to back up".into(),
                ));
            }
            let r = super::backup::run(ctx, sink, req)?;
            let partial = r.partial;
            (Report::Backup(r), partial)
        }
        Request::BaseBackup(req) => (
            Report::BaseBackup(super::pg::basebackup(ctx, sink, req)?),
            false,
        ),
        Request::Copy(req) => (Report::Copy(super::copy::run(ctx, sink, req)?), false),
        Request::Forget(req) => (
            Report::Forget(super::lifecycle::run_forget(ctx, req)?),
            false,
        ),
        Request::Prune(req) => (
            Report::Prune(super::lifecycle::run_prune(ctx, sink, req)?.report),
            false,
        ),
        Request::Verify(req) => (
            Report::Verify(super::admin::run_verify(ctx, sink, req)?),
            false,
        ),
        Request::Restore(req) => {
            let r = super::read::run_restore(ctx, sink, req)?;
            let partial = r.partial();
            (Report::Restore(r), partial)
        }
        Request::RestoreTest(req) => {
            // A failed check is the report's verdict (exit 4 below), not a partial result.
            let r = super::restore_test::run_request(ctx, sink, req)?;
            (Report::RestoreTest(r), false)
        }
        Request::Points(req) => {
            let listed = super::read::run_points(ctx, sink, req)?;
            if let Some(d) = listed.damage.first() {
                return Err(Error::damaged(d.object.clone(), &d.reason));
            }
            (
                Report::Points {
                    points: listed.points,
                },
                false,
            )
        }
    })
}

pub fn run(ctx: &Ctx) -> Result<i32> {
    let sink = Lines {
        out: Mutex::new((std::io::stdout(), 0, None)),
    };
    let outcome = read_job().and_then(|job| perform(ctx, &sink, &job.request));
    match outcome {
        Ok((report, partial)) => {
            let damaged = match &report {
                Report::Verify(v) => !v.ok,
                Report::RestoreTest(t) => !t.passed,
                _ => false,
            };
            sink.emit(&Event::Done { report });
            Ok(if damaged {
                exit::DAMAGED
            } else if partial {
                exit::PARTIAL
            } else {
                exit::OK
            })
        }
        Err(e) => {
            sink.emit(&Event::Failed(Failure::of(&e)));
            eprintln!("{}", exit::render(&e));
            Ok(match e.kind() {
                ErrorKind::Input => exit::ERROR,
                _ => exit::code(&e),
            })
        }
    }
}
