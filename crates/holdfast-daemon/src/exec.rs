//! Child processes: every job step runs `holdfast worker` (or a hook's shell) as a child, so
//! a completion window can be enforced by stopping it, a crashing step cannot take the
//! scheduler down, and memory goes back to the system after each job.
//!
//! The runner starts them through an [`Executor`]: [`Children`] in the daemon; the daemon's
//! scheduler tests put a scripted one in its place.
//!
//! Secrets reach children by environment only (never argv). Children get their own process
//! group (hooks' grandchildren are stopped with them) and die with the daemon
//! (`PR_SET_PDEATHSIG`), so a killed daemon leaves no orphan writing into a vault.

use std::process::Stdio;
use std::time::Duration;

use holdfast_ops::worker::{Event, Failure, Report};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::commands::Step;

/// A boxed future, for the object-safe [`Executor`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What runs a job's steps and hooks.
///
/// Contract (what the runner relies on): a call returns once the step has ended — by itself,
/// because `deadline` passed (then [`WorkerResult::Deadline`] / [`Ended::Deadline`]), or
/// because `kill` turned true ([`WorkerResult::Shutdown`] / [`Ended::Shutdown`]); `progress`
/// gets the byte counts the step reports, in order; an `Err` means the step could not be
/// started at all.
pub trait Executor: Send + Sync + 'static {
    /// Run one worker job ([`run_worker`] in the daemon).
    fn worker<'a>(
        &'a self,
        step: Step,
        deadline: Option<Instant>,
        kill: &'a mut watch::Receiver<bool>,
        progress: Box<dyn Fn(u64) + Send + 'static>,
    ) -> BoxFuture<'a, std::io::Result<WorkerRun>>;

    /// Run one hook's command ([`run`] in the daemon).
    fn hook<'a>(
        &'a self,
        cmd: Command,
        deadline: Option<Instant>,
        kill: &'a mut watch::Receiver<bool>,
    ) -> BoxFuture<'a, std::io::Result<Outcome>>;
}

/// The daemon's executor: every step a child process.
#[derive(Debug, Default, Clone, Copy)]
pub struct Children;

impl Executor for Children {
    fn worker<'a>(
        &'a self,
        step: Step,
        deadline: Option<Instant>,
        kill: &'a mut watch::Receiver<bool>,
        progress: Box<dyn Fn(u64) + Send + 'static>,
    ) -> BoxFuture<'a, std::io::Result<WorkerRun>> {
        Box::pin(run_worker(step, deadline, kill, progress))
    }

    fn hook<'a>(
        &'a self,
        cmd: Command,
        deadline: Option<Instant>,
        kill: &'a mut watch::Receiver<bool>,
    ) -> BoxFuture<'a, std::io::Result<Outcome>> {
        Box::pin(run(cmd, deadline, kill))
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself.
    Exited,
    /// Its deadline passed; it was stopped.
    Deadline,
    /// The daemon is shutting down; it was stopped.
    Shutdown,
}

/// What a child did.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// How it ended.
    pub ended: Ended,
}

impl Outcome {
    /// A hook's last line on stderr, else a description of the exit.
    pub fn error_line(&self) -> String {
        let last = self
            .stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string);
        match (last, self.code) {
            (Some(l), _) => l,
            (None, Some(c)) => format!("exited with code {c}"),
            (None, None) => "killed by a signal".into(),
        }
    }
}

/// Prepare a command: no stdin, captured output, own process group, dies with the daemon.
pub fn prepare(cmd: &mut Command) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls (setpgid, prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn signal_group(pid: u32, sig: i32) {
    if let Ok(p) = i32::try_from(pid) {
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-p, sig);
        }
    }
}

/// Wait for `child` until it exits, `deadline` passes, or `kill` turns true. A stopped child
/// gets SIGTERM, then SIGKILL after 10 s.
async fn supervise(
    child: &mut tokio::process::Child,
    deadline: Option<Instant>,
    kill: &mut watch::Receiver<bool>,
) -> std::io::Result<(std::process::ExitStatus, Ended)> {
    let pid = child.id().unwrap_or(0);
    let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    let until = deadline.unwrap_or(far);
    let mut ended = Ended::Exited;
    let status = if *kill.borrow() {
        ended = Ended::Shutdown;
        None
    } else {
        tokio::select! {
            s = child.wait() => Some(s?),
            _ = tokio::time::sleep_until(until) => { ended = Ended::Deadline; None }
            _ = wait_true(kill) => { ended = Ended::Shutdown; None }
        }
    };
    let status = match status {
        Some(s) => s,
        None => {
            signal_group(pid, libc::SIGTERM);
            match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(s) => s?,
                Err(_) => {
                    signal_group(pid, libc::SIGKILL);
                    child.wait().await?
                }
            }
        }
    };
    Ok((status, ended))
}

fn read_all<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    r: Option<R>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut s = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut s).await;
        }
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Run `cmd` (a hook) until it exits, `deadline` passes, or `kill` turns true. A stopped
/// child gets SIGTERM, then SIGKILL after 10 s.
pub async fn run(
    mut cmd: Command,
    deadline: Option<Instant>,
    kill: &mut watch::Receiver<bool>,
) -> std::io::Result<Outcome> {
    prepare(&mut cmd);
    let mut child = cmd.spawn()?;
    let out_task = read_all(child.stdout.take());
    let err_task = read_all(child.stderr.take());
    let (status, ended) = supervise(&mut child, deadline, kill).await?;
    let stdout = out_task.await.unwrap_or_default();
    let stderr = err_task.await.unwrap_or_default();
    Ok(Outcome {
        code: status.code(),
        stdout,
        stderr,
        ended,
    })
}

/// How a worker ended: its result as its events say, or why there is none.
#[derive(Debug)]
pub enum WorkerResult {
    /// It reported a result.
    Done(Report),
    /// It reported a failure.
    Failed(Failure),
    /// Its deadline passed; it was stopped.
    Deadline,
    /// The daemon is shutting down; it was stopped.
    Shutdown,
    /// It ended without a result (it crashed, or is not a holdfast that speaks the
    /// protocol): how it exited.
    Silent(String),
}

/// What a worker said besides its result.
#[derive(Debug)]
pub struct WorkerRun {
    /// The result.
    pub result: WorkerResult,
    /// Its warning events.
    pub warnings: Vec<String>,
}

/// Run a worker job: the job on its stdin, its events read as they come (`progress` gets
/// each progress event's byte count), until it exits, `deadline` passes or `kill` turns
/// true.
pub async fn run_worker(
    step: Step,
    deadline: Option<Instant>,
    kill: &mut watch::Receiver<bool>,
    progress: impl Fn(u64) + Send + 'static,
) -> std::io::Result<WorkerRun> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let Step { mut cmd, job } = step;
    prepare(&mut cmd);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn()?;
    let input = serde_json::to_vec(&job).map_err(std::io::Error::other)?;
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
    }
    let stdout = child.stdout.take();
    let events = tokio::spawn(async move {
        let mut result = None;
        let mut warnings = Vec::new();
        let Some(stdout) = stdout else {
            return (result, warnings);
        };
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Event>(&line) {
                Ok(Event::Progress { bytes }) => progress(bytes),
                Ok(Event::Warning { message }) => warnings.push(message),
                Ok(Event::Note { message }) => tracing::debug!("{message}"),
                Ok(Event::Done { report }) => result = Some(WorkerResult::Done(report)),
                Ok(Event::Failed(f)) => result = Some(WorkerResult::Failed(f)),
                Err(e) => tracing::warn!("worker: not an event ({e}): {line}"),
            }
        }
        (result, warnings)
    });
    let err_task = read_all(child.stderr.take());
    let (status, ended) = supervise(&mut child, deadline, kill).await?;
    let (said, warnings) = events.await.unwrap_or((None, Vec::new()));
    let stderr = err_task.await.unwrap_or_default();
    let result = match (ended, said) {
        (Ended::Deadline, _) => WorkerResult::Deadline,
        (Ended::Shutdown, _) => WorkerResult::Shutdown,
        (Ended::Exited, Some(r)) => r,
        (Ended::Exited, None) => {
            if !stderr.trim().is_empty() {
                tracing::warn!(
                    "worker ended without a result; its stderr: {}",
                    stderr.trim()
                );
            }
            WorkerResult::Silent(match status.code() {
                Some(c) => format!("the worker ended without a result (exit code {c})"),
                None => "the worker ended without a result (killed by a signal)".into(),
            })
        }
    };
    Ok(WorkerRun { result, warnings })
}

/// Resolve when the flag becomes true (never, if its sender is gone while false).
pub async fn wait_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
