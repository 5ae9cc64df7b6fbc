//! DR drills through the real binary: every resource recovered from the copy vault with the
//! primary vault deleted and the catalog removed; a resource missing in the copy is reported
//! not recoverable and fails the drill; the report is written as Markdown, JSON and HTML and
//! kept in the vault, where `drill report` finds it with the RTO trend per resource.

mod common;

use common::*;

fn plan(env: &Env, drill_targets: &str) -> std::path::PathBuf {
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let src = format!(
        r#"[daemon]
state_dir = "{state}"

[vaults.main]
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

[resources.late]
kind = "files"
category = "critical_data"
paths = ["{docs}"]

[drills.monthly]
{drill_targets}
from = "dr"
schedule = "0 6 1 * *"
parallel = 2
checks = [{{ row_counts = "match" }}]
max_rto = "1h"
"#,
        state = env.path("state").display(),
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

#[test]
fn a_drill_recovers_from_the_copy_alone_and_names_what_is_not_recoverable() {
    let mut env = Env::new();
    let tmp = env.private_tmpdir();
    sqlite_db(&env.path("app.sqlite"), 30);
    std::fs::create_dir_all(env.path("docs")).unwrap();
    std::fs::write(env.path("docs/readme.txt"), "read me\n").unwrap();
    std::fs::write(env.path("docs/data.bin"), random_bytes(5, 200_000)).unwrap();
    let p = plan(&env, "categories = [\"critical_data\"]");
    let plan_arg = p.to_str().unwrap();
    env.ok(&["init"]);
    env.ok(&["--vault", env.path("dr").to_str().unwrap(), "init"]);
    // app-db and docs are backed up and copied; `late` never was.
    for r in ["app-db", "docs"] {
        env.ok(&["run", r, "--plan", plan_arg]);
    }
    // The primary site is gone: its vault and the daemon's catalog.
    std::fs::remove_dir_all(&env.vault).unwrap();
    std::fs::remove_dir_all(env.path("state")).unwrap();
    let reports = env.path("reports");
    let o = env.run(&[
        "--json",
        "drill",
        "run",
        "monthly",
        "--plan",
        plan_arg,
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["passed"], false);
    assert_eq!(r["vault"], "dr");
    let res = r["resources"].as_array().unwrap();
    let names: Vec<&str> = res
        .iter()
        .map(|x| x["resource"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app-db", "docs", "late"], "{r:#}");
    for x in &res[..2] {
        assert_eq!(x["outcome"], "recovered", "{x:#}");
        assert!(x["rto_seconds"].as_f64().unwrap() > 0.0);
        assert!(x["rpo_seconds"].as_f64().unwrap() < 3600.0);
        assert_eq!(x["max_rto_seconds"], 14_400);
        assert_eq!(x["max_rpo_seconds"], 86_400);
    }
    assert_eq!(
        res[0]["checks"][1]["detail"],
        "1 tables, 30 rows, as at backup"
    );
    assert_eq!(res[2]["outcome"], "not_recoverable");
    assert!(
        res[2]["error"]
            .as_str()
            .unwrap()
            .contains("no recovery point of resource \"late\""),
        "{r:#}"
    );
    let total = r["total_rto_seconds"].as_f64().unwrap();
    assert!(total >= res[0]["rto_seconds"].as_f64().unwrap() && total < 3600.0);
    assert_eq!(r["max_rto_seconds"], 3600);
    assert!(
        !env.path("state").exists(),
        "a drill reads and writes no catalog"
    );
    // The three report files.
    let mut files: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().all(|f| f.starts_with("drill-monthly-")));
    let md = std::fs::read_to_string(reports.join(&files[2])).unwrap();
    assert!(
        md.contains("# Drill monthly: FAILED") && md.contains("| late | NOT RECOVERABLE |"),
        "{md}"
    );
    let html = std::fs::read_to_string(reports.join(&files[0])).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("NOT RECOVERABLE"));
    assert!(scratch_left(&tmp).is_empty(), "{:?}", scratch_left(&tmp));

    // Without the resource that was never copied, the drill passes.
    let p = plan(&env, "resources = [\"app-db\", \"docs\"]");
    let o = env.run(&[
        "drill",
        "run",
        "monthly",
        "--plan",
        p.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("app-db: recovered")
            && out.contains("drill \"monthly\" from vault \"dr\": passed"),
        "{out}"
    );

    // Both reports are evidence in the copy vault: the trend per resource.
    let o = env.run(&["drill", "report", "monthly", "--plan", p.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("  monthly  ").count(), 2, "{out}");
    assert!(out.contains("FAILED") && out.contains("passed"), "{out}");
    let late = out
        .lines()
        .find(|l| l.trim_start().starts_with("late"))
        .unwrap();
    assert!(late.contains("NOT RECOVERABLE  →  ·"), "{out}");
    let app = out
        .lines()
        .find(|l| l.trim_start().starts_with("app-db"))
        .unwrap();
    assert_eq!(app.matches('→').count(), 1, "{out}");
    // The runbook says when a drill last proved each resource, read from the copy vault.
    let p = plan(&env, "categories = [\"critical_data\"]");
    let book = env.ok(&["runbook", "--plan", p.to_str().unwrap()]);
    let app = book
        .split("\n## ")
        .find(|s| s.starts_with("app-db "))
        .unwrap();
    assert!(
        app.contains("**Last tested**: drill `monthly` from `dr` on ")
            && app.contains(": recovered, RTO "),
        "{app}"
    );
    assert!(
        app.contains("holdfast restore latest:app-db --to-sqlite"),
        "{app}"
    );
    let late = book
        .split("\n## ")
        .find(|s| s.starts_with("late "))
        .unwrap();
    assert!(
        late.contains("NOT RECOVERABLE") && late.contains("never recovered by a passing drill"),
        "{late}"
    );
    let dr = env.path("dr");
    let ev = env.json(&["--vault", dr.to_str().unwrap(), "evidence", "list"]);
    let kinds: Vec<&str> = ev["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "drill").count(), 2, "{ev:#}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "restore_test").count(),
        4,
        "{ev:#}"
    );
}
