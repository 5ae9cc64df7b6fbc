//! The plan turned into worker jobs: what a job step runs — a `holdfast worker` child and the
//! typed request it reads on stdin (holdfast_ops::worker) — with the vault's secret source in
//! the child's environment (`HOLDFAST_KEY_FILE`,
//! `HOLDFAST_PASSPHRASE(_FILE)`, `HOLDFAST_TO_*` for a copy's destination).
//!
//! The plan's other secrets stay away from children: a `holdfast` child gets no vault
//! `passphrase_env` variable (it gets `HOLDFAST_PASSPHRASE` instead), no notification or API
//! secret, and learns the names of every plan secret variable in `HOLDFAST_SECRET_VARS` so
//! it withholds them from the programs it starts. Hooks get none of them
//! (`holdfast_sources::child_env`).

use std::path::{Path, PathBuf};

use holdfast_ops::backup::{BackupRequest, SourceSpec};
use holdfast_ops::copy::{CopyRequest, CopySelection, Destination};
use holdfast_ops::drill::DrillRequest;
use holdfast_ops::forget::{ForgetRequest, Keep, Selection};
use holdfast_ops::pitr::BaseBackupRequest;
use holdfast_ops::points::PointsRequest;
use holdfast_ops::prune::PruneRequest;
use holdfast_ops::restore::RestoreRequest;
use holdfast_ops::restore_test::{Check, RestoreTestRequest, Select};
use holdfast_ops::verify::{ReadShare, VerifyRequest};
use holdfast_ops::worker::{Job, PROTOCOL, Request};
use holdfast_plan::{
    Category, Connection, Plan, ReadData, Resource, Source, TestCheckRule, TestSelect, Vault,
    VaultSecret,
};

use crate::LoadedPlan;
use tokio::process::Command;

/// A step that cannot be prepared (the plan references something missing at run time).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A name the plan does not define.
    #[error("{what} {name:?} is not in the plan")]
    Missing {
        /// resource / category / vault.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A secret's environment variable is not set in the daemon's environment.
    #[error("vault {vault:?}: passphrase_env {var} is not set in the daemon's environment")]
    SecretEnv {
        /// The vault.
        vault: String,
        /// The variable.
        var: String,
    },
}

/// Environment variables that select a vault secret; cleared in every child so only the
/// plan's secret source applies.
const SECRET_VARS: [&str; 10] = [
    "HOLDFAST_PASSPHRASE",
    "HOLDFAST_PASSPHRASE_FILE",
    "HOLDFAST_PASSPHRASE_COMMAND",
    "HOLDFAST_KEY_FILE",
    "HOLDFAST_TO_PASSPHRASE",
    "HOLDFAST_TO_PASSPHRASE_FILE",
    "HOLDFAST_TO_PASSPHRASE_COMMAND",
    "HOLDFAST_TO_KEY_FILE",
    "HOLDFAST_VAULT",
    "HOLDFAST_S3_ENDPOINT",
];

/// Every environment variable the plan names as holding a secret: vault `passphrase_env`,
/// resource `url_env`, notification `url_env` / `smtp_password_env`, `api_token_env`.
pub fn plan_secret_vars(plan: &Plan) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    v.extend(
        plan.vaults
            .values()
            .filter_map(|x| x.passphrase_env.clone()),
    );
    v.extend(plan.resources.values().filter_map(|r| r.url_env.clone()));
    for n in plan.notifications.values() {
        v.extend(n.url_env.clone());
        v.extend(n.smtp_password_env.clone());
    }
    v.extend(plan.daemon.api_token_env.clone());
    v.sort();
    v.dedup();
    v
}

/// The plan's secret variables a `holdfast` child never needs (it may need a resource's
/// `url_env`, read as `env:VAR`).
fn unneeded_secret_vars(plan: &Plan) -> Vec<String> {
    let urls: Vec<&String> = plan
        .resources
        .values()
        .filter_map(|r| r.url_env.as_ref())
        .collect();
    plan_secret_vars(plan)
        .into_iter()
        .filter(|v| !urls.contains(&v))
        .collect()
}

/// Look up a resource and its category.
pub fn resource<'p>(
    plan: &'p Plan,
    name: &str,
) -> Result<(&'p Resource, &'p Category), PrepareError> {
    let r = plan
        .resources
        .get(name)
        .ok_or_else(|| PrepareError::Missing {
            what: "resource",
            name: name.into(),
        })?;
    let c = plan
        .categories
        .get(r.category.get_ref())
        .ok_or_else(|| PrepareError::Missing {
            what: "category",
            name: r.category.get_ref().clone(),
        })?;
    Ok((r, c))
}

/// Look up a vault.
pub fn vault<'p>(plan: &'p Plan, name: &str) -> Result<&'p Vault, PrepareError> {
    plan.vaults.get(name).ok_or_else(|| PrepareError::Missing {
        what: "vault",
        name: name.into(),
    })
}

/// The vault's secret source ([`Vault::secret`]) as the child's `PREFIX_*` variable, read by
/// the worker exactly as a user's `HOLDFAST_*` variables are.
fn secret_env(cmd: &mut Command, name: &str, v: &Vault, prefix: &str) -> Result<(), PrepareError> {
    match v.secret() {
        Some(VaultSecret::KeyFile(k)) => {
            cmd.env(format!("{prefix}_KEY_FILE"), k);
        }
        Some(VaultSecret::PassphraseFile(f)) => {
            cmd.env(format!("{prefix}_PASSPHRASE_FILE"), f);
        }
        Some(VaultSecret::PassphraseEnv(var)) => {
            let val = std::env::var_os(&var).ok_or_else(|| PrepareError::SecretEnv {
                vault: name.into(),
                var: var.clone(),
            })?;
            cmd.env(format!("{prefix}_PASSPHRASE"), val);
        }
        None => {}
    }
    Ok(())
}

/// A `holdfast worker` child against the plan's vault `vault_name`, with its secret in the
/// environment; the job it runs goes to its standard input.
pub fn worker(exe: &Path, plan: &Plan, vault_name: &str) -> Result<Command, PrepareError> {
    let v = vault(plan, vault_name)?;
    let mut cmd = Command::new(exe);
    for var in SECRET_VARS {
        cmd.env_remove(var);
    }
    for var in unneeded_secret_vars(plan) {
        cmd.env_remove(var);
    }
    // The child withholds every plan secret from the programs it starts.
    cmd.env(
        holdfast_sources::child_env::SECRET_VARS_ENV,
        plan_secret_vars(plan).join(","),
    );
    cmd.env("HOLDFAST_VAULT", v.url.get_ref());
    if let Some(e) = &v.endpoint {
        cmd.env("HOLDFAST_S3_ENDPOINT", e);
    }
    if let Some(r) = &v.region {
        cmd.env("HOLDFAST_S3_REGION", r);
    }
    secret_env(&mut cmd, vault_name, v, "HOLDFAST")?;
    cmd.arg("worker");
    Ok(cmd)
}

/// A job step: the worker child and the request it is given.
pub struct Step {
    /// The `holdfast worker` child, environment set.
    pub cmd: Command,
    /// What it is asked to do.
    pub job: Job,
}

fn step(exe: &Path, plan: &Plan, vault_name: &str, request: Request) -> Result<Step, PrepareError> {
    Ok(Step {
        cmd: worker(exe, plan, vault_name)?,
        job: Job {
            protocol: PROTOCOL,
            request,
        },
    })
}

/// A resource's connection URL as the worker resolves it: `env:VAR`, `file:PATH` or itself.
/// A connection as a request names it: `env:VAR` / `file:PATH` (read by the worker, never in
/// argv) or the URL itself.
fn conn_arg(c: Connection<'_>) -> String {
    match c {
        Connection::Env(v) => format!("env:{v}"),
        Connection::File(f) => format!("file:{f}"),
        Connection::Literal(u) => u.to_string(),
    }
}

/// The backup of resource `name`.
pub fn backup(exe: &Path, plan: &Plan, name: &str) -> Result<Step, PrepareError> {
    let (r, c) = resource(plan, name)?;
    let vault = c.vault.get_ref();
    let source = match r.source() {
        Source::PostgresBase { conn } => {
            // WAL reaches the vault through archive_command (`holdfast pg wal-push`).
            let req = BaseBackupRequest {
                resource: name.to_string(),
                postgres: conn_arg(conn),
            };
            return step(exe, plan, vault, Request::BaseBackup(req));
        }
        Source::Files { paths, exclude } => SourceSpec::Files {
            paths: paths.iter().map(PathBuf::from).collect(),
            excludes: exclude.to_vec(),
            no_cache: false,
        },
        Source::Postgres { conn } => SourceSpec::Postgres {
            url: conn_arg(conn),
            databases: vec![],
        },
        Source::Mysql { conn } => SourceSpec::Mysql {
            url: conn_arg(conn),
            databases: vec![],
        },
        Source::Sqlite { path } => SourceSpec::Sqlite {
            path: PathBuf::from(path),
        },
        Source::Command { line, name } => SourceSpec::Command {
            line: line.to_string(),
            name: name.to_string(),
        },
        Source::S3 { url, endpoint } => SourceSpec::S3 {
            url: url.to_string(),
            endpoint: endpoint.map(str::to_string),
        },
    };
    let mut tags = vec![format!("category={}", r.category.get_ref())];
    tags.extend(r.tags.iter().cloned());
    let req = BackupRequest {
        source,
        resource: Some(name.to_string()),
        tags,
        time_ns: None,
        host: None,
    };
    step(exe, plan, vault, Request::Backup(req))
}

/// Copy every point of `name` missing in `dest` (idempotent: copied points are recognised).
pub fn copy(exe: &Path, plan: &Plan, name: &str, dest: &str) -> Result<Step, PrepareError> {
    let (_, c) = resource(plan, name)?;
    let d = vault(plan, dest)?;
    let req = CopyRequest {
        select: CopySelection::Resource {
            resource: name.to_string(),
        },
        to: Destination {
            vault: d.url.get_ref().clone(),
            s3_endpoint: d.endpoint.clone(),
            s3_region: d.region.clone(),
        },
    };
    let mut s = step(exe, plan, c.vault.get_ref(), Request::Copy(req))?;
    secret_env(&mut s.cmd, dest, d, "HOLDFAST_TO")?;
    Ok(s)
}

/// The category's retention of `name` as a forget request; None when the category keeps
/// every point.
pub fn retention(loaded: &LoadedPlan, name: &str) -> Result<Option<ForgetRequest>, PrepareError> {
    resource(&loaded.plan, name)?;
    // The resource's category is in the plan (just checked), so it is resolved.
    let Some(c) = loaded.rules_of(name) else {
        return Ok(None);
    };
    let rules = &c.retention;
    if !rules.forgets() {
        return Ok(None);
    }
    let keep = Keep {
        last: rules.last,
        daily: rules.daily,
        weekly: rules.weekly,
        monthly: rules.monthly,
        yearly: rules.yearly,
        hourly: 0,
        within: rules.within(),
    };
    Ok(Some(ForgetRequest {
        select: Selection::Rules {
            keep,
            delete_after: rules.delete_after.as_ref().map(|d| d.text.clone()),
            timezone: c.timezone.clone(),
            resource: Some(name.to_string()),
            tags: vec![],
        },
        dry_run: false,
        bypass_governance: false,
    }))
}

/// The category's retention for `name` in `vault_name`; None when the category keeps all.
pub fn forget(
    exe: &Path,
    loaded: &LoadedPlan,
    name: &str,
    vault_name: &str,
) -> Result<Option<Step>, PrepareError> {
    match retention(loaded, name)? {
        None => Ok(None),
        Some(req) => step(exe, &loaded.plan, vault_name, Request::Forget(req)).map(Some),
    }
}

/// Prune `vault_name`.
pub fn prune(exe: &Path, plan: &Plan, vault_name: &str) -> Result<Step, PrepareError> {
    step(
        exe,
        plan,
        vault_name,
        Request::Prune(PruneRequest::default()),
    )
}

/// The part of a rotation the `done`-th verify with a `pct` share reads: (K, N) with
/// N = ceil(100 / pct) parts, so N verifies read every pack once.
pub fn rotation(pct: f64, done: usize) -> (u32, u32) {
    let n = (100.0 / pct).ceil().clamp(1.0, 10_000.0) as u32;
    ((done % n as usize) as u32 + 1, n)
}

/// Verify `vault_name`, reading `read_data` of its stored packs; a share rotates through the
/// packs (`done`: verifies of this vault completed so far).
pub fn verify(
    exe: &Path,
    plan: &Plan,
    vault_name: &str,
    read_data: ReadData,
    done: usize,
) -> Result<Step, PrepareError> {
    let read = match read_data {
        ReadData::None => ReadShare::None,
        ReadData::All => ReadShare::All,
        ReadData::Subset(p) => {
            let (k, n) = rotation(p, done);
            ReadShare::Part { k, n }
        }
    };
    step(
        exe,
        plan,
        vault_name,
        Request::Verify(VerifyRequest { read }),
    )
}

/// Restore from `vault_name`.
pub fn restore(
    exe: &Path,
    plan: &Plan,
    vault_name: &str,
    req: RestoreRequest,
) -> Result<Step, PrepareError> {
    step(exe, plan, vault_name, Request::Restore(req))
}

/// List the points of `vault_name`.
pub fn points(exe: &Path, plan: &Plan, vault_name: &str) -> Result<Step, PrepareError> {
    step(
        exe,
        plan,
        vault_name,
        Request::Points(PointsRequest::default()),
    )
}

/// A hook: `/bin/sh -c LINE` with the job's facts in its environment, and none of the
/// daemon's secrets (no `HOLDFAST_*` variable but the facts, no plan secret variable).
pub fn hook(
    plan: &Plan,
    line: &str,
    resource: &str,
    job: i64,
    phase: &str,
    state: Option<&str>,
) -> Command {
    let mut cmd = Command::new("/bin/sh");
    let secrets = plan_secret_vars(plan);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    holdfast_sources::child_env::scrub(cmd.as_std_mut(), &secrets);
    cmd.arg("-c").arg(line);
    cmd.env("HOLDFAST_RESOURCE", resource)
        .env("HOLDFAST_JOB", job.to_string())
        .env("HOLDFAST_PHASE", phase);
    if let Some(s) = state {
        cmd.env("HOLDFAST_JOB_STATE", s);
    }
    cmd
}

/// One resource of a restore test: the vault its point is restored from and the request.
pub struct TestRun {
    /// The resource.
    pub resource: String,
    /// The plan vault restored from (the test's `from`, else the category's vault).
    pub vault: String,
    /// The operation's request.
    pub request: RestoreTestRequest,
}

/// The runs of restore test `name`, one per resource it covers.
pub fn restore_test(loaded: &LoadedPlan, name: &str) -> Result<Vec<TestRun>, PrepareError> {
    let t = loaded
        .resolved
        .restore_tests
        .get(name)
        .ok_or_else(|| PrepareError::Missing {
            what: "restore test",
            name: name.into(),
        })?;
    test_runs(loaded, name, t, t.max_rto)
}

/// Drill `name`: the plan vault it recovers from and the request (every resource's
/// recovery held to its category's RTO; the drill's `max_rto` — default the largest of
/// them — is the target of the total).
pub fn drill(loaded: &LoadedPlan, name: &str) -> Result<DrillRequest, PrepareError> {
    let d = loaded
        .resolved
        .drills
        .get(name)
        .ok_or_else(|| PrepareError::Missing {
            what: "drill",
            name: name.into(),
        })?;
    let runs = test_runs(loaded, name, &d.test, None)?;
    let vault = d.test.from.clone().unwrap_or_default();
    let total = d
        .test
        .max_rto
        .map(|x| x.as_secs())
        .or_else(|| runs.iter().filter_map(|r| r.request.max_rto_seconds).max());
    Ok(DrillRequest {
        name: name.into(),
        vault,
        tests: runs.into_iter().map(|r| r.request).collect(),
        parallel: d.parallel,
        max_rto_seconds: total,
    })
}

/// One run per resource of a restore test or drill `name` (`max_rto`: the test's own target
/// of each resource, else its category's RTO).
fn test_runs(
    loaded: &LoadedPlan,
    name: &str,
    t: &holdfast_plan::RestoreTestRules,
    max_rto: Option<std::time::Duration>,
) -> Result<Vec<TestRun>, PrepareError> {
    let select = match &t.select {
        TestSelect::Latest => Select::Latest,
        TestSelect::Oldest => Select::Oldest,
        TestSelect::RandomWithin(s) => Select::RandomWithin {
            within: s.text.clone(),
        },
    };
    let checks: Vec<Check> = t
        .checks
        .iter()
        .map(|c| match c {
            TestCheckRule::Sql(q) => Check::Sql(q.clone()),
            TestCheckRule::RowCounts => Check::RowCounts("match".into()),
            TestCheckRule::Command(l) => Check::Command(l.clone()),
        })
        .collect();
    let mut out = Vec::new();
    for r in &t.resources {
        let (res, _) = resource(&loaded.plan, r)?;
        let rules = loaded
            .resolved
            .category(res.category.get_ref())
            .ok_or_else(|| PrepareError::Missing {
                what: "category",
                name: res.category.get_ref().clone(),
            })?;
        // Database checks run against the resources they fit (plan check requires one):
        // sql against every database, row_counts against those whose points record counts.
        let kind = *res.kind.get_ref();
        let checks: Vec<Check> = checks
            .iter()
            .filter(|c| match c {
                Check::Sql(_) => kind.queryable(),
                Check::RowCounts(_) => kind.counts_rows(),
                Check::Command(_) => true,
            })
            .cloned()
            .collect();
        out.push(TestRun {
            resource: r.clone(),
            vault: t.from.clone().unwrap_or_else(|| rules.vault.clone()),
            request: RestoreTestRequest {
                resource: r.clone(),
                select: select.clone(),
                checks,
                max_rto_seconds: max_rto.or(rules.rto).map(|d| d.as_secs()),
                rpo_seconds: rules.rpo.map(|d| d.as_secs()),
                scratch_dir: None,
                test: Some(name.to_string()),
            },
        });
    }
    Ok(out)
}

/// The worker step of one resource's restore test (from `run.vault`).
pub fn restore_test_step(exe: &Path, plan: &Plan, run: &TestRun) -> Result<Step, PrepareError> {
    step(
        exe,
        plan,
        &run.vault,
        Request::RestoreTest(run.request.clone()),
    )
}
