//! Database and command sources through the real binary against real servers: command
//! exports, SQLite under concurrent writes, PostgreSQL logical backups under concurrent
//! writes restored into a fresh cluster, and failing sources that must leave no point.

mod common;

use std::process::{Command, Stdio};

use common::*;
use holdfast_testkit::pg::PgCluster;

fn point_count(env: &Env) -> usize {
    env.json(&["points"]).as_array().unwrap().len()
}

#[test]
fn command_exports_store_stdout_and_fail_cleanly() {
    let env = Env::new();
    env.init();
    let out = env.json(&[
        "backup",
        "--command",
        "sh -c 'echo \"[{\\\"user\\\": \\\"alice\\\"}]\"; printf done'",
        "--stdin-name",
        "users.json",
        "--resource",
        "idp-users",
    ]);
    assert_eq!(out["resource"], "idp-users");
    let pts = env.json(&["points"]);
    assert_eq!(pts[0]["source"]["kind"], "command", "{pts}");
    let o = env.run(&["dump", "latest:idp-users", "users.json"]);
    assert_eq!(stdout(&o), "[{\"user\": \"alice\"}]\ndone");
    // Pipe it back into a program.
    let target = env.path("piped.json");
    env.ok(&[
        "restore",
        "latest:idp-users",
        "--to-command",
        &format!("sh -c 'cat > {}'", target.display()),
    ]);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "[{\"user\": \"alice\"}]\ndone"
    );
    // A failing export commits nothing.
    for (cmd, needle) in [
        (
            "sh -c 'echo partial; echo boom >&2; exit 2'",
            "exit status: 2",
        ),
        ("/nonexistent/exporter --all", "not found"),
        ("sh -c 'unclosed", "cannot parse"),
    ] {
        let o = env.run(&["backup", "--command", cmd]);
        assert_eq!(code(&o), 1, "{cmd}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(needle), "{cmd}: {e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
    assert_eq!(point_count(&env), 1);
}

const SQLITE_WRITER: &str = r#"
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS a(id INTEGER PRIMARY KEY, v TEXT)")
db.execute("CREATE TABLE IF NOT EXISTS b(id INTEGER PRIMARY KEY, a_id INTEGER)")
end = time.time() + float(sys.argv[2])
i = 0
while time.time() < end:
    db.execute("BEGIN")
    for _ in range(50):
        cur = db.execute("INSERT INTO a(v) VALUES (?)", ("x" * 200,))
        db.execute("INSERT INTO b(a_id) VALUES (?)", (cur.lastrowid,))
    db.execute("COMMIT")
    i += 1
print(i)
"#;

const SQLITE_CHECK: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
a = db.execute("SELECT count(*) FROM a").fetchone()[0]
b = db.execute("SELECT count(*) FROM b").fetchone()[0]
orphans = db.execute("SELECT count(*) FROM b LEFT JOIN a ON a.id = b.a_id WHERE a.id IS NULL").fetchone()[0]
print(a, b, orphans)
"#;

#[test]
fn sqlite_backup_under_concurrent_writes_is_consistent() {
    let env = Env::new();
    env.init();
    let db = env.path("app.db");
    let script = env.path("writer.py");
    std::fs::write(&script, SQLITE_WRITER).unwrap();
    let check = env.path("check.py");
    std::fs::write(&check, SQLITE_CHECK).unwrap();
    // Seed, then write concurrently while backing up three times.
    let seed = Command::new("python3")
        .arg(&script)
        .arg(&db)
        .arg("0.5")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(seed.success());
    let writer = Command::new("python3")
        .arg(&script)
        .arg(&db)
        .arg("4")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..3 {
        env.ok(&[
            "backup",
            "--sqlite",
            db.to_str().unwrap(),
            "--resource",
            "app-db",
        ]);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let w = writer.wait_with_output().unwrap();
    assert!(w.status.success());
    let pts = env.json(&["points", "--resource", "app-db"]);
    assert_eq!(pts.as_array().unwrap().len(), 3);
    assert_eq!(pts[0]["source"]["kind"], "sqlite");
    let mut counts = Vec::new();
    for (i, p) in pts.as_array().unwrap().iter().enumerate() {
        let out = env.path(&format!("restored-{i}.db"));
        let id = p["id"].as_str().unwrap();
        let o = env.ok(&["restore", &id[..16], "--to-sqlite", out.to_str().unwrap()]);
        assert!(o.contains("integrity_check: ok"), "{o}");
        let c = Command::new("python3")
            .arg(&check)
            .arg(&out)
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&c.stdout).trim().to_string();
        let v: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(
            v[0], v[1],
            "a transaction's two inserts are both in or both out: {line}"
        );
        assert_eq!(v[2], 0, "no orphans: {line}");
        assert_eq!(v[0] % 50, 0, "whole transactions only: {line}");
        counts.push(v[0]);
    }
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    // Restoring over an existing file is refused.
    let out = env.path("restored-0.db");
    let o = env.run(&[
        "restore",
        "latest:app-db",
        "--to-sqlite",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}

/// Plain SQL of a custom-format dump, without comments and session settings, for comparison.
fn normalized_sql(
    pg: &PgCluster,
    custom_dump: Option<&std::path::Path>,
    db: Option<&str>,
) -> String {
    let mut c = if let Some(f) = custom_dump {
        let mut c = Command::new(pg.tool("pg_restore"));
        c.arg("-f").arg("-").arg(f);
        c
    } else {
        let mut c = Command::new(pg.tool("pg_dump"));
        c.args(pg.conn_args()).arg("-d").arg(db.unwrap());
        c
    };
    let o = c.args(["--no-owner"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--")
                && !l.starts_with("SET ")
                && !l.starts_with("\\")
                && !l.starts_with("SELECT pg_catalog.set_config")
                && !l.trim().is_empty()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn postgres_logical_backup_under_writes_restores_into_a_fresh_cluster() {
    let Some(src) = PgCluster::start() else {
        return;
    };
    src.psql("postgres", "CREATE DATABASE app");
    src.psql("postgres", "CREATE DATABASE \"shop eu\"");
    src.psql("postgres", "CREATE ROLE reporting LOGIN");
    src.psql(
        "shop eu",
        "CREATE TABLE orders(id serial PRIMARY KEY, item text, qty int); \
         INSERT INTO orders(item, qty) SELECT 'item' || g, g FROM generate_series(1, 5000) g; \
         GRANT SELECT ON orders TO reporting",
    );
    let init = Command::new(src.tool("pgbench"))
        .args(src.conn_args())
        .args(["-i", "-s", "2", "-q", "app"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let env = Env::new();
    env.init();
    // Concurrent writes while the dump runs.
    let bench = Command::new(src.tool("pgbench"))
        .args(src.conn_args())
        .args(["-c", "2", "-T", "6", "-n", "app"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = env.json(&[
        "backup",
        "--postgres",
        &src.url("postgres"),
        "--resource",
        "pg",
    ]);
    let bench = bench.wait_with_output().unwrap();
    assert!(bench.status.success());
    let pts = env.json(&["points"]);
    let facts = &pts[0]["source"]["facts"];
    assert_eq!(pts[0]["source"]["kind"], "postgres");
    assert!(
        facts["server_version"].as_str().unwrap().starts_with("15"),
        "{facts}"
    );
    assert!(
        facts["databases"].as_str().unwrap().contains("shop eu"),
        "{facts}"
    );
    let ls = env.ok(&["ls", "latest:pg"]);
    assert!(
        ls.contains("globals.sql") && ls.contains("app.dump") && ls.contains("shop%20eu.dump"),
        "{ls}"
    );
    // Restore into a fresh cluster.
    let Some(dst) = PgCluster::start() else {
        return;
    };
    let r = env.run(&[
        "restore",
        "latest:pg",
        "--to-postgres",
        &dst.url("postgres"),
        "--database",
        "app",
        "--database",
        "shop eu",
    ]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert_eq!(
        dst.psql("app", "SELECT count(*) FROM pgbench_accounts"),
        "200000"
    );
    assert_eq!(dst.psql("shop eu", "SELECT count(*) FROM orders"), "5000");
    assert_eq!(
        dst.psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'reporting'"
        ),
        "1"
    );
    // The restored database equals the dump's snapshot (not the source now, which moved on).
    let stored = env.path("app.dump");
    let o = env.run(&["dump", "latest:pg", "app.dump"]);
    std::fs::write(&stored, &o.stdout).unwrap();
    let a = normalized_sql(&dst, Some(&stored), None);
    let b = normalized_sql(&dst, None, Some("app"));
    assert!(a == b, "restored database differs from the dump");
    let history_at_snapshot = dst.psql("app", "SELECT count(*) FROM pgbench_history");
    let history_now = src.psql("app", "SELECT count(*) FROM pgbench_history");
    assert!(history_at_snapshot.parse::<u64>().unwrap() <= history_now.parse::<u64>().unwrap());
    // The row counts recorded in the point were taken in the dump's snapshot: they equal what
    // was restored, though the source was written to all along.
    let counts: serde_json::Value =
        serde_json::from_str(facts["row_counts"].as_str().unwrap()).unwrap();
    assert_eq!(
        counts["app"]["public.pgbench_history"].to_string(),
        history_at_snapshot,
        "{counts}"
    );
    assert_eq!(counts["app"]["public.pgbench_accounts"], 200_000);
    assert_eq!(counts["shop eu"]["public.orders"], 5000);
    let schemas: serde_json::Value =
        serde_json::from_str(facts["schema_blake3"].as_str().unwrap()).unwrap();
    assert_eq!(schemas["app"].as_str().unwrap().len(), 64, "{schemas}");
    // Restoring again into the now non-empty database is refused; --as-database works.
    let r = env.run(&[
        "restore",
        "latest:pg",
        "--to-postgres",
        &dst.url("postgres"),
        "--database",
        "app",
    ]);
    assert_eq!(code(&r), 1);
    assert!(stderr(&r).contains("not empty"), "{}", stderr(&r));
    env.ok(&[
        "restore",
        "latest:pg",
        "--to-postgres",
        &dst.url("postgres"),
        "--database",
        "app",
        "--as-database",
        "app_copy",
    ]);
    assert_eq!(
        dst.psql("app_copy", "SELECT count(*) FROM pgbench_accounts"),
        "200000"
    );
    let _ = out;
}

#[test]
fn failing_database_sources_leave_no_point() {
    let Some(pg) = PgCluster::start() else { return };
    let env = Env::new();
    env.init();
    type Case = (Vec<String>, Vec<(String, String)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec!["--postgres".into(), "mysql://x".into()],
            vec![],
            "postgresql://",
        ),
        (
            vec![
                "--postgres".into(),
                pg.url("postgres"),
                "--database".into(),
                "nope".into(),
            ],
            vec![],
            "nothing was committed",
        ),
        (
            vec![
                "--postgres".into(),
                format!(
                    "postgresql://postgres@/postgres?host={}&port=1",
                    pg.dir.path().display()
                ),
            ],
            vec![],
            "failed",
        ),
        (
            vec!["--postgres".into(), pg.url("postgres")],
            vec![("HOLDFAST_PG_BIN".into(), "/nonexistent".into())],
            "not found",
        ),
        (
            vec!["--mysql".into(), "mysql://root@127.0.0.1:1/x".into()],
            vec![],
            "mysql",
        ),
        (
            vec!["--sqlite".into(), "/nonexistent/db.sqlite".into()],
            vec![],
            "/nonexistent/db.sqlite",
        ),
    ];
    for (args, extra, needle) in cases {
        let mut c = env.std_cmd();
        c.arg("backup").args(&args);
        for (k, v) in &extra {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    assert_eq!(point_count(&env), 0);
}

#[test]
fn mariadb_backup_under_writes_restores_into_a_fresh_server() {
    use holdfast_testkit::mariadb::MariaDb;
    let Some(src) = MariaDb::start() else { return };
    src.sql(
        "CREATE DATABASE app; CREATE TABLE app.a(id INT AUTO_INCREMENT PRIMARY KEY, v TEXT) ENGINE=InnoDB; \
         CREATE TABLE app.b(id INT AUTO_INCREMENT PRIMARY KEY, a_id INT) ENGINE=InnoDB; \
         CREATE VIEW app.v AS SELECT count(*) AS n FROM app.a; \
         CREATE TRIGGER app.t BEFORE INSERT ON app.b FOR EACH ROW SET NEW.a_id = NEW.a_id",
    );
    let tx = "START TRANSACTION; INSERT INTO app.a(v) VALUES (REPEAT('x', 100)); \
              INSERT INTO app.b(a_id) VALUES (LAST_INSERT_ID()); COMMIT;";
    for _ in 0..20 {
        src.sql(tx);
    }
    // Concurrent transactions while the dump runs.
    let socket = src.socket();
    let writer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "end=$(($(date +%s)+4)); while [ $(date +%s) -lt $end ]; do \
             mariadb --no-defaults --socket={} -uroot -e \"{tx}\" || exit 1; done",
            socket.display()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let env = Env::new();
    env.init();
    env.ok(&[
        "backup",
        "--mysql",
        &src.url(),
        "--database",
        "app",
        "--resource",
        "maria",
    ]);
    assert!(writer.wait_with_output().unwrap().status.success());
    let pts = env.json(&["points"]);
    assert_eq!(pts[0]["source"]["kind"], "mysql");
    assert!(
        pts[0]["source"]["facts"]["server_version"]
            .as_str()
            .unwrap()
            .contains("MariaDB")
    );
    let Some(dst) = MariaDb::start() else { return };
    env.ok(&["restore", "latest:maria", "--to-mysql", &dst.url()]);
    let a: u64 = dst.sql("SELECT count(*) FROM app.a").parse().unwrap();
    let b: u64 = dst.sql("SELECT count(*) FROM app.b").parse().unwrap();
    let orphans =
        dst.sql("SELECT count(*) FROM app.b LEFT JOIN app.a ON a.id = b.a_id WHERE a.id IS NULL");
    assert_eq!(
        a, b,
        "one snapshot: both inserts of a transaction or neither"
    );
    assert_eq!(orphans, "0");
    assert!(a >= 20);
    let now: u64 = src.sql("SELECT count(*) FROM app.a").parse().unwrap();
    assert!(a <= now);
    assert_eq!(dst.sql("SELECT n FROM app.v"), a.to_string());
    // Dump diff: the restored server dumps the same rows as the stored dump.
    let stored = env.run(&["dump", "latest:maria", "dump.sql"]);
    let restored_dump = Command::new("mariadb-dump")
        .arg("--no-defaults")
        .arg(format!("--socket={}", dst.socket().display()))
        .args([
            "-uroot",
            "--skip-dump-date",
            "--hex-blob",
            "--databases",
            "app",
        ])
        .output()
        .unwrap();
    assert!(restored_dump.status.success());
    let inserts = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| l.starts_with("INSERT INTO"))
            .map(str::to_string)
            .collect()
    };
    let (x, y) = (inserts(&stored.stdout), inserts(&restored_dump.stdout));
    assert!(!x.is_empty());
    assert!(
        x == y,
        "INSERTs of the stored dump and of the restored database differ"
    );
    assert_eq!(
        dst.sql("SELECT count(*) FROM information_schema.triggers WHERE trigger_schema='app'"),
        "1"
    );
    // A bad password fails the point with the server's message, and stores nothing.
    let bad = format!("mysql://nobody:wrong@127.0.0.1:{}/app", src.port);
    let o = env.run(&["backup", "--mysql", &bad]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("Access denied"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("wrong"),
        "the password never shows: {}",
        stderr(&o)
    );
    assert_eq!(point_count(&env), 1);
}

#[test]
fn s3_bucket_source_round_trips_objects_with_metadata() {
    let Some(moto) = holdfast_testkit::Moto::start() else {
        return;
    };
    moto.create_bucket("media");
    moto.create_bucket("restored");
    let big = random_bytes(5, 9 << 20);
    let objects: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "data/report.pdf",
            b"%PDF-1.7 report".to_vec(),
            vec!["Content-Type: application/pdf", "x-amz-meta-owner: finance"],
        ),
        (
            "data/img/logo.png",
            b"\x89PNG fake".to_vec(),
            vec!["Content-Type: image/png"],
        ),
        (
            "data/big/video.bin",
            big.clone(),
            vec!["x-amz-meta-camera: front-door"],
        ),
        (
            "other/not-included.txt",
            b"outside the prefix".to_vec(),
            vec![],
        ),
    ];
    for (k, body, h) in &objects {
        moto.put_object("media", k, body, h);
    }
    let mut env = Env::new();
    env.extra_env = s3_vars(&moto);
    env.init();
    let out = env.json(&[
        "backup",
        "--s3-source",
        "s3://media/data",
        "--resource",
        "media",
    ]);
    assert_eq!(out["summary"]["files_new"], 3, "{out}");
    let ls = env.ok(&["ls", "latest:media"]);
    assert!(
        ls.contains("img/logo.png") && !ls.contains("not-included"),
        "{ls}"
    );
    // Second backup: nothing new is stored.
    let again = env.json(&[
        "backup",
        "--s3-source",
        "s3://media/data",
        "--resource",
        "media",
    ]);
    assert!(
        again["summary"]["stored_added"].as_u64().unwrap() < 4096,
        "{again}"
    );
    env.ok(&["restore", "latest:media", "--to-s3", "s3://restored/copy"]);
    let keys = moto.list_keys("restored");
    assert_eq!(keys.len(), 3, "{keys:?}");
    let got = moto.get("restored", "copy/big/video.bin");
    assert!(
        got == big,
        "big object: {} bytes back, {} expected; {}",
        got.len(),
        big.len(),
        moto.head("restored", "copy/big/video.bin")
    );
    assert_eq!(moto.get("restored", "copy/report.pdf"), b"%PDF-1.7 report");
    let h = moto
        .head("restored", "copy/report.pdf")
        .to_ascii_lowercase();
    assert!(h.contains("content-type: application/pdf"), "{h}");
    assert!(h.contains("x-amz-meta-owner: finance"), "{h}");
    let h = moto
        .head("restored", "copy/big/video.bin")
        .to_ascii_lowercase();
    assert!(h.contains("x-amz-meta-camera: front-door"), "{h}");
    // And as plain files.
    let t = env.path("files");
    env.ok(&["restore", "latest:media", "--target", t.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(t.join("img/logo.png")).unwrap(),
        b"\x89PNG fake"
    );
}
