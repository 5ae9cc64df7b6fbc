//! Command implementations. Each returns the process exit code or an engine error.

mod admin;
mod backup;
mod read;

use std::sync::Arc;

use holdfast_engine::{Error, LockedVault, Origin, Result, Vault};
use holdfast_storage::Storage;
use holdfast_storage::url::{Location, S3Options};

use crate::cli::{Cli, Command, KeyCommand};
use crate::secrets::{self, Secret};

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<i32> {
    let ctx = Ctx::new(&cli);
    match cli.command {
        Command::Init => admin::init(&ctx),
        Command::Backup(a) => backup::backup(&ctx, a),
        Command::Points(a) => read::points(&ctx, a),
        Command::Ls(a) => read::ls(&ctx, a),
        Command::Dump(a) => read::dump(&ctx, a),
        Command::Restore(a) => read::restore(&ctx, a),
        Command::Verify(a) => admin::verify(&ctx, a),
        Command::Key(k) => match k {
            KeyCommand::List => admin::key_list(&ctx),
            KeyCommand::Add { label } => admin::key_add(&ctx, &label),
            KeyCommand::Remove { id } => admin::key_remove(&ctx, &id),
            KeyCommand::Passwd => admin::key_passwd(&ctx),
            KeyCommand::CreateBackupOnly { output } => admin::key_backup_only(&ctx, &output),
        },
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

    /// Open and unlock the vault, and load its index.
    pub fn open(&self) -> Result<Vault> {
        let storage = self.storage()?;
        let locked = LockedVault::open(storage)?;
        let vault = match secrets::unlock_secret()? {
            Secret::Passphrase(p) => locked.unlock_passphrase(&p)?,
            Secret::KeyFile(m) => locked.unlock_material(m)?,
        };
        let damage = vault.load_index()?;
        for d in damage {
            eprintln!(
                "holdfast: warning: {} is damaged ({}); run `holdfast verify`",
                d.object, d.reason
            );
        }
        Ok(vault)
    }

    /// Print a JSON document.
    pub fn print_json(&self, v: &serde_json::Value) {
        println!("{v}");
    }
}

/// Who and when, for new objects.
pub fn origin() -> Origin {
    Origin {
        host: holdfast_sources::meta::hostname(),
        user: holdfast_sources::meta::username(),
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    }
}
