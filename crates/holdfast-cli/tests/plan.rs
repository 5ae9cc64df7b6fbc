//! `holdfast plan check` through the real binary: the example plan passes, a broken one
//! names file, line and fix.

mod common;

use common::*;

#[test]
fn plan_check_reports_file_line_and_fix() {
    let env = Env::new();
    let example = holdfast_testkit::workspace_root().join("docs/examples/holdfast.toml");
    let ok = env.ok(&["plan", "check", example.to_str().unwrap()]);
    assert!(
        ok.contains("plan OK (3 vaults, 8 categories, 10 resources"),
        "{ok}"
    );
    let bad = env.path("holdfast.toml");
    let src = std::fs::read_to_string(&example).unwrap().replace(
        "category = \"critical_data\"\nurl_env",
        "category = \"critcal_data\"\nurl_env",
    );
    std::fs::write(&bad, src).unwrap();
    let o = env.run(&["plan", "check", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        e.starts_with(&format!(
            "{}:55: resource \"app-db\": no category named \"critcal_data\"",
            bad.display()
        )),
        "{e}"
    );
    assert!(e.contains("(fix: "), "{e}");
    let j = env.json(&["plan", "check", example.to_str().unwrap()]);
    assert_eq!(j["ok"], true);
}

#[test]
fn plan_check_connect_opens_vaults_and_compares_retention_with_locks() {
    let env = Env::new();
    env.init();
    env.ok(&[
        "lock",
        "set",
        "--mode",
        "governance",
        "--min-retention",
        "30d",
        "--max-retention",
        "2y",
    ]);
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let wrong = env.path("wrong");
    std::fs::write(&wrong, "wrong horse\n").unwrap();
    let plan = env.path("holdfast.toml");
    let src = format!(
        r#"[vaults.main]
url = "{vault}"
passphrase_file = "{pass}"

[vaults.gone]
url = "{gone}"
passphrase_file = "{pass}"

[vaults.locked_out]
url = "{vault}"
passphrase_file = "{wrong}"

[categories.short]
schedule = "0 2 * * *"
vault = "main"

[categories.short.retention]
keep_daily = 7
delete_after = "7d"

[categories.long]
schedule = "0 2 * * *"
vault = "main"

[categories.long.retention]
min_days = 30
keep_yearly = 7
delete_after = "7y"

[categories.fine]
schedule = "0 2 * * *"
vault = "main"

[categories.fine.retention]
min_days = 30
keep_daily = 30
delete_after = "1y"

[resources.r]
kind = "files"
category = "fine"
paths = ["/etc/hostname"]
"#,
        vault = env.vault,
        pass = pass.display(),
        wrong = wrong.display(),
        gone = env.path("nothing-here").display()
    );
    std::fs::write(&plan, &src).unwrap();
    // Without --connect the plan is fine.
    env.ok(&["plan", "check", plan.to_str().unwrap()]);
    let o = env.run(&["plan", "check", "--connect", plan.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    let lines: Vec<&str> = e.lines().collect();
    let p = plan.display().to_string();
    let expect = [
        format!("{p}:6: vault \"gone\""),
        format!("{p}:10: vault \"locked_out\""),
        format!(
            "{p}:17: category \"short\": retention can forget points younger than the Governance lock minimum of vault \"main\" (30d)"
        ),
        format!(
            "{p}:19: category \"short\": delete_after 7d is shorter than the Governance lock minimum of vault \"main\" (30d)"
        ),
        format!(
            "{p}:28: category \"long\": retention keeps points longer than the maximum of vault \"main\" (2y)"
        ),
    ];
    assert_eq!(lines.len(), expect.len(), "{e}");
    for (l, x) in lines.iter().zip(&expect) {
        assert!(l.starts_with(x.as_str()), "{l}\n  expected {x}");
        assert!(l.contains("(fix: "), "{l}");
    }
    assert!(lines[0].contains("no vault at"), "{}", lines[0]);
    assert!(lines[1].contains("does not open"), "{}", lines[1]);
    assert!(lines[2].contains("set min_days = 30"), "{}", lines[2]);
}

#[test]
fn plan_check_connect_flags_notification_secrets_that_are_not_set() {
    let env = Env::new();
    env.init();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let plan = env.path("holdfast.toml");
    let src = format!(
        r#"[vaults.main]
url = "{vault}"
passphrase_file = "{pass}"

[categories.c]
schedule = "0 2 * * *"
vault = "main"

[categories.c.retention]
keep_daily = 7

[resources.r]
kind = "files"
category = "c"
paths = ["/etc/hostname"]

[notifications.ops]
kind = "webhook"
slack = true
url_env = "HF_TEST_UNSET_WEBHOOK_7d2"

[notifications.set]
kind = "webhook"
url_env = "HF_TEST_SET_WEBHOOK_7d2"

[notifications.dba]
kind = "email"
to = ["dba@example.com"]
smtp = "smtp.example.com:587"
smtp_user = "holdfast"
smtp_password_env = "HF_TEST_UNSET_SMTP_7d2"
"#,
        vault = env.vault,
        pass = pass.display(),
    );
    std::fs::write(&plan, &src).unwrap();
    env.ok(&["plan", "check", plan.to_str().unwrap()]);
    let o = env
        .cmd()
        .args(["plan", "check", "--connect", plan.to_str().unwrap()])
        .env("HF_TEST_SET_WEBHOOK_7d2", "https://hooks.example/x")
        .env_remove("HF_TEST_UNSET_WEBHOOK_7d2")
        .env_remove("HF_TEST_UNSET_SMTP_7d2")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    let lines: Vec<&str> = e.lines().collect();
    let p = plan.display().to_string();
    let expect = [
        format!(
            "{p}:20: notification \"ops\": url_env HF_TEST_UNSET_WEBHOOK_7d2 is not set in this environment"
        ),
        format!(
            "{p}:31: notification \"dba\": smtp_password_env HF_TEST_UNSET_SMTP_7d2 is not set in this environment"
        ),
    ];
    assert_eq!(lines.len(), expect.len(), "{e}");
    for (l, x) in lines.iter().zip(&expect) {
        assert!(l.starts_with(x.as_str()), "{l}\n  expected {x}");
        assert!(l.contains("(fix: set "), "{l}");
    }
}

#[test]
fn a_catalog_from_a_newer_holdfast_is_one_error_with_one_hint() {
    let env = Env::new();
    let state = env.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let db = rusqlite::Connection::open(state.join("catalog.sqlite")).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    let o = env.run(&["jobs", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("schema version 99 is newer"), "{e}");
    assert_eq!(e.matches("(hint:").count(), 1, "{e}");
    assert!(e.contains("(hint: upgrade holdfast)"), "{e}");
}
