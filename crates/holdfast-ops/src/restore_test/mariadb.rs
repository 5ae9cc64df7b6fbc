//! Restore tests of MariaDB/MySQL points: a scratch server
//! ([`holdfast_sources::my_scratch`]) started in the test's folder (phase `start`), the
//! point's `dump.sql` piped into it (phase `restore`, check `restore`), then `CHECK TABLE` on
//! every table of every database with `mariadb-check` (or `mysqlcheck`) as the built-in
//! check. `sql` checks run with no default database (name tables as `db.table`); `command`
//! checks get `MYSQL_UNIX_PORT` and `MYSQL_HOME` so a bare `mariadb` connects as `root`.

use std::path::Path;
use std::time::Instant;

use holdfast_engine::{Id, Result, Vault};
use holdfast_sources::my_scratch::ScratchMariaDb;
use holdfast_sources::mysql;

use super::{CheckResult, Phase, phase, request};
use crate::Context;
use crate::restore::{RestoreTarget, restore};

/// A restored scratch server.
pub(super) struct MyTarget {
    /// The server (stopped when dropped).
    pub server: ScratchMariaDb,
    /// Whether the dump was restored.
    pub restored: bool,
}

/// Start the scratch server in `scratch/my`, restore point `id` into it, check every table.
pub(super) fn prepare(
    ctx: &Context<'_>,
    vault: &Vault,
    id: &Id,
    scratch: &Path,
    phases: &mut Vec<Phase>,
    checks: &mut Vec<CheckResult>,
) -> Result<MyTarget> {
    let t = Instant::now();
    let server = ScratchMariaDb::start(&scratch.join("my"))?;
    phases.push(phase("start", t));
    let t = Instant::now();
    let conn = server.conn()?;
    // The URL names the private socket; root has no password there.
    let url = server.url();
    let r = restore(ctx, vault, &request(id, RestoreTarget::Mysql { url }));
    phases.push(phase("restore", t));
    let restored = r.is_ok();
    checks.push(CheckResult {
        check: "restore".into(),
        passed: restored,
        detail: match &r {
            Ok(_) => "dump.sql restored".into(),
            Err(e) => e.to_string(),
        },
        seconds: t.elapsed().as_secs_f64(),
    });
    if restored {
        let c = Instant::now();
        checks.push(CheckResult::timed("check_tables", c, check_tables(&conn)));
        phases.push(phase("builtin_check", c));
    }
    Ok(MyTarget { server, restored })
}

/// `mariadb-check --all-databases --check`: every table `OK` (notes, such as an engine
/// that cannot check, are not failures).
fn check_tables(conn: &mysql::MyConn) -> std::result::Result<String, String> {
    let tool = mysql::tool(&["mariadb-check", "mysqlcheck"]).map_err(|e| e.to_string())?;
    let mut c = std::process::Command::new(&tool);
    holdfast_sources::child_env::for_mysql(&mut c)
        .args(conn.args())
        .envs(conn.env())
        .args(["--all-databases", "--check"])
        .stdin(std::process::Stdio::null());
    let out = c
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (ok, bad) = table_verdicts(&text);
    if out.status.success() && bad.is_empty() {
        Ok(format!("{ok} tables OK"))
    } else {
        let mut said = bad;
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.trim().is_empty() {
            said.push(err.trim().to_string());
        }
        Err(format!(
            "{}: {}",
            out.status,
            super::clip(&super::summarize(&said))
        ))
    }
}

/// Count the `OK` tables of `mariadb-check` output and collect what is not OK: a table line
/// (`db.table   status`) followed by `note` lines is fine, `error`/`warning` lines and
/// any other status are not.
fn table_verdicts(out: &str) -> (usize, Vec<String>) {
    let (mut ok, mut bad) = (0, Vec::new());
    let mut table = "";
    for line in out.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let (head, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let rest = rest.trim();
        match head {
            "note" | "Note" | "info" => {}
            "error" | "Error" | "warning" | "Warning" => bad.push(format!("{table}: {rest}")),
            _ if rest == "OK" => ok += 1,
            _ if rest.is_empty() => table = head,
            _ => bad.push(format!("{head}: {rest}")),
        }
    }
    (ok, bad)
}

/// A query (no default database) whose first value must be true.
pub(super) fn sql(t: &MyTarget, q: &str) -> std::result::Result<String, String> {
    if !t.restored {
        return Err("the dump was not restored".into());
    }
    let conn = t.server.conn().map_err(|e| e.to_string())?;
    let v = mysql::query(&conn, q).map_err(|e| e.to_string())?;
    super::checks::truthy(v.lines().next().unwrap_or("").trim())
}

#[cfg(test)]
mod tests {
    use super::table_verdicts;

    #[test]
    fn check_output_is_read_table_by_table() {
        let out = "app.orders                                         OK\n\
                   app.blobs\n\
                   note     : The storage engine for the table doesn't support check\n\
                   app.broken\n\
                   error    : Corrupt\n\
                   app.other                                          Table is marked as crashed\n";
        let (ok, bad) = table_verdicts(out);
        assert_eq!(ok, 1);
        assert_eq!(
            bad,
            [
                "app.broken: : Corrupt",
                "app.other: Table is marked as crashed"
            ]
        );
    }
}
