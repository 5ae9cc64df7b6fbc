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
        ok.contains("plan OK (3 vaults, 8 categories, 9 resources"),
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
