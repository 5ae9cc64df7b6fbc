//! `[restore_tests.NAME]` and `[drills.NAME]`: what is tested must exist, the schedule and
//! spans parse, each check is exactly one of `sql`, `row_counts = "match"`, `command`, and a
//! SQL or row-count check belongs to a test of at least one resource whose points hold a
//! database it can query (it runs against those; the test's other resources get the other
//! checks). A drill names the vault it recovers from (`from`), restores the newest point (no
//! `select`), and may set `parallel`; a restore test may not.

use super::*;
use crate::model::RestoreTest;

pub(in crate::check) fn restore_tests(c: &mut Ctx<'_>, plan: &Plan) {
    for (name, t) in &plan.restore_tests {
        one(c, plan, "restore_tests", "restore test", name, t);
        if let Some(p) = &t.parallel {
            c.at(
                p,
                format!("restore test {name:?}: parallel is a key of [drills.NAME]"),
                "remove it (a restore test tests its resources one after the other)",
            );
        }
    }
    for (name, t) in &plan.drills {
        one(c, plan, "drills", "drill", name, t);
        let who = format!("drill {name:?}");
        if t.from.is_none() {
            let header = c.line_for_table(&format!("[drills.{name}]"));
            c.out.push(Problem {
                line: header,
                message: format!("{who} names no vault to recover from"),
                fix: "add from = \"VAULT\" (normally the isolated copy vault)".into(),
            });
        }
        for s in [&t.select, &t.random_within].into_iter().flatten() {
            c.at(
                s,
                format!("{who}: a drill recovers the newest point; select and random_within are keys of [restore_tests.NAME]"),
                "remove it",
            );
        }
        if let Some(p) = &t.parallel
            && !(1..=64).contains(p.get_ref())
        {
            c.at(
                p,
                format!("{who}: parallel = {} (1 to 64)", p.get_ref()),
                "write parallel = 2 (restores at once)",
            );
        }
    }
}

/// The checks a restore test and a drill share; `section` is the table (`restore_tests`,
/// `drills`), `what` how people call it.
fn one(c: &mut Ctx<'_>, plan: &Plan, section: &str, what: &str, name: &str, t: &RestoreTest) {
    {
        let who = format!("{what} {name:?}");
        let header = c.line_for_table(&format!("[{section}.{name}]"));
        if t.resources.is_empty() && t.categories.is_empty() {
            c.out.push(Problem {
                line: header,
                message: format!("{who} tests nothing"),
                fix: "list resources = [\"NAME\"] or categories = [\"NAME\"]".into(),
            });
        }
        for r in &t.resources {
            if !plan.resources.contains_key(r.get_ref()) {
                c.at(
                    r,
                    format!("{who}: resource {:?} is not in the plan", r.get_ref()),
                    "name a [resources.NAME] of this plan",
                );
            }
        }
        for k in &t.categories {
            if !plan.categories.contains_key(k.get_ref()) {
                c.at(
                    k,
                    format!("{who}: category {:?} is not in the plan", k.get_ref()),
                    "name a [categories.NAME] of this plan",
                );
            }
        }
        if let Some(f) = &t.from
            && !plan.vaults.contains_key(f.get_ref())
        {
            c.at(
                f,
                format!("{who}: from vault {:?} is not in the plan", f.get_ref()),
                "name a [vaults.NAME] of this plan (for example the copy vault)",
            );
        }
        if let Some(f) = &t.from
            && plan.vaults.contains_key(f.get_ref())
        {
            for (res, _) in tested_kinds(plan, t) {
                let holds = plan
                    .resources
                    .get(&res)
                    .and_then(|r| plan.categories.get(r.category.get_ref()))
                    .is_none_or(|cat| {
                        cat.vault.get_ref() == f.get_ref()
                            || cat.copy_to.iter().any(|d| d.get_ref() == f.get_ref())
                    });
                if !holds {
                    c.at(
                        f,
                        format!(
                            "{who}: vault {:?} holds no points of resource {res:?} (its category neither backs up nor copies to it)",
                            f.get_ref()
                        ),
                        "add the vault to the category's copy_to, or test from the category's vault",
                    );
                }
            }
        }
        if let Some(s) = &t.schedule {
            c.cron(s, &who);
        }
        c.zone(t.timezone.as_ref(), &who);
        for (s, what) in [
            (&t.max_rto, "max_rto"),
            (&t.start_window, "start_window"),
            (&t.completion_window, "completion_window"),
        ] {
            if let Some(s) = s {
                c.span(s, what);
            }
        }
        if let Some(w) = &t.random_within {
            c.span(w, "random_within");
        }
        if let Some(s) = &t.select {
            if !matches!(s.get_ref().as_str(), "latest" | "oldest") {
                c.at(
                    s,
                    format!("{who}: select {:?} is not latest or oldest", s.get_ref()),
                    "write select = \"latest\" or \"oldest\" (or random_within = \"30d\")",
                );
            } else if t.random_within.is_some() {
                c.at(
                    s,
                    format!("{who}: select and random_within together"),
                    "keep one: select = \"latest\" / \"oldest\", or random_within = \"30d\"",
                );
            }
        }
        checks(c, plan, &who, t);
    }
}

fn checks(c: &mut Ctx<'_>, plan: &Plan, who: &str, t: &RestoreTest) {
    let tested = tested_kinds(plan, t);
    for ch in &t.checks {
        let k = ch.get_ref();
        let set = [k.sql.is_some(), k.row_counts.is_some(), k.command.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if set != 1 {
            c.at(
                ch,
                format!("{who}: a check needs exactly one of sql, row_counts, command (has {set})"),
                "write { sql = \"…\" }, { row_counts = \"match\" } or { command = \"…\" }",
            );
            continue;
        }
        if let Some(v) = &k.row_counts
            && v != "match"
        {
            c.at(
                ch,
                format!("{who}: row_counts = {v:?}"),
                "write row_counts = \"match\"",
            );
        }
        // A database check runs against the test's database resources; a test that has none
        // could never run it.
        let fits = |kind: &Kind| {
            if k.sql.is_some() {
                kind.queryable()
            } else {
                kind.counts_rows()
            }
        };
        if (k.sql.is_some() || k.row_counts.is_some())
            && !tested.is_empty()
            && !tested.iter().any(|(_, kind)| fits(kind))
        {
            let names: Vec<&str> = tested.iter().map(|(n, _)| n.as_str()).collect();
            c.at(
                ch,
                if k.sql.is_some() {
                    format!(
                        "{who}: a sql check needs a database resource; it tests only {}",
                        names.join(", ")
                    )
                } else {
                    format!(
                        "{who}: a row_counts check needs a sqlite or postgres (logical) resource, whose points record row counts; it tests only {}",
                        names.join(", ")
                    )
                },
                "add a sqlite or postgres resource to the test, or drop the check",
            );
        }
    }
}

/// The resources a test covers with their kinds (names the plan lacks are reported above).
fn tested_kinds(plan: &Plan, t: &RestoreTest) -> Vec<(String, Kind)> {
    let mut out: Vec<(String, Kind)> = Vec::new();
    for r in &t.resources {
        if let Some(res) = plan.resources.get(r.get_ref()) {
            out.push((r.get_ref().clone(), *res.kind.get_ref()));
        }
    }
    for k in &t.categories {
        for (rname, res) in &plan.resources {
            if res.category.get_ref() == k.get_ref() && !out.iter().any(|(n, _)| n == rname) {
                out.push((rname.clone(), *res.kind.get_ref()));
            }
        }
    }
    out
}
