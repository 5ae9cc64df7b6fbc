//! The plan turned into `holdfast` command lines: what a job step runs, with the vault's
//! secret source in the child's environment (`HOLDFAST_KEY_FILE`,
//! `HOLDFAST_PASSPHRASE(_FILE)`, `HOLDFAST_TO_*` for a copy's destination).
//!
//! The plan's other secrets stay away from children: a `holdfast` child gets no vault
//! `passphrase_env` variable (it gets `HOLDFAST_PASSPHRASE` instead), no notification or API
//! secret, and learns the names of every plan secret variable in `HOLDFAST_SECRET_VARS` so
//! it withholds them from the programs it starts. Hooks get none of them
//! (`holdfast_sources::child_env`).

use std::path::Path;

use holdfast_plan::{Category, Kind, Plan, ReadData, Resource, Vault};
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

fn secret_env(cmd: &mut Command, name: &str, v: &Vault, prefix: &str) -> Result<(), PrepareError> {
    if let Some(k) = &v.key_file {
        cmd.env(format!("{prefix}_KEY_FILE"), k);
    } else if let Some(f) = &v.passphrase_file {
        cmd.env(format!("{prefix}_PASSPHRASE_FILE"), f);
    } else if let Some(var) = &v.passphrase_env {
        let val = std::env::var_os(var).ok_or_else(|| PrepareError::SecretEnv {
            vault: name.into(),
            var: var.clone(),
        })?;
        cmd.env(format!("{prefix}_PASSPHRASE"), val);
    }
    Ok(())
}

/// `holdfast --json` against the plan's vault `vault_name`.
pub fn base(exe: &Path, plan: &Plan, vault_name: &str) -> Result<Command, PrepareError> {
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
    cmd.arg("--json");
    Ok(cmd)
}

fn url_arg(r: &Resource) -> String {
    if let Some(v) = &r.url_env {
        format!("env:{v}")
    } else if let Some(f) = &r.url_file {
        format!("file:{f}")
    } else {
        r.url
            .as_ref()
            .map(|u| u.get_ref().clone())
            .unwrap_or_default()
    }
}

/// The backup of resource `name`.
pub fn backup(exe: &Path, plan: &Plan, name: &str) -> Result<Command, PrepareError> {
    let (r, c) = resource(plan, name)?;
    let mut cmd = base(exe, plan, c.vault.get_ref())?;
    if *r.kind.get_ref() == Kind::PostgresBase {
        // WAL reaches the vault through archive_command (`holdfast pg wal-push`).
        cmd.args([
            "pg",
            "basebackup",
            "--resource",
            name,
            "--postgres",
            &url_arg(r),
        ]);
        return Ok(cmd);
    }
    cmd.args(["backup", "--resource", name]);
    cmd.args(["--tag", &format!("category={}", r.category.get_ref())]);
    for t in &r.tags {
        cmd.args(["--tag", t]);
    }
    match *r.kind.get_ref() {
        Kind::Files => {
            for e in &r.exclude {
                cmd.args(["--exclude", e]);
            }
            cmd.arg("--");
            cmd.args(&r.paths);
        }
        Kind::Postgres => {
            cmd.args(["--postgres", &url_arg(r)]);
        }
        Kind::PostgresBase => {}
        Kind::Mysql => {
            cmd.args(["--mysql", &url_arg(r)]);
        }
        Kind::Sqlite => {
            cmd.args(["--sqlite", r.path.as_deref().unwrap_or("")]);
        }
        Kind::Command => {
            let line = r.command.as_ref().map(|c| c.get_ref().as_str());
            cmd.args(["--command", line.unwrap_or("")]);
            if let Some(n) = &r.name {
                cmd.args(["--stdin-name", n]);
            }
        }
        Kind::S3 => {
            let url = r.url.as_ref().map(|u| u.get_ref().as_str()).unwrap_or("");
            cmd.args(["--s3-source", url]);
            if let Some(e) = &r.endpoint {
                cmd.args(["--s3-source-endpoint", e]);
            }
        }
    }
    Ok(cmd)
}

/// Copy every point of `name` missing in `dest` (idempotent: copied points are recognised).
pub fn copy(exe: &Path, plan: &Plan, name: &str, dest: &str) -> Result<Command, PrepareError> {
    let (_, c) = resource(plan, name)?;
    let mut cmd = base(exe, plan, c.vault.get_ref())?;
    let d = vault(plan, dest)?;
    secret_env(&mut cmd, dest, d, "HOLDFAST_TO")?;
    cmd.args(["copy", "--resource", name, "--to", d.url.get_ref()]);
    if let Some(e) = &d.endpoint {
        cmd.args(["--to-s3-endpoint", e]);
    }
    if let Some(r) = &d.region {
        cmd.args(["--to-s3-region", r]);
    }
    Ok(cmd)
}

/// The category's retention for `name` in `vault_name`; None when the category keeps all.
pub fn forget(
    exe: &Path,
    plan: &Plan,
    name: &str,
    vault_name: &str,
) -> Result<Option<Command>, PrepareError> {
    let (_, c) = resource(plan, name)?;
    let r = &c.retention;
    let rules = [
        ("--keep-last", r.keep_last),
        ("--keep-daily", r.keep_daily),
        ("--keep-weekly", r.keep_weekly),
        ("--keep-monthly", r.keep_monthly),
        ("--keep-yearly", r.keep_yearly),
    ];
    let any_rule = rules.iter().any(|(_, n)| n.is_some_and(|n| n > 0));
    if !any_rule && r.delete_after.is_none() {
        return Ok(None);
    }
    let mut cmd = base(exe, plan, vault_name)?;
    cmd.args(["forget", "--resource", name]);
    for (flag, n) in rules {
        if let Some(n) = n.filter(|n| *n > 0) {
            cmd.args([flag, &n.to_string()]);
        }
    }
    if let Some(d) = &r.min_days
        && any_rule
    {
        cmd.args(["--keep-within", &format!("{}d", d.get_ref())]);
    }
    if let Some(d) = &r.delete_after {
        cmd.args(["--delete-after", d.get_ref()]);
    }
    let tz = c.timezone.as_ref().map_or("UTC", |t| t.get_ref().as_str());
    cmd.args(["--timezone", tz]);
    Ok(Some(cmd))
}

/// Prune `vault_name`.
pub fn prune(exe: &Path, plan: &Plan, vault_name: &str) -> Result<Command, PrepareError> {
    let mut cmd = base(exe, plan, vault_name)?;
    cmd.arg("prune");
    Ok(cmd)
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
) -> Result<Command, PrepareError> {
    let mut cmd = base(exe, plan, vault_name)?;
    cmd.arg("verify");
    match read_data {
        ReadData::None => {}
        ReadData::All => {
            cmd.arg("--read-data");
        }
        ReadData::Subset(p) => {
            let (k, n) = rotation(p, done);
            cmd.args(["--read-data-subset", &format!("{k}/{n}")]);
        }
    }
    Ok(cmd)
}

/// Restore from `vault_name`: `holdfast restore` with `args` (point and target).
pub fn restore(
    exe: &Path,
    plan: &Plan,
    vault_name: &str,
    args: &[std::ffi::OsString],
) -> Result<Command, PrepareError> {
    let mut cmd = base(exe, plan, vault_name)?;
    cmd.arg("restore").args(args);
    Ok(cmd)
}

/// List the points of `vault_name`.
pub fn points(exe: &Path, plan: &Plan, vault_name: &str) -> Result<Command, PrepareError> {
    let mut cmd = base(exe, plan, vault_name)?;
    cmd.arg("points");
    Ok(cmd)
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
