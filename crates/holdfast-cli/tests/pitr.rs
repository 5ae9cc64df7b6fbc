//! PostgreSQL point-in-time recovery through the real binary and real servers: WAL archived
//! by `holdfast pg wal-push` from `archive_command`, a base backup, rows written across
//! several WAL segments, then `holdfast pg restore` to a time, a named restore point, an LSN,
//! a transaction id and the end of the archive — each restored server must hold exactly the
//! rows committed before its target. Then across a timeline switch.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use holdfast_testkit::pg::{PgCluster, chown_to_postgres, is_root};

/// Runs holdfast as the server's user, with a vault and secret the server can read too.
struct Pitr {
    home: tempfile::TempDir,
}

impl Pitr {
    fn new() -> Pitr {
        let home = PgCluster::owned_tempdir();
        std::fs::write(home.path().join("pass"), "pitr passphrase\n").unwrap();
        std::fs::create_dir(home.path().join("tmp")).unwrap();
        chown_to_postgres(home.path());
        Pitr { home }
    }

    fn vault(&self) -> PathBuf {
        self.home.path().join("vault")
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("HOLDFAST_VAULT".into(), self.vault().display().to_string()),
            (
                "HOLDFAST_PASSPHRASE_FILE".into(),
                self.home.path().join("pass").display().to_string(),
            ),
            ("HOLDFAST_KDF_MEMORY_KIB".into(), "8192".into()),
            (
                "HOLDFAST_CACHE_DIR".into(),
                self.home.path().join("cache").display().to_string(),
            ),
            // Restore tests make their scratch folders here (checked for leftovers).
            (
                "TMPDIR".into(),
                self.home.path().join("tmp").display().to_string(),
            ),
        ]
    }

    /// The shell prefix that runs holdfast with this environment (for archive_command).
    fn shell_prefix(&self) -> String {
        let mut s = String::new();
        for (k, v) in self.env() {
            s.push_str(&format!("{k}={v} "));
        }
        s.push_str(
            &assert_cmd::cargo::cargo_bin("holdfast")
                .display()
                .to_string(),
        );
        s
    }

    fn run(&self, args: &[&str]) -> Output {
        let bin = assert_cmd::cargo::cargo_bin("holdfast");
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        for (k, _) in std::env::vars() {
            if k.starts_with("HOLDFAST_") {
                c.env_remove(k);
            }
        }
        c.envs(self.env()).args(args).current_dir(self.home.path());
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "holdfast {args:?}: {}\n{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }
}

fn rows(pg: &PgCluster) -> Vec<String> {
    pg.psql(
        "postgres",
        "SELECT string_agg(batch, ',' ORDER BY batch) FROM (SELECT DISTINCT batch FROM t) s",
    )
    .split(',')
    .filter(|s| !s.is_empty())
    .map(str::to_string)
    .collect()
}

fn insert_batch(pg: &PgCluster, batch: &str) -> String {
    // 20000 rows of 100 bytes: several MB of WAL per batch, then a segment switch.
    let xid = pg.psql(
        "postgres",
        &format!(
            "BEGIN; INSERT INTO t SELECT '{batch}', g, repeat('x', 100) FROM generate_series(1, 20000) g; \
             SELECT txid_current(); COMMIT;"
        ),
    );
    pg.psql("postgres", "SELECT pg_switch_wal()");
    xid.lines()
        .find(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or("")
        .to_string()
}

fn wait_archived(pg: &PgCluster) {
    let want = pg.psql("postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let last = pg.psql(
            "postgres",
            "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
        );
        // Everything before the current segment is archived.
        if !last.is_empty() && last.as_str() >= &want[..] {
            return;
        }
        let failed = pg.psql("postgres", "SELECT failed_count FROM pg_stat_archiver");
        assert!(
            std::time::Instant::now() < deadline,
            "archiving stuck at {last} (want {want}, failed {failed}); log: {}",
            pg.log()
        );
        pg.psql("postgres", "SELECT pg_switch_wal()");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Restore into a fresh data folder and start a server there; returns it once promoted.
fn restore_and_start(p: &Pitr, target: &[&str], archive: bool) -> PgCluster {
    let dir = PgCluster::owned_tempdir();
    let data = dir.path().join("data");
    let mut args = vec![
        "pg",
        "restore",
        "--resource",
        "db",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(target);
    p.ok(&args);
    assert!(data.join("recovery.signal").exists());
    let settings = if archive { "" } else { "archive_mode = off" };
    let pg = PgCluster::adopt(dir, settings).expect("postgres");
    pg.wait_promoted(120);
    pg
}

#[test]
fn point_in_time_recovery_to_every_target_kind_and_across_timelines() {
    let Some(pg) = PgCluster::start() else { return };
    let p = Pitr::new();
    p.ok(&["init"]);
    let archive = format!("{} --quiet pg wal-push --resource db %p", p.shell_prefix());
    pg.configure(&format!(
        "archive_mode = on\narchive_command = '{}'\narchive_timeout = 0\n",
        archive.replace('\'', "''")
    ));
    pg.restart();
    pg.psql("postgres", "CREATE TABLE t(batch text, n int, pad text)");
    let base = p.ok(&[
        "pg",
        "basebackup",
        "--resource",
        "db",
        "--postgres",
        &pg.url("postgres"),
    ]);
    assert!(base.contains("base backup"), "{base}");
    insert_batch(&pg, "a");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t1 = pg.psql(
        "postgres",
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    pg.psql("postgres", "SELECT pg_create_restore_point('before_b')");
    let xid_b = insert_batch(&pg, "b");
    let lsn_after_b = pg.psql("postgres", "SELECT pg_current_wal_lsn()");
    insert_batch(&pg, "c");
    wait_archived(&pg);
    let pts = String::from_utf8_lossy(&p.run(&["--json", "points"]).stdout).to_string();
    assert!(
        pts.contains("postgres-wal") && pts.contains("postgres-base"),
        "{pts}"
    );

    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--target-time", &t1], vec!["a"]),
        (vec!["--target-name", "before_b"], vec!["a"]),
        (vec!["--target-xid", &xid_b], vec!["a", "b"]),
        (vec!["--target-lsn", &lsn_after_b], vec!["a", "b"]),
        (vec!["--latest"], vec!["a", "b", "c"]),
    ];
    for (target, want) in &cases {
        let r = restore_and_start(&p, target, false);
        assert_eq!(rows(&r), *want, "target {target:?}; log: {}", r.log());
        assert_eq!(
            r.psql("postgres", "SELECT count(*) FROM t"),
            (want.len() * 20000).to_string(),
            "{target:?}"
        );
    }

    // Timeline switch: restore to before c, promote (timeline 2, archiving into the same
    // vault), write d, then restore the latest state again: a, b and d — not c.
    let r2 = restore_and_start(&p, &["--target-lsn", &lsn_after_b], true);
    assert_eq!(rows(&r2), ["a", "b"]);
    insert_batch(&r2, "d");
    wait_archived(&r2);
    let tl = r2.psql(
        "postgres",
        "SELECT timeline_id FROM pg_control_checkpoint()",
    );
    assert_ne!(tl, "1");
    drop(r2);
    let r3 = restore_and_start(&p, &["--latest"], false);
    assert_eq!(rows(&r3), ["a", "b", "d"], "log: {}", r3.log());

    // Retention: with a second base backup and only the newest base kept, WAL older than it
    // goes, WAL from its start on (and history files) stays.
    p.ok(&[
        "pg",
        "basebackup",
        "--resource",
        "db",
        "--postgres",
        &pg.url("postgres"),
    ]);
    let pts: serde_json::Value =
        serde_json::from_slice(&p.run(&["--json", "points"]).stdout).unwrap();
    let base2 = pts
        .as_array()
        .unwrap()
        .iter()
        .rfind(|p| p["source"]["kind"] == "postgres-base")
        .unwrap();
    let first = holdfast_sources::pitr::base_first_segment(
        base2["source"]["facts"]["start_lsn"].as_str().unwrap(),
        16 << 20,
    )
    .unwrap();
    let f: serde_json::Value = serde_json::from_slice(
        &p.run(&["--json", "forget", "--keep-last", "1", "--resource", "db"])
            .stdout,
    )
    .unwrap();
    let gone_wal = f["forget"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["resource"] == "db:wal")
        .count();
    assert!(gone_wal > 0, "{f}");
    let after: serde_json::Value =
        serde_json::from_slice(&p.run(&["--json", "points"]).stdout).unwrap();
    let mut kept_wal = 0;
    for pt in after.as_array().unwrap() {
        if pt["source"]["kind"] == "postgres-wal" {
            let name = pt["source"]["facts"]["wal_file"].as_str().unwrap();
            match holdfast_sources::pitr::wal_segment_number(name, 16 << 20) {
                Some(n) => assert!(n >= first, "{name} kept but older than the kept base"),
                None => assert!(name.ends_with(".history")),
            }
            kept_wal += 1;
        }
        if pt["source"]["kind"] == "postgres-base" {
            assert_eq!(pt["id"], base2["id"], "only the newest base backup is kept");
        }
    }
    assert!(kept_wal > 0);

    // A WAL file that is not archived: wal-fetch exits 1.
    let o = p.run(&[
        "pg",
        "wal-fetch",
        "--resource",
        "db",
        "0000000900000000000000AA",
        "/tmp/none",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let _ = Path::new("");
}

#[test]
fn a_plan_takes_base_backups_of_a_postgres_base_resource() {
    let Some(pg) = PgCluster::start() else { return };
    let p = Pitr::new();
    p.ok(&["init"]);
    let home = p.home.path();
    std::fs::write(home.join("db.url"), format!("{}\n", pg.url("postgres"))).unwrap();
    let plan = home.join("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"[daemon]
state_dir = "{state}"

[vaults.main]
url = "{vault}"
passphrase_file = "{pass}"

[categories.db]
schedule = "0 2 * * *"
vault = "main"
rpo = "26h"

[categories.db.retention]
keep_daily = 7

[resources.db]
kind = "postgres-base"
category = "db"
url_file = "{url}"
"#,
            state = home.join("state").display(),
            vault = p.vault().display(),
            pass = home.join("pass").display(),
            url = home.join("db.url").display()
        ),
    )
    .unwrap();
    let show = p.ok(&["plan", "show", plan.to_str().unwrap()]);
    assert!(show.contains("postgres-base"), "{show}");
    let out = p.ok(&["run", "--plan", plan.to_str().unwrap(), "db"]);
    assert!(out.contains("db: job 1 backup in main: completed"), "{out}");
    assert!(out.contains("retention in main: completed"), "{out}");
    let pts = String::from_utf8_lossy(&p.run(&["--json", "points", "--resource", "db"]).stdout)
        .to_string();
    assert!(
        pts.contains("postgres-base") && pts.contains("start_lsn"),
        "{pts}"
    );
    let jobs = p.ok(&["--json", "jobs", "--plan", plan.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_str(&jobs).unwrap();
    assert_eq!(j[1]["kind"], "backup", "{j}");
    assert!(j[1]["bytes_added"].as_u64().unwrap() > 1_000_000, "{j}");
    assert!(j[1]["point"].as_str().is_some(), "{j}");
}

/// A restore test of a base backup: laid out with the WAL archived after it, recovered by a
/// scratch server to the end of the archive (rows written after the base backup are there),
/// checked with pg_amcheck, SQL and a command; the RPO is measured from the newest WAL
/// replayed. Nothing is left in TMPDIR and no server runs afterwards.
#[test]
fn a_restore_test_recovers_a_base_backup_to_the_end_of_the_archive() {
    let Some(pg) = PgCluster::start() else { return };
    let p = Pitr::new();
    p.ok(&["init"]);
    let archive = format!("{} --quiet pg wal-push --resource db %p", p.shell_prefix());
    pg.configure(&format!(
        "archive_mode = on\narchive_command = '{}'\narchive_timeout = 0\n",
        archive.replace('\'', "''")
    ));
    pg.restart();
    pg.psql("postgres", "CREATE TABLE t(batch text, n int, pad text)");
    insert_batch(&pg, "a");
    let home = p.home.path();
    std::fs::write(home.join("db.url"), format!("{}\n", pg.url("postgres"))).unwrap();
    let psql = pg.tool("psql");
    let plan = home.join("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"[daemon]
state_dir = "{state}"

[vaults.main]
url = "{vault}"
passphrase_file = "{pass}"

[categories.db]
schedule = "0 2 * * *"
vault = "main"
rpo = "26h"
rto = "1h"

[categories.db.retention]
keep_daily = 7

[resources.db]
kind = "postgres-base"
category = "db"
url_file = "{url}"

[restore_tests.pitr]
resources = ["db"]
checks = [
  {{ sql = "select count(*) = 40000 from t" }},
  {{ command = "{psql} -tAc 'select count(distinct batch) from t' | grep -qx 2" }},
]
"#,
            state = home.join("state").display(),
            vault = p.vault().display(),
            pass = home.join("pass").display(),
            url = home.join("db.url").display(),
            psql = psql.display(),
        ),
    )
    .unwrap();
    let plan = plan.to_str().unwrap();
    p.ok(&["run", "--plan", plan, "db"]);
    // Written after the base backup: only the archive has it.
    insert_batch(&pg, "b");
    wait_archived(&pg);
    let o = p.run(&["--json", "restore-test", "run", "pitr", "--plan", plan]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    assert_eq!(o.status.code(), Some(0), "{j:#}\n{}", stderr(&o));
    let r = &j["results"][0];
    assert_eq!(r["kind"], "postgres-base", "{r:#}");
    let names: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(names[..2], ["recovery", "pg_amcheck"], "{r:#}");
    assert!(
        r["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("redo done at"),
        "{r:#}"
    );
    let phases: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        phases.contains(&"fetch") && phases.contains(&"recovery"),
        "{phases:?}"
    );
    // The RPO counts from the newest WAL replayed, which is newer than the base backup.
    assert!(r["recovered_to_ns"].as_i64().unwrap() > r["point_time_ns"].as_i64().unwrap());
    let left: Vec<_> = std::fs::read_dir(home.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    let tmp = home.join("tmp").display().to_string();
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(proc.path().join("cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmd).contains(&tmp),
            "a scratch process still runs: {}",
            String::from_utf8_lossy(&cmd)
        );
    }
}

/// A WAL name whose 24th byte falls inside a multi-byte character once made `valid_wal_name`
/// slice through it and panic (exit 101). Both commands must refuse it with one clear line.
#[test]
fn wal_names_splitting_a_character_are_refused_not_a_panic() {
    let env = Env::new();
    env.init();
    // 23 hex digits, a two-byte 'é' (bytes 23..25), 8 more: 33 bytes before ".backup".
    let split = "00000001000000000000000\u{e9}00000000.backup";
    // 24 hex digits, then 'é' where the '.' belongs.
    let split2 = "000000010000000000000002\u{e9}0000000.backup";
    for name in [split, split2] {
        let dest = env.path("fetched");
        let o = env.run(&["pg", "wal-fetch", name, dest.to_str().unwrap()]);
        assert_eq!(code(&o), 1, "wal-fetch {name}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("is not a WAL file name"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        let file = env.path(name);
        std::fs::write(&file, b"not wal").unwrap();
        let o = env.run(&["pg", "wal-push", file.to_str().unwrap()]);
        assert_eq!(code(&o), 1, "wal-push {name}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("not a WAL segment"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
