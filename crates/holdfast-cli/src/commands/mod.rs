//! Command implementations. Each returns the process exit code or an engine error.

mod admin;
pub mod backup;
mod copy;
mod drill;
mod evidence;
mod lifecycle;
mod pg;
mod plan;
mod plan_restore;
pub mod protect;
pub(crate) mod read;
mod restore_test;
mod schedule;
mod worker;

use std::sync::Arc;

use holdfast_engine::session::Session;
use holdfast_engine::{Error, KeylessVault, Origin, Result, Vault};
use holdfast_storage::Storage;
use holdfast_storage::url::{Location, OpenLocation, S3Options};

use crate::cli::{Cli, Command, KeyCommand, RepairCommand};
use crate::secrets;

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<i32> {
    let ctx = Ctx::new(&cli);
    match cli.command {
        Command::Init => admin::init(&ctx),
        Command::Migrate => lifecycle::migrate(&ctx),
        Command::Backup(a) => backup::backup(&ctx, a),
        Command::Points(a) => read::points(&ctx, a),
        Command::Ls(a) => read::ls(&ctx, a),
        Command::Dump(a) => read::dump(&ctx, a),
        Command::Restore(a) if a.plan.is_some() => plan_restore::restore(&ctx, a),
        Command::Restore(a) => read::restore(&ctx, a),
        Command::Verify(a) => admin::verify(&ctx, a),
        Command::Key(k) => match k {
            KeyCommand::List => admin::key_list(&ctx),
            KeyCommand::Add { label } => admin::key_add(&ctx, &label),
            KeyCommand::Remove { id } => admin::key_remove(&ctx, &id),
            KeyCommand::Passwd => admin::key_passwd(&ctx),
            KeyCommand::CreateBackupOnly {
                output,
                label,
                resources,
            } => admin::key_backup_only(&ctx, &output, label, resources),
            KeyCommand::Writers => admin::key_writers(&ctx),
            KeyCommand::Quarantine {
                writer,
                reason,
                since,
            } => admin::key_quarantine(&ctx, &writer, &reason, since.as_deref()),
        },
        Command::Forget(a) => lifecycle::forget(&ctx, a),
        Command::Prune(a) => lifecycle::prune(&ctx, a),
        Command::Repair(RepairCommand::Index { headers_only }) => {
            lifecycle::repair_index(&ctx, headers_only)
        }
        Command::Copy(a) => copy::copy(&ctx, a),
        Command::Lock(l) => protect::lock(&ctx, l),
        Command::Hold(h) => protect::hold(&ctx, h),
        Command::Pg(p) => pg::run(&ctx, p),
        Command::Plan(crate::cli::PlanCommand::Check { file, connect }) => {
            plan::check(&ctx, file, connect)
        }
        Command::Plan(crate::cli::PlanCommand::Show { file, count }) => {
            plan::show(&ctx, file, count)
        }
        Command::RestoreTest(crate::cli::RestoreTestCommand::Run { name, plan }) => {
            restore_test::run(&ctx, &name, &plan)
        }
        Command::Evidence(e) => evidence::run(&ctx, e),
        Command::Drill(d) => drill::run(&ctx, d),
        Command::Runbook(a) => drill::runbook(&ctx, a),
        Command::Run(a) => schedule::run(&ctx, a),
        Command::Daemon(a) => schedule::daemon(&ctx, a),
        Command::Jobs(a) => schedule::jobs(&ctx, a),
        Command::Worker => worker::run(&ctx),
    }
}

/// What every command needs.
pub struct Ctx {
    vault: Option<String>,
    s3: S3Options,
    /// `--json`.
    pub json: bool,
    /// `--quiet`.
    pub quiet: bool,
}

impl Ctx {
    fn new(cli: &Cli) -> Self {
        Ctx {
            vault: cli.vault.clone(),
            s3: S3Options {
                endpoint: cli.s3_endpoint.clone(),
                region: cli.s3_region.clone(),
                virtual_host_style: cli.s3_virtual_host,
                access_key_id: None,
                secret_access_key: None,
            },
            json: cli.json,
            quiet: cli.quiet,
        }
    }

    /// The storage of the vault location.
    pub fn storage(&self) -> Result<Arc<dyn Storage>> {
        let loc = self.vault.as_deref().ok_or_else(|| {
            Error::Input("no vault given: use --vault or set HOLDFAST_VAULT".into())
        })?;
        let loc = Location::parse(loc).map_err(|e| Error::Input(e.message))?;
        Ok(loc.open(&self.s3)?)
    }

    /// Open and unlock the vault, and load its index (damaged index objects are warned
    /// about on stderr).
    pub fn open(&self) -> Result<Vault> {
        self.open_to(&crate::output::Term::plain(false, true))
    }

    /// [`Ctx::open`], warning through `sink` (the worker's are events).
    pub fn open_to(&self, sink: &dyn holdfast_ops::Sink) -> Result<Vault> {
        let vault = self.unlock()?;
        holdfast_ops::session::load_index(&vault, sink)?;
        Ok(vault)
    }

    /// Open and unlock the vault without loading the index.
    pub fn unlock(&self) -> Result<Vault> {
        unlock_at(self.storage()?, "HOLDFAST")
    }

    /// Open the vault, start a session for `purpose`, then load the index (in that order,
    /// docs/format.md 13.2). With `required` false (readers), a session that cannot be
    /// written (read-only credentials) is skipped with a note.
    pub fn open_with_session(
        &self,
        purpose: &str,
        required: bool,
    ) -> Result<(Vault, Option<Session>)> {
        self.open_with_session_to(&crate::output::Term::plain(false, true), purpose, required)
    }

    /// [`Ctx::open_with_session`], warning through `sink`.
    pub fn open_with_session_to(
        &self,
        sink: &dyn holdfast_ops::Sink,
        purpose: &str,
        required: bool,
    ) -> Result<(Vault, Option<Session>)> {
        let vault = self.unlock()?;
        let session = start_session(&vault, purpose, required)?;
        holdfast_ops::session::load_index(&vault, sink)?;
        Ok((vault, session))
    }

    /// S3 options for another vault (copy destination).
    pub fn s3_with(&self, endpoint: Option<String>, region: Option<String>) -> S3Options {
        let mut o = self.s3.clone();
        if endpoint.is_some() {
            o.endpoint = endpoint;
        }
        if region.is_some() {
            o.region = region;
        }
        o
    }

    /// Print a JSON document.
    pub fn print_json(&self, v: &serde_json::Value) {
        println!("{v}");
    }

    /// Print a report as its JSON document.
    pub fn print_report<T: serde::Serialize>(&self, r: &T) {
        match serde_json::to_string(r) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("holdfast: error: cannot encode the report: {e}"),
        }
    }

    /// Run `f` with an operation context whose sink is `sink`.
    pub fn with_ops<T>(
        &self,
        sink: &dyn holdfast_ops::Sink,
        f: impl FnOnce(&holdfast_ops::Context<'_>) -> T,
    ) -> T {
        let cancel = holdfast_ops::Cancel::new();
        f(&holdfast_ops::Context {
            sink,
            cancel: &cancel,
            s3: &self.s3,
        })
    }
}

/// Unlock the vault in `storage` with the secret from `PREFIX_*` variables.
pub fn unlock_at(storage: Arc<dyn Storage>, prefix: &str) -> Result<Vault> {
    unlock_locked(KeylessVault::open(storage)?, prefix)
}

/// Unlock an opened vault with the secret from `PREFIX_*` variables.
pub fn unlock_locked(locked: KeylessVault, prefix: &str) -> Result<Vault> {
    let mut vault = secrets::unlock_secret_prefixed(prefix)?.unlock(locked)?;
    if let Some(d) = holdfast_ops::backup::cache_dir() {
        vault.set_state_dir(d);
    }
    Ok(vault)
}

/// Start a session on `vault`.
pub fn start_session(vault: &Vault, purpose: &str, required: bool) -> Result<Option<Session>> {
    holdfast_ops::session::start(vault, purpose, required)
}

/// Who and when, for new objects.
pub fn origin() -> Origin {
    holdfast_ops::session::origin()
}

/// Now, Unix nanoseconds.
pub fn now_ns() -> i64 {
    holdfast_ops::time::now_ns()
}

/// `user@host`, for recorded events.
pub fn by() -> String {
    holdfast_ops::session::by()
}
