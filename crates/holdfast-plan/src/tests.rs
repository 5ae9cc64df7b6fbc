//! Table-driven: a valid plan, and broken plans each giving their precise error.

use super::check;

const GOOD: &str = include_str!("../../../docs/examples/holdfast.toml");

#[test]
fn the_example_plan_is_valid() {
    let p = check(GOOD).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(p.resources.len(), 10);
    assert_eq!(p.notifications.len(), 2);
    assert_eq!(p.daemon.max_jobs.as_ref().map(|m| *m.get_ref()), Some(2));
    assert_eq!(p.categories.len(), 8);
    assert_eq!(p.vaults.len(), 3);
}

/// (what, replace this, with this, expected line, expected message fragment)
const BROKEN: &[(&str, &str, &str, usize, &str)] = &[
    (
        "restore test from a vault without copies of a resource",
        "resources = [\"catalog-db\"]",
        "resources = [\"catalog-db\", \"app-config\"]",
        222,
        "restore test \"nightly\": vault \"dr\" holds no points of resource \"app-config\"",
    ),
    (
        "restore test row_counts not match",
        "{ row_counts = \"match\" },",
        "{ row_counts = \"macth\" },",
        224,
        "row_counts = \"macth\"",
    ),
    (
        "restore test check with two keys",
        "{ sql = \"select count(*) > 0 from sqlite_schema\" },",
        "{ sql = \"x\", command = \"y\" },",
        225,
        "a check needs exactly one of sql, row_counts, command (has 2)",
    ),
    (
        "restore test select unknown",
        "select = \"oldest\"",
        "select = \"newest\"",
        233,
        "select \"newest\" is not latest or oldest",
    ),
    (
        "restore test sql check without a database",
        "categories = [\"configuration_data\"]",
        "categories = [\"configuration_data\"]\nchecks = [{ sql = \"select 1\" }]",
        232,
        "a sql check needs a database resource; it tests only app-config",
    ),
    (
        "restore test of a missing resource",
        "resources = [\"catalog-db\"]",
        "resources = [\"catalog-dbb\"]",
        220,
        "restore test \"nightly\": resource \"catalog-dbb\" is not in the plan",
    ),
    (
        "restore test completion window unreadable",
        "completion_window = \"2h\"",
        "completion_window = \"two hours\"",
        246,
        "completion_window",
    ),
    (
        "drill without a vault to recover from",
        "resources = [\"app-db\", \"catalog-db\"]\nfrom = \"dr\"\n",
        "resources = [\"app-db\", \"catalog-db\"]\n",
        252,
        "drill \"monthly-dr\" names no vault to recover from",
    ),
    (
        "drill choosing a point",
        "parallel = 2",
        "parallel = 2\nselect = \"oldest\"",
        258,
        "a drill recovers the newest point",
    ),
    (
        "drill parallel out of range",
        "parallel = 2",
        "parallel = 0",
        257,
        "parallel = 0 (1 to 64)",
    ),
    (
        "restore test with parallel",
        "select = \"oldest\"",
        "select = \"oldest\"\nparallel = 2",
        234,
        "parallel is a key of [drills.NAME]",
    ),
    (
        "restore test testing nothing",
        "categories = [\"configuration_data\"]\n",
        "",
        230,
        "restore test \"weekly-config\" tests nothing",
    ),
    (
        "unknown key",
        "rto = \"4h\"",
        "rto = \"4h\"\nrtoo = \"5h\"",
        19,
        "unknown field `rtoo`",
    ),
    (
        "inline password",
        "passphrase_file = \"/etc/holdfast/main.pass\"",
        "password = \"hunter2\"",
        5,
        "unknown field `password`",
    ),
    (
        "bad cron",
        "schedule = \"0 2 * * *\"",
        "schedule = \"0 25 * * *\"",
        13,
        "schedule \"0 25 * * *\"",
    ),
    (
        "cron with too few fields",
        "schedule = \"30 3 * * *\"",
        "schedule = \"30 3 *\"",
        32,
        "schedule \"30 3 *\"",
    ),
    (
        "unknown time zone",
        "timezone = \"Europe/Berlin\"\nstart_window",
        "timezone = \"Europe/Berlni\"\nstart_window",
        14,
        "unknown time zone",
    ),
    (
        "bad duration",
        "start_window = \"1h\"",
        "start_window = \"an hour\"",
        15,
        "start_window",
    ),
    (
        "completion shorter than start",
        "completion_window = \"8h\"",
        "completion_window = \"30m\"",
        16,
        "shorter than start_window",
    ),
    (
        "rpo shorter than schedule gap",
        "rpo = \"24h\"",
        "rpo = \"2h\"",
        17,
        "longer than the RPO",
    ),
    (
        "unknown vault",
        "vault = \"main\"\ncopy_to = [\"dr\"]\n\n[categories.critical_data.retention]",
        "vault = \"mian\"\ncopy_to = [\"dr\"]\n\n[categories.critical_data.retention]",
        19,
        "no vault named \"mian\"",
    ),
    (
        "copy to unknown vault",
        "copy_to = [\"dr\"]\n\n[categories.critical_data.retention]",
        "copy_to = [\"drr\"]\n\n[categories.critical_data.retention]",
        20,
        "copy_to names no vault",
    ),
    (
        "copy to own vault",
        "copy_to = [\"dr\"]\n\n[categories.critical_data.retention]",
        "copy_to = [\"main\"]\n\n[categories.critical_data.retention]",
        20,
        "copies to its own vault",
    ),
    (
        "delete before min retention",
        "min_days = 30",
        "min_days = 4000",
        28,
        "shorter than min_days",
    ),
    (
        "unknown category",
        "category = \"critical_data\"\nurl_env = \"APP_DB_URL\"",
        "category = \"critical\"\nurl_env = \"APP_DB_URL\"",
        55,
        "no category named \"critical\"",
    ),
    (
        "unknown resource kind",
        "kind = \"postgres\"",
        "kind = \"oracle\"",
        54,
        "unknown variant `oracle`",
    ),
    (
        "database without connection",
        "url_env = \"APP_DB_URL\"",
        "",
        54,
        "lacks what to back up",
    ),
    (
        "files without paths",
        "paths = [\"/etc/app\", \"/srv/app/config\"]",
        "",
        64,
        "lacks what to back up",
    ),
    (
        "command without command",
        "command = \"idp-export --all --format json\"",
        "",
        70,
        "lacks what to back up",
    ),
    (
        "password in a URL",
        "url_file = \"/etc/holdfast/shop-db.url\"",
        "url = \"mysql://root:secret@db/shop\"",
        61,
        "carries a password",
    ),
    (
        "password in a URL's query",
        "url_file = \"/etc/holdfast/shop-db.url\"",
        "url = \"mysql://root@db/shop?ssl-mode=REQUIRED&password=hunter2\"",
        61,
        "resource \"shop-db\": the URL carries a password (?password=)",
    ),
    (
        "password in a URL's userinfo",
        "url_file = \"/etc/holdfast/shop-db.url\"",
        "url = \"postgresql://app:hunter2@db.example:5432/shop\"",
        61,
        "resource \"shop-db\": the URL carries a password (user:password@)",
    ),
    (
        "delete_after that is not a duration, without min_days",
        "delete_after = \"3y\"",
        "delete_after = \"bogus\"",
        40,
        "category \"configuration_data\": delete_after",
    ),
    (
        "vault without secret source",
        "key_file = \"/etc/holdfast/dr.key\"",
        "",
        7,
        "needs exactly one secret source",
    ),
    (
        "vault with two secret sources",
        "passphrase_file = \"/etc/holdfast/main.pass\"",
        "passphrase_file = \"/etc/holdfast/main.pass\"\npassphrase_env = \"X\"",
        3,
        "needs exactly one secret source",
    ),
    (
        "credentials in an S3 vault URL",
        "url = \"s3://backup-account-vault/app\"",
        "url = \"s3://key:secret@backup-account-vault/app\"",
        8,
        "vault \"dr\"",
    ),
    (
        "webhook with inline URL",
        "url_env = \"OPS_SLACK_WEBHOOK\"",
        "url = \"https://hooks.example/x\"",
        77,
        "unknown field `url`",
    ),
    (
        "webhook without URL",
        "url_env = \"OPS_SLACK_WEBHOOK\"\n",
        "",
        76,
        "needs url_env or url_file",
    ),
    (
        "unknown notification kind",
        "kind = \"webhook\"",
        "kind = \"pager\"",
        76,
        "unknown kind \"pager\"",
    ),
    (
        "category without retention",
        "[categories.user_directory.retention]\nkeep_last = 28\nkeep_daily = 90\n",
        "",
        43,
        "has no retention",
    ),
    (
        "resource name with a colon",
        "[resources.app-config]",
        "[resources.\"app:config\"]",
        65,
        "contains ':'",
    ),
    (
        "empty hook",
        "name = \"users.json\"",
        "name = \"users.json\"\npre_hook = \"  \"",
        74,
        "empty hook",
    ),
    (
        "TOML syntax error",
        "keep_weekly = 12",
        "keep_weekly = = 12",
        25,
        "",
    ),
    (
        "missing vault url",
        "url = \"/srv/holdfast/vault\"\n",
        "",
        3,
        "missing field `url`",
    ),
    (
        "daemon listen without a port",
        "listen = \"127.0.0.1:9847\"",
        "listen = \"localhost\"",
        192,
        "daemon: listen \"localhost\"",
    ),
    (
        "no job could ever run",
        "max_jobs = 2",
        "max_jobs = 0",
        194,
        "max_jobs is 0",
    ),
    (
        "bad retry backoff",
        "retry_backoff = \"5m\"",
        "retry_backoff = \"soon\"",
        197,
        "retry_backoff",
    ),
    (
        "unknown notification event",
        "events = [\"failure\", \"expired\", \"rpo\"]",
        "events = [\"failure\", \"expird\"]",
        187,
        "unknown event \"expird\"",
    ),
    (
        "unknown SMTP security",
        "smtp = \"smtp.example.com:587\"",
        "smtp = \"smtp.example.com:587\"\nsmtp_security = \"ssl3\"",
        185,
        "unknown smtp_security",
    ),
    (
        "base backups without a connection",
        "url_env = \"APP_DB_REPLICATION_URL\"",
        "",
        177,
        "of kind postgres-base lacks what to back up",
    ),
    (
        "bad verify read_data",
        "read_data = \"10%\"",
        "read_data = \"some\"",
        206,
        "read_data \"some\" is not none, all or a percentage",
    ),
    (
        "bad verify schedule",
        "schedule = \"0 5 1 * *\"",
        "schedule = \"0 5 32 * *\"",
        210,
        "vault \"dr\": verify: schedule \"0 5 32 * *\"",
    ),
    (
        "unknown verify key",
        "completion_window = \"12h\"",
        "completion_window = \"12h\"\nread_everything = true",
        213,
        "unknown field `read_everything`",
    ),
];

#[test]
fn broken_plans_give_precise_errors() {
    assert!(BROKEN.len() >= 20);
    for (what, from, to, line, fragment) in BROKEN {
        assert!(
            GOOD.contains(from),
            "{what}: the example no longer contains {from:?}"
        );
        let src = GOOD.replacen(from, to, 1);
        let problems = check(&src)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        let hit = problems
            .iter()
            .find(|p| p.message.contains(fragment))
            .unwrap_or_else(|| panic!("{what}: no problem mentions {fragment:?}: {problems:?}"));
        assert_eq!(hit.line, *line, "{what}: {hit}");
        assert!(!hit.fix.is_empty(), "{what}: no fix");
    }
}

#[test]
fn each_resource_resolves_to_what_its_kind_backs_up() {
    use crate::{Connection, Source};
    let p = check(GOOD).unwrap_or_else(|e| panic!("{e:?}"));
    let source = |name: &str| p.resources[name].source();
    assert_eq!(
        source("app-db"),
        Source::Postgres {
            conn: Connection::Env("APP_DB_URL")
        }
    );
    assert_eq!(
        source("shop-db"),
        Source::Mysql {
            conn: Connection::File("/etc/holdfast/shop-db.url")
        }
    );
    assert_eq!(
        source("app-config"),
        Source::Files {
            paths: &["/etc/app".to_string(), "/srv/app/config".to_string()],
            exclude: &p.resources["app-config"].exclude,
        }
    );
    assert_eq!(
        source("idp-users"),
        Source::Command {
            line: "idp-export --all --format json",
            name: "users.json"
        }
    );
    assert_eq!(
        source("documents"),
        Source::S3 {
            url: "s3://licensing-documents/",
            endpoint: None
        }
    );
    assert_eq!(
        source("catalog-db"),
        Source::Sqlite {
            path: "/srv/catalog/catalog.db"
        }
    );
    assert_eq!(
        source("app-db-pitr"),
        Source::PostgresBase {
            conn: Connection::Env("APP_DB_REPLICATION_URL")
        }
    );
}

mod resolved {
    use std::time::Duration;

    use crate::{DEFAULT_START_WINDOW, ResolvedPlan, VaultSecret, check};

    fn example() -> ResolvedPlan {
        let plan = check(super::GOOD).unwrap_or_else(|e| panic!("{e:?}"));
        ResolvedPlan::of(&plan).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn windows_and_objectives_resolve_to_durations_with_defaults() {
        let r = example();
        let c = r.category("critical_data").expect("category");
        assert_eq!(c.start_window, Duration::from_secs(3600));
        assert_eq!(c.completion_window, Some(Duration::from_secs(8 * 3600)));
        assert_eq!(c.rpo, Some(Duration::from_secs(24 * 3600)));
        assert_eq!(c.rto, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(c.timezone, "Europe/Berlin");
        assert_eq!(c.schedule.zone_name(), "Europe/Berlin");
        assert_eq!(c.vault, "main");
        let u = r.category("user_directory").expect("category");
        assert_eq!(u.start_window, DEFAULT_START_WINDOW);
        assert_eq!(u.completion_window, None);
        assert_eq!(u.rpo, Some(Duration::from_secs(7 * 3600)));
        assert_eq!(u.timezone, "UTC");
    }

    #[test]
    fn retention_resolves_to_rules_and_the_engine_policy() {
        let r = example();
        let crit = &r.category("critical_data").expect("category").retention;
        assert!(crit.has_rule() && crit.forgets());
        assert_eq!(crit.within().as_deref(), Some("30d"));
        assert_eq!(
            crit.delete_after.as_ref().map(|d| d.text.as_str()),
            Some("7y")
        );
        // Seven calendar years from any day are 2556 or 2557 days.
        let days = crit.delete_after.as_ref().map(|d| d.days_from(0));
        assert!(matches!(days, Some(2556 | 2557)), "{days:?}");
        let p = crit.to_policy().expect("a policy");
        assert_eq!(
            (p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly),
            (0, 0, 30, 12, 12, 7)
        );
        assert_eq!(p.within.map(|s| s.get_days()), Some(30));
        // min_days without a count rule is no `within` (the lifecycle limit keeps them).
        let cfg = &r
            .category("configuration_data")
            .expect("category")
            .retention;
        assert_eq!(cfg.within(), None);
        assert!(cfg.to_policy().is_some_and(|p| p.within.is_none()));
    }

    #[test]
    fn a_category_without_rules_keeps_every_point() {
        let src = super::GOOD.replace(
            "[categories.export_data.retention]\nkeep_daily = 90",
            "[categories.export_data.retention]\nmin_days = 10",
        );
        let plan = check(&src).unwrap_or_else(|e| panic!("{e:?}"));
        let r = ResolvedPlan::of(&plan).unwrap_or_else(|e| panic!("{e}"));
        let keep = &r.category("export_data").expect("category").retention;
        assert!(!keep.has_rule() && !keep.forgets());
        assert!(keep.to_policy().is_none());
    }

    #[test]
    fn each_vault_has_one_secret_source_in_the_documented_order() {
        let plan = check(super::GOOD).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            plan.vaults["main"].secret(),
            Some(VaultSecret::PassphraseFile(
                "/etc/holdfast/main.pass".into()
            ))
        );
        assert_eq!(
            plan.vaults["dr"].secret(),
            Some(VaultSecret::KeyFile("/etc/holdfast/dr.key".into()))
        );
        let mut v = toml::from_str::<crate::Vault>(
            "url = \"/v\"\npassphrase_env = \"P\"\npassphrase_file = \"/f\"\nkey_file = \"/k\"",
        )
        .expect("vault");
        assert_eq!(v.secret(), Some(VaultSecret::KeyFile("/k".into())));
        v.key_file = None;
        assert_eq!(v.secret(), Some(VaultSecret::PassphraseFile("/f".into())));
        v.passphrase_file = None;
        assert_eq!(v.secret(), Some(VaultSecret::PassphraseEnv("P".into())));
    }

    #[test]
    fn verify_schedules_resolve_with_their_depth_and_windows() {
        let r = example();
        let main = &r.verifies["main"];
        assert_eq!(main.read_data, crate::ReadData::Subset(10.0));
        assert_eq!(main.schedule.zone_name(), "Europe/Berlin");
        assert_eq!(main.start_window, DEFAULT_START_WINDOW);
        assert_eq!(main.completion_window, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(r.verifies["dr"].read_data, crate::ReadData::All);
        assert!(!r.verifies.contains_key("sensitive"));
    }

    #[test]
    fn restore_tests_resolve_with_their_resources_checks_and_objectives() {
        use crate::{TestCheckRule, TestSelect};
        let r = example();
        let n = &r.restore_tests["nightly"];
        assert_eq!(n.resources, ["catalog-db"]);
        assert_eq!(n.from.as_deref(), Some("dr"));
        assert!(matches!(n.select, TestSelect::Latest));
        assert_eq!(n.max_rto, Some(Duration::from_secs(900)));
        assert_eq!(
            n.checks,
            [
                TestCheckRule::RowCounts,
                TestCheckRule::Sql("select count(*) > 0 from sqlite_schema".into()),
                TestCheckRule::Command("/etc/holdfast/smoke.sh".into()),
            ]
        );
        assert_eq!(n.schedule.as_ref().map(|s| s.expr()), Some("30 4 * * *"));
        let w = &r.restore_tests["weekly-config"];
        assert_eq!(w.resources, ["app-config"]);
        assert!(matches!(w.select, TestSelect::Oldest));
        assert_eq!((w.from.as_deref(), w.max_rto), (None, None));
        let d = &r.drills["monthly-dr"];
        assert_eq!(d.test.resources, ["app-db", "catalog-db"]);
        assert_eq!(d.test.from.as_deref(), Some("dr"));
        assert_eq!(d.parallel, 2);
        assert_eq!(d.test.max_rto, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(d.test.checks, [TestCheckRule::RowCounts]);
    }
}
