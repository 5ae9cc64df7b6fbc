//! `holdfast restore-test run` through the real binary and a plan: a SQLite and a files
//! resource pass with SQL, row-count, command and built-in checks, RTO and RPO in the report;
//! a failing check fails the test with exit 4 and names the check; `from` restores from the
//! copy vault; no scratch folder is left in TMPDIR either way.

mod common;

use common::*;

/// A plan with resources `app-db` (SQLite) and `docs` (files) in one category copied to `dr`,
/// and restore test `nightly` with `checks`.
fn plan(env: &Env, checks: &str, extra: &str) -> std::path::PathBuf {
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let src = format!(
        r#"[vaults.main]
url = "{vault}"
passphrase_file = "{pass}"

[vaults.dr]
url = "{dr}"
passphrase_file = "{pass}"

[categories.critical_data]
schedule = "0 2 * * *"
vault = "main"
copy_to = ["dr"]
rpo = "24h"
rto = "4h"

[categories.critical_data.retention]
keep_last = 5

[resources.app-db]
kind = "sqlite"
category = "critical_data"
path = "{db}"

[resources.docs]
kind = "files"
category = "critical_data"
paths = ["{docs}"]

[restore_tests.nightly]
categories = ["critical_data"]
schedule = "30 4 * * *"
max_rto = "15m"
checks = [{checks}]
{extra}
"#,
        vault = env.vault,
        dr = env.path("dr").display(),
        pass = pass.display(),
        db = env.path("app.sqlite").display(),
        docs = env.path("docs").display(),
    );
    let p = env.path("holdfast.toml");
    std::fs::write(&p, src).unwrap();
    p
}

/// Make both vaults and run every resource of the plan once (backups, then copies to dr).
fn back_up_all(env: &Env, plan: &str) {
    env.ok(&["init"]);
    env.ok(&["--vault", env.path("dr").to_str().unwrap(), "init"]);
    let state = env.path("state");
    env.ok(&[
        "run",
        "--all",
        "--plan",
        plan,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
}

fn setup() -> (Env, std::path::PathBuf) {
    let mut env = Env::new();
    let tmp = env.private_tmpdir();
    sqlite_db(&env.path("app.sqlite"), 40);
    std::fs::create_dir_all(env.path("docs/sub")).unwrap();
    std::fs::write(env.path("docs/readme.txt"), "read me\n").unwrap();
    std::fs::write(env.path("docs/sub/data.bin"), random_bytes(300_000, 7)).unwrap();
    (env, tmp)
}

#[test]
fn a_restore_test_passes_its_checks_and_reports_rto_and_rpo() {
    let (env, tmp) = setup();
    let p = plan(
        &env,
        r#"{ row_counts = "match" }, { command = "test -n \"$HOLDFAST_RESTORE_DB$HOLDFAST_RESTORE_DIR\"" }"#,
        "",
    );
    let plan_arg = p.to_str().unwrap();
    back_up_all(&env, plan_arg);
    let j = env.json(&["restore-test", "run", "nightly", "--plan", plan_arg]);
    assert_eq!(j["passed"], true, "{j:#}");
    assert_eq!(j["test"], "nightly");
    let results = j["results"].as_array().unwrap();
    let kinds: Vec<&str> = results
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["sqlite", "files"], "{j:#}");
    for r in results {
        let restore_s = r["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "restore")
            .unwrap()["seconds"]
            .as_f64()
            .unwrap();
        let rto = r["rto_seconds"].as_f64().unwrap();
        assert!(rto >= restore_s && rto < 900.0, "{r:#}");
        assert_eq!(r["max_rto_seconds"], 900);
        assert_eq!(r["max_rpo_seconds"], 86_400);
        assert!(r["rpo_seconds"].as_f64().unwrap() < 3600.0, "{r:#}");
        assert_eq!(r["rto_met"], true);
        assert_eq!(r["rpo_met"], true);
    }
    let db = &results[0]["checks"];
    assert_eq!(db[0]["check"], "integrity_check");
    assert_eq!(db[1]["detail"], "1 tables, 40 rows, as at backup");
    assert_eq!(results[1]["checks"][0]["check"], "files");
    assert!(scratch_left(&tmp).is_empty(), "{:?}", scratch_left(&tmp));
    // Each resource's report is kept in the vault as owner-signed evidence.
    let ev = env.json(&["evidence", "list"]);
    let records = ev["evidence"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{ev:#}");
    for (rec, res) in records.iter().zip(results) {
        assert_eq!(rec["name"], "nightly");
        assert_eq!(rec["passed"], true);
        assert_eq!(rec["point"], res["point"]);
        assert_eq!(rec["id"], res["evidence"]);
    }
    let id = records[0]["id"].as_str().unwrap();
    let shown = env.json(&["evidence", "show", &id[..12]]);
    assert_eq!(shown["evidence"]["report"]["checks"], results[0]["checks"]);
    let text = env.ok(&["restore-test", "run", "nightly", "--plan", plan_arg]);
    assert!(text.contains("restore test \"nightly\": passed"), "{text}");
    assert!(
        text.contains("ok   row_counts: 1 tables, 40 rows"),
        "{text}"
    );
    assert!(
        text.contains("RTO ") && text.contains("(objective 15m"),
        "{text}"
    );
}

#[test]
fn a_failing_check_fails_the_test_with_exit_4_and_names_the_check() {
    let (env, tmp) = setup();
    let p = plan(
        &env,
        r#"{ command = "echo smoke test failed >&2; exit 1" }"#,
        "resources = [\"app-db\"]\nfrom = \"dr\"",
    );
    // `categories` and `resources` together: app-db once, then docs.
    let plan_arg = p.to_str().unwrap();
    back_up_all(&env, plan_arg);
    let o = env.run(&[
        "--json",
        "restore-test",
        "run",
        "nightly",
        "--plan",
        plan_arg,
    ]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["passed"], false);
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{j:#}");
    for r in results {
        let failed: Vec<&serde_json::Value> = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["passed"] == false)
            .collect();
        assert_eq!(failed.len(), 1, "{r:#}");
        assert!(
            failed[0]["check"]
                .as_str()
                .unwrap()
                .starts_with("command: ")
        );
        assert_eq!(failed[0]["detail"], "exit status: 1: smoke test failed");
    }
    assert!(scratch_left(&tmp).is_empty(), "{:?}", scratch_left(&tmp));
    // From the copy vault, with the primary gone: the copy is what is tested.
    std::fs::remove_dir_all(&env.vault).unwrap();
    let o = env.run(&["restore-test", "run", "nightly", "--plan", plan_arg]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("from vault \"dr\""), "{out}");
    assert!(
        out.contains("FAIL command: echo smoke test failed"),
        "{out}"
    );
    // The failures are evidence too, in the vault that was tested.
    let dr = env.path("dr");
    let o = env.run(&["--vault", dr.to_str().unwrap(), "evidence", "list"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(
        listed.contains("FAILED") && !listed.contains("passed") && listed.contains("4 record(s)"),
        "{listed}"
    );
}

#[test]
fn a_test_that_cannot_run_is_an_error_and_plan_check_names_bad_tests() {
    let (env, _tmp) = setup();
    let p = plan(&env, r#"{ sql = "select 1" }"#, "");
    let files_only = std::fs::read_to_string(&p).unwrap().replace(
        "categories = [\"critical_data\"]\n",
        "resources = [\"docs\"]\n",
    );
    std::fs::write(&p, files_only).unwrap();
    let o = env.run(&["plan", "check", p.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        e.contains(
            "restore test \"nightly\": a sql check needs a database resource; it tests only docs"
        ),
        "{e}"
    );
    let p = plan(&env, "", "");
    let plan_arg = p.to_str().unwrap();
    env.ok(&["init"]);
    let o = env.run(&["restore-test", "run", "nope", "--plan", plan_arg]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("restore test \"nope\" is not in the plan"),
        "{}",
        stderr(&o)
    );
    // No point yet: the test cannot run.
    let o = env.run(&["restore-test", "run", "nightly", "--plan", plan_arg]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no recovery point of resource \"app-db\""),
        "{}",
        stderr(&o)
    );
}

/// As root the scratch server runs as `postgres`, which must reach the folder it is made in.
fn open_to_postgres(env: &Env, dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = dir.to_path_buf();
    let root = env.path("");
    loop {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711)).unwrap();
        if p == root || !p.pop() || !p.starts_with(&root) {
            break;
        }
    }
}

#[test]
fn a_postgres_restore_test_runs_in_a_scratch_server_with_amcheck_sql_and_row_counts() {
    let Some(src) = holdfast_testkit::pg::PgCluster::start() else {
        return;
    };
    src.psql("postgres", "CREATE DATABASE app");
    let init = std::process::Command::new(src.tool("pgbench"))
        .args(src.conn_args())
        .args(["-i", "-s", "1", "-q", "app"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let (env, tmp) = setup();
    open_to_postgres(&env, &tmp);
    let psql = src.tool("psql");
    let p = plan(
        &env,
        r#"{ row_counts = "match" }"#,
        &format!(
            r#"
[resources.pg]
kind = "postgres"
category = "critical_data"
url = "{url}"

[restore_tests.pg-smoke]
resources = ["pg"]
checks = [
  {{ sql = "select count(*) = 100000 from pgbench_accounts" }},
  {{ row_counts = "match" }},
  {{ command = "test \"$PGDATABASE\" = app && {psql} -tAc 'select count(*) from pgbench_branches' | grep -qx 1" }},
]
"#,
            url = src.url("postgres"),
            psql = psql.display()
        ),
    );
    let plan_arg = p.to_str().unwrap();
    back_up_all(&env, plan_arg);
    // The facts of the dump's snapshot are in the point.
    let pts = env.json(&["points"]);
    let pg = pts
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["source"]["kind"] == "postgres")
        .unwrap();
    let counts: serde_json::Value =
        serde_json::from_str(pg["source"]["facts"]["row_counts"].as_str().unwrap()).unwrap();
    assert_eq!(
        counts["app"]["public.pgbench_accounts"], 100_000,
        "{counts}"
    );
    assert_eq!(counts["app"]["public.pgbench_branches"], 1, "{counts}");

    // The whole nightly test: SQLite, files and PostgreSQL, built-in checks and row counts.
    let j = env.json(&["restore-test", "run", "nightly", "--plan", plan_arg]);
    assert_eq!(j["passed"], true, "{j:#}");
    let r = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "postgres")
        .unwrap()
        .clone();
    let names: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pg_restore", "pg_amcheck", "row_counts"], "{r:#}");
    let rc = r["checks"][2]["detail"].as_str().unwrap();
    assert!(
        rc.starts_with("2 database(s), 4 tables, 100011 rows, as at backup, schema as at backup"),
        "{rc}"
    );
    let phase = |n: &str| {
        r["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()["seconds"]
            .as_f64()
            .unwrap()
    };
    let rto = r["rto_seconds"].as_f64().unwrap();
    assert!(rto >= phase("start") + phase("restore"), "{r:#}");
    assert!(scratch_left(&tmp).is_empty(), "{:?}", scratch_left(&tmp));
    let left = processes(|c| c.contains(&*tmp.to_string_lossy()));
    assert!(left.is_empty(), "{left:?}");

    // SQL and command checks in the scratch server.
    let j = env.json(&["restore-test", "run", "pg-smoke", "--plan", plan_arg]);
    assert_eq!(j["passed"], true, "{j:#}");
    let checks = j["results"][0]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 5, "{j:#}");
    assert_eq!(checks[2]["detail"], "app: returned t");

    // Wrong data fails the test with the check named, and still leaves nothing behind.
    let failing = std::fs::read_to_string(&p)
        .unwrap()
        .replace("count(*) = 100000", "count(*) = 99999")
        .replace("grep -qx 1", "grep -qx 2");
    std::fs::write(&p, failing).unwrap();
    let o = env.run(&[
        "--json",
        "restore-test",
        "run",
        "pg-smoke",
        "--plan",
        plan_arg,
    ]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&str> = j["results"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "{j:#}");
    assert!(
        failed[0].starts_with("sql: ") && failed[1].starts_with("command: "),
        "{failed:?}"
    );
    assert!(scratch_left(&tmp).is_empty(), "{:?}", scratch_left(&tmp));
    let left = processes(|c| c.contains(&*tmp.to_string_lossy()));
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_mariadb_restore_test_runs_in_a_scratch_server_with_check_table_sql_and_a_command() {
    use holdfast_testkit::mariadb::MariaDb;
    let Some(src) = MariaDb::start() else { return };
    src.sql(
        "CREATE DATABASE app; \
         CREATE TABLE app.orders(id INT AUTO_INCREMENT PRIMARY KEY, total DECIMAL(10,2)) ENGINE=InnoDB; \
         CREATE TABLE app.log(msg TEXT) ENGINE=MyISAM; \
         USE app; INSERT INTO app.orders(total) SELECT seq FROM seq_1_to_500; \
         INSERT INTO app.log VALUES ('one'), ('two')",
    );
    let (env, tmp) = setup();
    let p = plan(
        &env,
        "",
        &format!(
            r#"
[resources.maria]
kind = "mysql"
category = "critical_data"
url = "{url}"

[restore_tests.maria-smoke]
resources = ["maria"]
checks = [
  {{ sql = "select count(*) = 500 from app.orders" }},
  {{ command = "mariadb -N -e 'select count(*) from app.log' | grep -qx 2" }},
]
"#,
            url = src.url()
        ),
    );
    let plan_arg = p.to_str().unwrap();
    back_up_all(&env, plan_arg);
    let j = env.json(&["restore-test", "run", "maria-smoke", "--plan", plan_arg]);
    assert_eq!(j["passed"], true, "{j:#}");
    let r = &j["results"][0];
    assert_eq!(r["kind"], "mysql", "{r:#}");
    let names: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(names[..2], ["restore", "check_tables"], "{r:#}");
    let tables = r["checks"][1]["detail"].as_str().unwrap();
    assert!(tables.ends_with("tables OK"), "{tables}");
    let phases: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        phases.contains(&"start") && phases.contains(&"restore"),
        "{phases:?}"
    );
    assert!(scratch_left(&tmp).is_empty(), "{:?}", scratch_left(&tmp));
    let left = processes(|c| c.contains(&*tmp.to_string_lossy()));
    assert!(left.is_empty(), "{left:?}");

    // A false SQL check fails the test, naming it; the server is still gone.
    let failing = std::fs::read_to_string(&p)
        .unwrap()
        .replace("count(*) = 500", "count(*) = 501");
    std::fs::write(&p, failing).unwrap();
    let o = env.run(&[
        "--json",
        "restore-test",
        "run",
        "maria-smoke",
        "--plan",
        plan_arg,
    ]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&str> = j["results"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        ["sql: select count(*) = 501 from app.orders"],
        "{j:#}"
    );
    let left = processes(|c| c.contains(&*tmp.to_string_lossy()));
    assert!(left.is_empty(), "{left:?}");
}
