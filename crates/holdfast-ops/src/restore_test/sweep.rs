//! What a killed restore test left behind: its scratch folder, a scratch server on it and the
//! check commands marked with it, removed by the next test and every daemon start.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{SCRATCH_ENV, SCRATCH_PREFIX};

/// Remove scratch folders in `base` left by restore tests whose process is gone.
pub fn sweep_leftovers(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(running);
        if !alive {
            kill_marked(&e.path());
            // A scratch server the dead test started, if it still runs.
            holdfast_sources::pg_scratch::stop_leftover(&e.path().join("pg").join("data"));
            holdfast_sources::my_scratch::stop_leftover(&e.path().join("my"));
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Whether process `pid` runs (exists and is not a zombie: a killed test whose parent died
/// too may stay one where nothing reaps orphans).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S …`: the state follows the last `)` (comm may hold parentheses).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Kill every process whose environment marks it as a check of the scratch folder `dir`
/// ([`SCRATCH_ENV`]): what a killed test's command left running.
fn kill_marked(dir: &Path) {
    let mut mark = format!("{SCRATCH_ENV}=").into_bytes();
    mark.extend_from_slice(dir.as_os_str().as_bytes());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(p.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == mark.as_slice()) {
            // SAFETY: kill(2) with a pid read from /proc; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}
