//! Child processes: every job step runs the `holdfast` binary itself (or a hook's shell) as
//! a child, so a completion window can be enforced by stopping it, a crashing step cannot
//! take the scheduler down, and memory goes back to the system after each job.
//!
//! Secrets reach children by environment only (never argv). Children get their own process
//! group (hooks' grandchildren are stopped with them) and die with the daemon
//! (`PR_SET_PDEATHSIG`), so a killed daemon leaves no orphan writing into a vault.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::Instant;

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
    /// The child's last error line (`holdfast: error: …` without the prefix), else a
    /// description of the exit.
    pub fn error_line(&self) -> String {
        let last = self
            .stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| {
                let l = l
                    .trim_start_matches("holdfast: ")
                    .trim_start_matches("error: ");
                // The CLI's hint is advice for a person at a terminal; the job keeps the cause.
                match l.rfind(" (hint: ") {
                    Some(i) if l.ends_with(')') => l[..i].to_string(),
                    _ => l.to_string(),
                }
            });
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

/// Run `cmd` until it exits, `deadline` passes, or `kill` turns true. A stopped child gets
/// SIGTERM, then SIGKILL after 10 s.
pub async fn run(
    mut cmd: Command,
    deadline: Option<Instant>,
    kill: &mut watch::Receiver<bool>,
) -> std::io::Result<Outcome> {
    prepare(&mut cmd);
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_task = tokio::spawn(async move {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut s).await;
        }
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_task = tokio::spawn(async move {
        let mut s = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut s).await;
        }
        String::from_utf8_lossy(&s).into_owned()
    });
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
    let stdout = out_task.await.unwrap_or_default();
    let stderr = err_task.await.unwrap_or_default();
    Ok(Outcome {
        code: status.code(),
        stdout,
        stderr,
        ended,
    })
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
