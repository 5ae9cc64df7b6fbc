//! Program outputs as recovery points: database dumps and command exports.
//!
//! An [`ExportsSource`] runs programs one after the other and stores each one's standard
//! output as a file at the root of the point, streaming (never touching local disk). Secrets
//! reach the programs through their environment, never their arguments, and each program's
//! environment is scrubbed of holdfast's own secrets first ([`crate::child_env`]). A program that
//! cannot be started or exits non-zero fails the whole point: the writer's packs may already
//! be stored, but no manifest is written, so nothing is committed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use holdfast_engine::BlobType;
use holdfast_engine::point::Summary;
use holdfast_engine::tree::Tree;
use holdfast_engine::writer::BlobWriter;
use holdfast_engine::{Error, Result};

use crate::child_env::Child;
use crate::{Captured, Progress, Source};

/// How much of a failing program's standard error is quoted.
const STDERR_TAIL: usize = 2000;

/// One program whose standard output becomes one file of the point.
#[derive(Clone)]
pub struct Export {
    /// File name in the point.
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments (no secrets here).
    pub args: Vec<String>,
    /// Extra environment (secrets go here).
    pub env: Vec<(String, String)>,
    /// What kind of program it is: decides what is scrubbed from its environment.
    pub child: Child,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the environment: it carries passwords.
        f.debug_struct("Export")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl Export {
    /// A command with its environment (scrubbed of holdfast's secrets), stdin closed.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args).stdin(Stdio::null());
        crate::child_env::scrub_for(&mut c, self.child);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
}

/// Run a program to completion and return its standard output (for small queries such as
/// version checks). Errors name the program and quote its standard error.
pub fn run_capture(mut cmd: Command, what: &str) -> Result<String> {
    // A safety net: callers scrub for the program's kind; holdfast's secrets never pass.
    crate::child_env::for_program(&mut cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(&program, what, e))?;
    exited(&program, what, &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `Ok` if a finished program exited 0; otherwise a [`Error::SourceFailed`] naming it and
/// quoting the end of its standard error.
pub fn exited(program: &str, what: &str, out: &std::process::Output) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    Err(Error::source_failed(
        program,
        format!(
            "{what}: {program} failed ({}): {}",
            out.status,
            tail(&out.stderr)
        ),
    ))
}

/// The error for a program that could not be started: "not found" says to install it.
pub fn spawn_error(program: &str, what: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Input(format!(
            "{what}: {program} not found (install it or put it on PATH)"
        ))
    } else {
        Error::Input(format!("{what}: cannot run {program}: {e}"))
    }
}

/// The last part of a program's standard error, one line.
pub fn tail(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let s = s.trim();
    let start = s.len().saturating_sub(STDERR_TAIL);
    let start = (start..=s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].replace('\n', " | ")
}

/// What [`stream_child`] returns.
pub struct ChildRun {
    /// The stored output (chunk ids, bytes) or why storing failed.
    pub stored: Result<(Vec<holdfast_engine::Id>, u64)>,
    /// How the program ended.
    pub status: std::process::ExitStatus,
    /// Everything it wrote to standard error.
    pub stderr: Vec<u8>,
}

/// Run `cmd`, storing its standard output as content blobs while its standard error is
/// collected; the program is killed if storing fails. `name` names the output in errors.
pub fn stream_child(
    w: &BlobWriter<'_>,
    mut cmd: Command,
    name: &str,
    progress: Progress<'_>,
) -> Result<ChildRun> {
    crate::child_env::for_program(&mut cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    // The export dies with us: a backup killed mid-stream (kill -9, a stopped daemon job)
    // leaves no program behind. This thread lives until the child ends, as PDEATHSIG needs.
    crate::child_env::die_with_parent(&mut cmd, libc::SIGTERM);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| spawn_error(&program, name, err))?;
    let mut stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let stdout = child.stdout.take().expect("piped");
    let io_err = |err: std::io::Error| Error::io(name, err);
    let stored = crate::content::store_stream(w, stdout, None, progress, &io_err);
    if stored.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|err| {
        Error::source_failed(&program, format!("{name}: waiting for {program}: {err}"))
    })?;
    let stderr = err_thread.join().unwrap_or_default();
    Ok(ChildRun {
        stored,
        status,
        stderr,
    })
}

/// Several program outputs stored as one recovery point.
pub struct ExportsSource {
    kind: &'static str,
    paths: Vec<String>,
    exports: Vec<Export>,
    facts: BTreeMap<String, String>,
    /// Kept until the source is dropped (the snapshots PostgreSQL dumps read).
    _held: Vec<crate::pg_facts::SnapshotHolder>,
}

impl ExportsSource {
    /// A source of `kind` (`command`, `postgres`, `mysql`, …) with the manifest's `paths`
    /// and `facts`.
    pub fn new(
        kind: &'static str,
        paths: Vec<String>,
        exports: Vec<Export>,
        facts: BTreeMap<String, String>,
    ) -> Result<Self> {
        for e in &exports {
            if e.name.is_empty() || e.name.contains('/') || e.name == "." || e.name == ".." {
                return Err(Error::Input(format!(
                    "{:?} is not a plain file name",
                    e.name
                )));
            }
        }
        Ok(ExportsSource {
            kind,
            paths,
            exports,
            facts,
            _held: Vec::new(),
        })
    }

    /// Keep these snapshot transactions open as long as the source lives.
    pub fn holding(mut self, held: Vec<crate::pg_facts::SnapshotHolder>) -> Self {
        self._held = held;
        self
    }
}

impl Source for ExportsSource {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn paths(&self) -> Vec<String> {
        self.paths.clone()
    }

    fn capture(&self, w: &BlobWriter<'_>, progress: Progress<'_>) -> Result<Captured> {
        let mut nodes = Vec::new();
        let mut total = 0u64;
        for e in &self.exports {
            let program = e.program.display().to_string();
            let run = stream_child(w, e.command(), &e.name, progress)?;
            let (status, err_out) = (run.status, run.stderr);
            let (content, size) = run.stored?;
            if !status.success() {
                return Err(Error::source_failed(
                    &program,
                    format!(
                        "{}: {program} failed ({status}); nothing was committed: {}",
                        e.name,
                        tail(&err_out)
                    ),
                ));
            }
            total += size;
            nodes.push(crate::stream::file_node(&e.name, size, content));
        }
        let mut tree = Tree { nodes };
        let root = w.add(BlobType::Tree, &tree.encode())?.0;
        Ok(Captured {
            root,
            summary: Summary {
                files_new: self.exports.len() as u64,
                bytes_read: total,
                total_size: total,
                ..Summary::default()
            },
            facts: self.facts.clone(),
            ..Captured::default()
        })
    }
}

/// Split a command line into program and arguments, shell-style quoting (no shell runs it).
pub fn split_command(line: &str) -> Result<(PathBuf, Vec<String>)> {
    let words = shlex::split(line)
        .ok_or_else(|| Error::Input(format!("cannot parse the command {line:?} (quotes?)")))?;
    let mut it = words.into_iter();
    let program = it
        .next()
        .ok_or_else(|| Error::Input("the command is empty".into()))?;
    Ok((PathBuf::from(program), it.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell() {
        let (p, a) = split_command("sh -c 'echo \"a b\"; exit 2'").unwrap();
        assert_eq!(p, PathBuf::from("sh"));
        assert_eq!(a, vec!["-c", "echo \"a b\"; exit 2"]);
        assert!(split_command("'unclosed").is_err());
        assert!(split_command("   ").is_err());
    }

    #[test]
    fn tails_are_bounded_and_one_line() {
        let long = "x".repeat(5000) + "\nlast line";
        let t = tail(long.as_bytes());
        assert!(t.len() <= STDERR_TAIL + 3);
        assert!(t.ends_with("| last line"));
    }
}
