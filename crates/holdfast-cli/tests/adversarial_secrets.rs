//! Secrets against child programs, through the real binary: fake database tools and export
//! programs (shell scripts first on PATH / in HOLDFAST_PG_BIN) log their full argv and
//! environment; holdfast runs through them with the vault passphrase set to a unique marker
//! and database passwords in the URLs. The marker must reach no child, no child may see any
//! `HOLDFAST_*` variable, a database password may appear only as `PGPASSWORD` / `MYSQL_PWD`
//! (never in argv), and database tools get no cloud credentials. The daemon's hooks and
//! children are checked the same way, with the passphrase in a plan's `passphrase_env`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::*;
use common::*;

/// The vault passphrase: must reach no child, in any form.
const MARKER: &str = "vault-pass-MARKER-4f9d2b71";
/// A cloud secret in holdfast's environment: database tools must not get it.
const AWS_MARKER: &str = "aws-secret-MARKER-c30e";
/// Database passwords written in URLs.
const PG_PW: &str = "pg-userinfo-pw-Zq81x";
const PG_QPW: &str = "pg-query-pw-Rt42y";
const MY_PW: &str = "my-pw-Kk73w";

/// Log argv and environment of every run, one file per run, then behave like `name`.
fn fake_tool(bin: &Path, log: &Path, name: &str, body: &str) {
    let script = format!(
        "#!/bin/sh\nf=\"{log}/{name}.$$\"\n{{ for a in \"$0\" \"$@\"; do printf 'ARG %s\\n' \"$a\"; done; env | sed 's/^/ENV /'; }} > \"$f\"\n{body}\n",
        log = log.display()
    );
    let p = bin.join(name);
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

const PSQL: &str = r#"sql=""; prev=""
for a in "$@"; do [ "$prev" = "-c" ] && sql="$a"; prev="$a"; done
case "$sql" in
  *server_version*) echo 15.4 ;;
  *"SELECT datname"*) echo app ;;
  *system_identifier*) echo 7300000000000000001 ;;
  *wal_level*) echo replica ;;
  *archive_mode*) echo on ;;
  *pg_current_wal_lsn*) echo 0/3000028 ;;
  *timeline_id*) echo 1 ;;
  *"count(*)"*) echo 0 ;;
esac
exit 0"#;

const MARIADB: &str = r#"sql=""; prev=""
for a in "$@"; do [ "$prev" = "-e" ] && sql="$a"; prev="$a"; done
case "$sql" in
  *VERSION*) echo 10.11.6-MariaDB ;;
  "") cat > /dev/null ;;
esac
exit 0"#;

/// The fake tools, the log folder and the PATH that finds them first.
struct Fakes {
    bin: PathBuf,
    log: PathBuf,
}

impl Fakes {
    fn new(env: &Env) -> Fakes {
        let bin = env.path("fakebin");
        let log = env.path("childlog");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&log).unwrap();
        fake_tool(&bin, &log, "psql", PSQL);
        fake_tool(
            &bin,
            &log,
            "pg_dump",
            "[ \"$1\" = --version ] && { echo 'pg_dump (PostgreSQL) 15.4'; exit 0; }\necho 'PGDMP fake dump'",
        );
        fake_tool(&bin, &log, "pg_dumpall", "echo '-- fake globals'");
        fake_tool(&bin, &log, "pg_restore", "exit 0");
        fake_tool(&bin, &log, "pg_basebackup", "printf 'fake base tar'");
        fake_tool(&bin, &log, "mariadb", MARIADB);
        fake_tool(
            &bin,
            &log,
            "mariadb-dump",
            "[ \"$1\" = --version ] && { echo 'mariadb-dump from 10.11.6-MariaDB'; exit 0; }\necho '-- MariaDB dump'",
        );
        fake_tool(
            &bin,
            &log,
            "fake-exporter",
            "echo '[{\"user\": \"alice\"}]'",
        );
        Fakes { bin, log }
    }

    /// holdfast's environment: the marker as passphrase, the fakes first on PATH, a cloud
    /// secret.
    fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("HOLDFAST_PASSPHRASE".into(), MARKER.into()),
            ("HOLDFAST_PG_BIN".into(), self.bin.display().to_string()),
            (
                "PATH".into(),
                format!(
                    "{}:{}",
                    self.bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
            ("AWS_SECRET_ACCESS_KEY".into(), AWS_MARKER.into()),
            ("AWS_ACCESS_KEY_ID".into(), "AKIA-fake-id".into()),
        ]
    }

    /// Every logged run so far: (tool name, log text).
    fn runs(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = std::fs::read_dir(&self.log)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let tool = name
                    .rsplit_once('.')
                    .map_or(name.clone(), |(t, _)| t.into());
                (tool, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    fn clear(&self) {
        for e in std::fs::read_dir(&self.log).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }

    /// Check every logged run; `tools` must all have run.
    fn check(&self, what: &str, tools: &[&str]) {
        let runs = self.runs();
        for t in tools {
            assert!(
                runs.iter().any(|(n, _)| n == t),
                "{what}: {t} never ran; ran: {:?}",
                runs.iter().map(|r| &r.0).collect::<Vec<_>>()
            );
        }
        for (tool, log) in &runs {
            check_child(what, tool, log);
        }
    }
}

/// One child's argv and environment against the rules.
fn check_child(what: &str, tool: &str, log: &str) {
    let db_tool = tool.starts_with("pg") || tool == "psql" || tool.starts_with("mariadb");
    let pw_var = if tool.starts_with("mariadb") {
        "MYSQL_PWD"
    } else {
        "PGPASSWORD"
    };
    for line in log.lines() {
        let ctx = || format!("{what}: {tool} got {line:?}\n{log}");
        assert!(!line.contains(MARKER), "the vault passphrase: {}", ctx());
        assert!(!line.contains("correct horse"), "a passphrase: {}", ctx());
        if let Some(kv) = line.strip_prefix("ENV ") {
            assert!(
                !kv.starts_with("HOLDFAST_"),
                "a holdfast variable: {}",
                ctx()
            );
            if db_tool {
                assert!(!kv.contains(AWS_MARKER), "a cloud secret: {}", ctx());
                assert!(!kv.starts_with("AWS_ACCESS_KEY_ID"), "{}", ctx());
            }
        }
        for pw in [PG_PW, PG_QPW, MY_PW] {
            if line.contains(pw) {
                assert!(
                    db_tool && line == format!("ENV {pw_var}={pw}"),
                    "a database password outside {pw_var}: {}",
                    ctx()
                );
            }
        }
    }
}

fn env_with(fakes: &Fakes, env: &mut Env) {
    env.extra_env = fakes.vars();
}

#[test]
fn postgres_tools_get_only_pgpassword() {
    let mut env = Env::new();
    let fakes = Fakes::new(&env);
    env_with(&fakes, &mut env);
    env.init();
    // A password as userinfo, given in argv.
    env.ok(&[
        "backup",
        "--postgres",
        &format!("postgresql://app:{PG_PW}@db.invalid:5432/app?sslmode=disable"),
        "--resource",
        "pg1",
    ]);
    fakes.check(
        "backup --postgres (userinfo)",
        &["psql", "pg_dump", "pg_dumpall"],
    );
    assert!(
        fakes
            .runs()
            .iter()
            .any(|(t, l)| t == "pg_dump" && l.contains(&format!("ENV PGPASSWORD={PG_PW}"))),
        "pg_dump did not get PGPASSWORD"
    );
    fakes.clear();
    // A `?password=` parameter, in a URL read from an environment variable.
    env.extra_env.push((
        "HF_TEST_APP_DB_URL".into(),
        format!("postgresql://app@db.invalid:5432/app?password={PG_QPW}&sslmode=disable"),
    ));
    env.ok(&[
        "backup",
        "--postgres",
        "env:HF_TEST_APP_DB_URL",
        "--resource",
        "pg2",
    ]);
    fakes.check(
        "backup --postgres env:VAR (?password=)",
        &["psql", "pg_dump", "pg_dumpall"],
    );
    let runs = fakes.runs();
    let dump = runs
        .iter()
        .find(|(t, l)| t == "pg_dump" && l.contains("ARG -Fc"))
        .expect("a pg_dump run");
    assert!(
        dump.1.contains(&format!("ENV PGPASSWORD={PG_QPW}")),
        "{}",
        dump.1
    );
    assert!(
        dump.1
            .contains("ARG postgresql://app@db.invalid:5432/app?sslmode=disable"),
        "the URL lost more than its password: {}",
        dump.1
    );
    fakes.clear();
    env.extra_env.retain(|(k, _)| k != "HF_TEST_APP_DB_URL");
    // Restore: psql (globals, queries) and pg_restore, with `?password=` in the URL.
    env.ok(&[
        "restore",
        "latest:pg1",
        "--to-postgres",
        &format!("postgresql://app@db.invalid:5432/postgres?password={PG_QPW}"),
    ]);
    fakes.check("restore --to-postgres", &["psql", "pg_restore"]);
    fakes.clear();
    // A base backup (pg_basebackup), userinfo password.
    env.ok(&[
        "pg",
        "basebackup",
        "--postgres",
        &format!("postgresql://rep:{PG_PW}@db.invalid:5432/postgres"),
        "--resource",
        "cluster",
    ]);
    fakes.check("pg basebackup", &["psql", "pg_basebackup"]);
}

#[test]
fn mariadb_tools_get_only_mysql_pwd() {
    let mut env = Env::new();
    let fakes = Fakes::new(&env);
    env_with(&fakes, &mut env);
    env.init();
    env.ok(&[
        "backup",
        "--mysql",
        &format!("mysql://root:{MY_PW}@127.0.0.1:3306/app"),
        "--resource",
        "shop",
    ]);
    fakes.check("backup --mysql", &["mariadb", "mariadb-dump"]);
    assert!(
        fakes
            .runs()
            .iter()
            .any(|(t, l)| t == "mariadb-dump" && l.contains(&format!("ENV MYSQL_PWD={MY_PW}"))),
        "mariadb-dump did not get MYSQL_PWD"
    );
    fakes.clear();
    env.extra_env.push((
        "HF_TEST_SHOP_URL".into(),
        format!("mysql://root:{MY_PW}@127.0.0.1:3306/app"),
    ));
    env.ok(&[
        "restore",
        "latest:shop",
        "--to-mysql",
        "env:HF_TEST_SHOP_URL",
    ]);
    fakes.check("restore --to-mysql", &["mariadb"]);
}

#[test]
fn export_programs_and_restore_programs_never_see_the_passphrase() {
    let mut env = Env::new();
    let fakes = Fakes::new(&env);
    env_with(&fakes, &mut env);
    env.init();
    env.ok(&[
        "backup",
        "--command",
        &format!("{} --all", fakes.bin.join("fake-exporter").display()),
        "--resource",
        "idp",
    ]);
    fakes.check("backup --command", &["fake-exporter"]);
    // The issue's reproduction: the environment stored inside the backup.
    env.ok(&["backup", "--command", "env", "--resource", "env-dump"]);
    let o = env.run(&["dump", "latest:env-dump", "command.out"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stored = stdout(&o);
    assert!(stored.contains("PATH="), "{stored}");
    assert!(
        !stored.contains(MARKER),
        "the passphrase is inside the backup:\n{stored}"
    );
    assert!(
        !stored.lines().any(|l| l.starts_with("HOLDFAST_")),
        "holdfast variables inside the backup:\n{stored}"
    );
    // --to-command.
    let out = env.path("restore-env.txt");
    env.ok(&[
        "restore",
        "latest:idp",
        "--to-command",
        &format!("sh -c 'cat > /dev/null; env > {}'", out.display()),
    ]);
    let seen = std::fs::read_to_string(&out).unwrap();
    assert!(seen.contains("PATH="), "{seen}");
    assert!(!seen.contains(MARKER), "{seen}");
    assert!(!seen.lines().any(|l| l.starts_with("HOLDFAST_")), "{seen}");
}

#[test]
fn daemon_hooks_and_sources_never_see_the_plan_secrets() {
    let mut env = Env::new();
    let fakes = Fakes::new(&env);
    env_with(&fakes, &mut env);
    let vault = env.path("main");
    env.ok(&["--vault", vault.to_str().unwrap(), "init"]);
    let state = env.path("state");
    let hooklog = env.path("hooks");
    std::fs::create_dir_all(&hooklog).unwrap();
    let port = free_port();
    let webhook = "https://hooks.invalid/webhook-MARKER-91aa";
    let plan = env.path("holdfast.toml");
    std::fs::write(
        &plan,
        format!(
            r#"[daemon]
state_dir = "{state}"
listen = "127.0.0.1:{port}"
api_token_env = "HOLDFAST_API_TOKEN"
retry_backoff = "1s"
shutdown_grace = "2s"
max_jobs = 2

[vaults.main]
url = "{vault}"
passphrase_env = "HF_TEST_VAULT_PASS"

[categories.often]
schedule = "*/2 * * * * *"
vault = "main"
start_window = "2s"
[categories.often.retention]
keep_last = 2

[resources.idp]
kind = "command"
category = "often"
command = "{exporter} --all"
name = "users.json"
pre_hook = "env > {hooklog}/pre.$$"
post_hook = "env > {hooklog}/post.$$"

[resources.appdb]
kind = "postgres"
category = "often"
url_env = "HF_TEST_APP_DB_URL"

[notifications.ops]
kind = "webhook"
url_env = "HF_TEST_WEBHOOK"
"#,
            state = state.display(),
            vault = vault.display(),
            exporter = fakes.bin.join("fake-exporter").display(),
            hooklog = hooklog.display(),
        ),
    )
    .unwrap();
    env.extra_env.extend([
        ("HF_TEST_VAULT_PASS".to_string(), MARKER.to_string()),
        (
            "HF_TEST_APP_DB_URL".to_string(),
            format!("postgresql://app:{PG_PW}@db.invalid:5432/app"),
        ),
        ("HF_TEST_WEBHOOK".to_string(), webhook.to_string()),
    ]);
    // The daemon gets no HOLDFAST_PASSPHRASE: the plan's passphrase_env is the only source.
    env.extra_env.retain(|(k, _)| k != "HOLDFAST_PASSPHRASE");
    let _d = Daemon::start(&env, &plan, &env.path("daemon.log"));
    wait_until(
        Duration::from_secs(90),
        "a completed backup of each resource",
        || {
            let j = jobs(&env, &state);
            ["idp", "appdb"].iter().all(|r| {
                j.iter().any(|x| {
                    x["resource"] == *r && x["kind"] == "backup" && x["state"] == "completed"
                })
            })
        },
    );
    fakes.check("daemon backups", &["fake-exporter", "psql", "pg_dump"]);
    for (tool, log) in fakes.runs() {
        assert!(!log.contains(webhook), "{tool} got the webhook URL:\n{log}");
    }
    let hooks: Vec<PathBuf> = std::fs::read_dir(&hooklog)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(hooks.len() >= 2, "{hooks:?}");
    for h in hooks {
        let seen = std::fs::read_to_string(&h).unwrap();
        assert!(seen.contains("HOLDFAST_RESOURCE=idp"), "{seen}");
        for bad in [
            MARKER,
            PG_PW,
            webhook,
            "HOLDFAST_PASSPHRASE",
            "HOLDFAST_SECRET_VARS",
        ] {
            assert!(
                !seen.contains(bad),
                "hook {} got {bad}:\n{seen}",
                h.display()
            );
        }
    }
}
