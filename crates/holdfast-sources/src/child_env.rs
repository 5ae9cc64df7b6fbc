//! What a child program may see of holdfast's environment.
//!
//! holdfast holds secrets in its environment: the vault passphrase and where it comes from
//! (`HOLDFAST_PASSPHRASE`, `…_FILE`, `…_COMMAND`, `HOLDFAST_KEY_FILE`, `HOLDFAST_TO_*` for a
//! copy's destination), connection URLs read with `env:VAR`, and the daemon's plan secrets.
//! None of them may reach a source, restore or hook program. Every place that starts one
//! calls [`scrub`] (or one of [`for_postgres`], [`for_mysql`], [`for_program`]) on the
//! command before adding what that program needs (`PGPASSWORD`, `MYSQL_PWD`, a hook's facts).
//!
//! Removed from every child: every `HOLDFAST_*` variable, every variable registered with
//! [`mark_secret`], and every variable named in `HOLDFAST_SECRET_VARS` (the daemon names its
//! plan's `*_env` secrets there for its `holdfast` children). Database tools also lose the cloud credentials (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and the other database's password variable.
//! Export programs, `--to-command` programs and hooks keep the rest of their environment
//! (including `AWS_*`: user-pool and SaaS exports authenticate with it).

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::process::Command;
use std::sync::Mutex;

/// Cloud credentials, withheld from programs that are not S3 tools.
pub const AWS_CREDENTIALS: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Comma-separated names of further variables holding secrets, set by a parent holdfast
/// (the daemon) for its `holdfast` children.
pub const SECRET_VARS_ENV: &str = "HOLDFAST_SECRET_VARS";

/// Variables registered as holding secrets in this process.
static MARKED: Mutex<BTreeSet<OsString>> = Mutex::new(BTreeSet::new());

/// Register `name` as a variable holding a secret (a connection URL read with `env:VAR`, a
/// plan's `*_env` variable): it is removed from every child started afterwards.
pub fn mark_secret(name: impl Into<OsString>) {
    let mut m = MARKED.lock().unwrap_or_else(|p| p.into_inner());
    m.insert(name.into());
}

/// Whether `name` is one of holdfast's own variables, was registered as a secret or is
/// named in `HOLDFAST_SECRET_VARS`.
pub fn is_secret(name: &OsStr) -> bool {
    if name.as_encoded_bytes().starts_with(b"HOLDFAST_") {
        return true;
    }
    if let Some(list) = std::env::var_os(SECRET_VARS_ENV)
        && list
            .as_encoded_bytes()
            .split(|b| *b == b',')
            .any(|n| !n.is_empty() && n == name.as_encoded_bytes())
    {
        return true;
    }
    MARKED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(name)
}

/// Remove from `cmd`'s environment every secret this process holds — every `HOLDFAST_*`
/// variable, every variable registered with [`mark_secret`] — and every variable named in
/// `also`, whether inherited or set on `cmd` before. Set what the program needs afterwards.
pub fn scrub<'c>(cmd: &'c mut Command, also: &[&str]) -> &'c mut Command {
    let mut names: BTreeSet<OsString> = std::env::vars_os().map(|(k, _)| k).collect();
    names.extend(cmd.get_envs().map(|(k, _)| k.to_os_string()));
    for name in names {
        if is_secret(&name) || also.iter().any(|a| OsStr::new(a) == name) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// [`scrub`] for a PostgreSQL tool (psql, pg_dump, pg_restore, pg_basebackup): also no cloud
/// credentials and no `MYSQL_PWD`. Add `PGPASSWORD` afterwards.
pub fn for_postgres(cmd: &mut Command) -> &mut Command {
    scrub(cmd, &[AWS_CREDENTIALS.as_slice(), &["MYSQL_PWD"]].concat())
}

/// [`scrub`] for a MariaDB/MySQL tool: also no cloud credentials and no `PGPASSWORD`. Add
/// `MYSQL_PWD` afterwards.
pub fn for_mysql(cmd: &mut Command) -> &mut Command {
    scrub(cmd, &[AWS_CREDENTIALS.as_slice(), &["PGPASSWORD"]].concat())
}

/// [`scrub`] for an export, `--to-command` or hook program: its own environment minus the
/// secrets.
pub fn for_program(cmd: &mut Command) -> &mut Command {
    scrub(cmd, &[])
}

/// Which programs a child is, for [`scrub_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    /// A PostgreSQL client tool.
    Postgres,
    /// A MariaDB/MySQL client tool.
    Mysql,
    /// Any other program (exports, `--to-command`, hooks).
    Program,
}

/// The scrub that fits `child`.
pub fn scrub_for(cmd: &mut Command, child: Child) -> &mut Command {
    match child {
        Child::Postgres => for_postgres(cmd),
        Child::Mysql => for_mysql(cmd),
        Child::Program => for_program(cmd),
    }
}

/// Wait up to `limit` for `child` to exit by itself, then kill it; it is reaped either way.
pub fn wait_or_kill(child: &mut std::process::Child, limit: std::time::Duration) {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Make the program started by `cmd` die with this thread's process (`PR_SET_PDEATHSIG`,
/// with `signal`): a holdfast killed with kill -9 leaves no export, check or scratch server
/// running. The signal is sent when the *thread* that spawned the child ends, so spawn it
/// from a thread that outlives it (the one that waits for it).
pub fn die_with_parent(cmd: &mut Command, signal: i32) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, signal);
                Ok(())
            });
        }
    }
    cmd
}

/// Run `cmd` as `user` (uid, gid) when given: a scratch server started by root runs as its
/// service account.
pub fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Give `path` to `user` (uid, gid) when given.
pub fn chown(path: &std::path::Path, user: Option<(u32, u32)>) -> std::io::Result<()> {
    match user {
        Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(cmd: &mut Command) -> String {
        let out = cmd.arg("-c").arg("env").output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn scrub_removes_holdfast_marked_and_named_variables() {
        // The test process's own environment is shared: use set-on-command variables, which
        // scrub must remove too, and a registered name.
        mark_secret("HF_TEST_MARKED_URL");
        let mut c = Command::new("/bin/sh");
        c.env("HOLDFAST_PASSPHRASE", "p-marker")
            .env("HOLDFAST_TO_KEY_FILE", "/k")
            .env("HF_TEST_MARKED_URL", "postgresql://u:pw@h/db")
            .env("AWS_SECRET_ACCESS_KEY", "aws-marker")
            .env("MYSQL_PWD", "my-marker")
            .env("KEEP_ME", "yes");
        for_postgres(&mut c);
        c.env("PGPASSWORD", "pg-ok");
        let env = env_of(&mut c);
        for gone in ["p-marker", "HOLDFAST_", "pw@h", "aws-marker", "my-marker"] {
            assert!(!env.contains(gone), "{gone} reached the child:\n{env}");
        }
        assert!(env.contains("KEEP_ME=yes"));
        assert!(env.contains("PGPASSWORD=pg-ok"));

        let mut c = Command::new("/bin/sh");
        c.env("HOLDFAST_KEY_FILE", "/k")
            .env("AWS_SECRET_ACCESS_KEY", "aws-kept");
        for_program(&mut c);
        let env = env_of(&mut c);
        assert!(!env.contains("HOLDFAST_"), "{env}");
        assert!(env.contains("AWS_SECRET_ACCESS_KEY=aws-kept"), "{env}");
        assert!(is_secret(OsStr::new("HOLDFAST_ANYTHING")));
        assert!(!is_secret(OsStr::new("PATH")));
    }
}
