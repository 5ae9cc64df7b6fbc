//! Command-line arguments (clap). Only the CLI knows these; the engine has no CLI types.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

/// holdfast — encrypted, deduplicated, verifiable backups of files, streams and databases.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version, about, long_about = None)]
pub struct Cli {
    /// The vault: a path, file://PATH or s3://BUCKET/PREFIX.
    #[arg(long, global = true, env = "HOLDFAST_VAULT")]
    pub vault: Option<String>,

    /// S3 endpoint URL (default: AWS_ENDPOINT_URL, else AWS).
    #[arg(long, global = true, env = "HOLDFAST_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region (default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, global = true, env = "HOLDFAST_S3_REGION")]
    pub s3_region: Option<String>,

    /// Use virtual-host-style S3 addressing instead of path style.
    #[arg(long, global = true)]
    pub s3_virtual_host: bool,

    /// Print one JSON document (or JSON lines for streams) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Print less.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new vault and print its id.
    Init,
    /// Convert a vault of the previous format version (2) to this one (3); full key. Stop
    /// every older holdfast using the vault first: its open sessions are declared abandoned.
    Migrate,
    /// Create a recovery point of paths or of standard input.
    Backup(BackupArgs),
    /// List recovery points.
    Points(PointsArgs),
    /// List the files of a recovery point.
    Ls(LsArgs),
    /// Write one file of a recovery point to standard output.
    Dump(DumpArgs),
    /// Restore a recovery point into a folder.
    Restore(RestoreArgs),
    /// Check the vault; with --read-data, read and authenticate every stored byte.
    Verify(VerifyArgs),
    /// Manage the vault's keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Remove recovery points by a retention policy (or by id); locked and held points stay.
    Forget(ForgetArgs),
    /// Free the space of forgotten points; safe while other hosts back up.
    Prune(PruneArgs),
    /// Copy recovery points into another vault (re-encrypted for it).
    Copy(CopyArgs),
    /// The vault lock: minimum retention, governance or compliance mode.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Legal holds: points that survive every forget and prune.
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Repair vault structures.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// PostgreSQL physical backups and point-in-time recovery.
    #[command(subcommand)]
    Pg(PgCommand),
    /// Declared protection: the plan file.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Restore tests of the plan: points restored into throwaway targets and checked.
    #[command(subcommand)]
    RestoreTest(RestoreTestCommand),
    /// Evidence kept in the vault: the reports of the restore tests that proved it restores.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Disaster-recovery drills: every resource recovered from the copy vault alone.
    #[command(subcommand)]
    Drill(DrillCommand),
    /// Write the recovery runbook of the plan's resources, with when a drill last proved it.
    Runbook(RunbookArgs),
    /// Run the plan's backup of a resource now, then its copies and retention.
    Run(RunArgs),
    /// The scheduler: run the plan's backups on schedule; serve /metrics and the API.
    Daemon(PlanArgs),
    /// Run one operation for the daemon: a job (JSON) on stdin, JSON-lines events on stdout
    /// (docs/architecture.md, "The worker protocol").
    #[command(hide = true)]
    Worker,
    /// List jobs from the catalog.
    Jobs(JobsArgs),
}

/// Where the plan and the catalog are.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The plan (default: HOLDFAST_PLAN, else ./holdfast.toml).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// The state directory holding the job catalog (default: the plan's [daemon] state_dir,
    /// else /var/lib/holdfast).
    #[arg(long, env = "HOLDFAST_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `restore-test`.
#[derive(Debug, Subcommand)]
pub enum RestoreTestCommand {
    /// Run a restore test now: each resource's point restored into a scratch target that is
    /// removed afterwards, then checked. Exit 0 when every check passed within the RTO, 4
    /// when one failed, 1 when the test could not run.
    Run {
        /// The test (`[restore_tests.NAME]`).
        name: String,
        /// Plan and state directory.
        #[command(flatten)]
        plan: PlanArgs,
    },
}

/// `runbook`.
#[derive(Debug, Args)]
pub struct RunbookArgs {
    /// Only this resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// `md` (default) or `html` (one standalone page).
    #[arg(long, default_value = "md", value_parser = ["md", "html"])]
    pub format: String,
    /// Do not open the drills' vaults for their last reports.
    #[arg(long)]
    pub no_evidence: bool,
    /// Plan and state directory.
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// `drill`.
#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Recover every resource of `[drills.NAME]` from its `from` vault with only that vault
    /// and its key (no catalog, no primary vault), run the checks, and write the drill report
    /// (Markdown, JSON, HTML). Exit 0 when every resource was recovered within the targets,
    /// 4 when not, 1 when the drill could not run.
    Run {
        /// The drill.
        name: String,
        /// Where the report files go (default: the current folder).
        #[arg(long, value_name = "DIR")]
        report_dir: Option<PathBuf>,
        /// Plan and state directory.
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Past drill reports from the vault, with the trend of each resource's recovery time.
    Report {
        /// Only this drill (its `from` vault is read when the plan has it).
        name: Option<String>,
        /// Only the newest N.
        #[arg(long, value_name = "N", default_value_t = 0)]
        last: usize,
        /// Plan and state directory.
        #[command(flatten)]
        plan: PlanArgs,
    },
}

/// `evidence`.
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// List the evidence records of the vault, oldest first: when which point of which
    /// resource was proven to restore, by which test, with what RTO.
    List {
        /// Only this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Only this restore test.
        #[arg(long)]
        name: Option<String>,
        /// Only the newest N.
        #[arg(long, value_name = "N", default_value_t = 0)]
        last: usize,
    },
    /// Show one record with its full report.
    Show {
        /// Its id (a unique prefix of at least 4 hex digits).
        id: String,
    },
}

/// `run`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").args(["resource", "all", "verify"]).required(true).multiple(false)))]
pub struct RunArgs {
    /// The resource (as named in the plan).
    pub resource: Option<String>,
    /// Every resource of the plan, one after the other.
    #[arg(long)]
    pub all: bool,
    /// Verify this vault of the plan now, as its [vaults.NAME.verify] says (default: structure
    /// only).
    #[arg(long, value_name = "VAULT")]
    pub verify: Option<String>,
    /// Plan and state directory.
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// `jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only this resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only this state (created, running, completed, partial, failed, expired, aborted).
    #[arg(long)]
    pub state: Option<String>,
    /// Only this kind (backup, copy, retention, prune, verify, restore, restore_test).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only jobs created since (RFC 3339, or a duration back from now such as 24h).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Plan and state directory.
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// `plan` subcommands.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Validate a plan file: every problem with its line and the fix.
    Check {
        /// The plan (default: HOLDFAST_PLAN, else ./holdfast.toml).
        file: Option<PathBuf>,
        /// Also open every vault with its secret, and compare retention with vault locks.
        #[arg(long)]
        connect: bool,
    },
    /// What will run when: the next runs of every resource.
    Show {
        /// The plan (default: HOLDFAST_PLAN, else ./holdfast.toml).
        file: Option<PathBuf>,
        /// How many next runs per resource.
        #[arg(long, default_value_t = 3)]
        count: usize,
    },
}

/// `pg` subcommands.
#[derive(Debug, Subcommand)]
pub enum PgCommand {
    /// Stream a base backup (pg_basebackup, tar) of a running cluster into the vault.
    Basebackup {
        /// The cluster (postgresql:// URL; the role needs REPLICATION). `env:VAR` or
        /// `file:PATH` read the URL from there (keeps a password out of argv).
        #[arg(long, value_name = "URL")]
        postgres: String,
        /// The cluster's resource name (WAL is archived under RESOURCE:wal).
        #[arg(long, default_value = "pg")]
        resource: String,
    },
    /// archive_command: store one WAL file; exits 0 only once it is durable in the vault.
    WalPush {
        /// The file (%p).
        path: PathBuf,
        /// The cluster's resource name.
        #[arg(long, default_value = "pg")]
        resource: String,
    },
    /// restore_command: write an archived WAL file to a path; exit 1 if it is not there.
    WalFetch {
        /// The file name asked for (%f).
        name: String,
        /// Where to write it (%p).
        dest: PathBuf,
        /// The cluster's resource name.
        #[arg(long, default_value = "pg")]
        resource: String,
    },
    /// Lay out the base backup before a target and configure recovery to it.
    #[command(group(ArgGroup::new("target").args(["target_time", "target_lsn", "target_xid", "target_name", "latest"]).required(true).multiple(false)))]
    Restore {
        /// The data folder to create (must not exist or be empty).
        #[arg(long)]
        data_dir: PathBuf,
        /// Recover to this time (RFC 3339, or YYYY-MM-DD HH:MM:SS in UTC).
        #[arg(long)]
        target_time: Option<String>,
        /// Recover to this LSN (X/Y).
        #[arg(long)]
        target_lsn: Option<String>,
        /// Recover to (and including) this transaction id.
        #[arg(long)]
        target_xid: Option<String>,
        /// Recover to this named restore point (pg_create_restore_point).
        #[arg(long)]
        target_name: Option<String>,
        /// Recover everything archived (end of WAL, following the latest timeline).
        #[arg(long)]
        latest: bool,
        /// Use this base backup (default: the newest that ends before a time or LSN target;
        /// the oldest for xid and name targets).
        #[arg(long, value_name = "POINT")]
        base: Option<String>,
        /// The cluster's resource name.
        #[arg(long, default_value = "pg")]
        resource: String,
    },
}

/// `forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Forget exactly these points (id prefix, `latest`, `latest:RESOURCE`) instead of
    /// applying a policy.
    pub points: Vec<String>,
    /// Keep the N newest points.
    #[arg(long, default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest point of each of the N newest hours that have points.
    #[arg(long, default_value_t = 0)]
    pub keep_hourly: u32,
    /// ... days.
    #[arg(long, default_value_t = 0)]
    pub keep_daily: u32,
    /// ... ISO weeks.
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: u32,
    /// ... months.
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: u32,
    /// ... years.
    #[arg(long, default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every point within this duration of the resource's newest point (30d, 1y6mo).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Lifecycle: also forget points older than this (`7y`), whatever the keep rules say
    /// (locks and holds still protect them).
    #[arg(long, value_name = "DURATION")]
    pub delete_after: Option<String>,
    /// Only points of this resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only points with this tag (repeatable: all must match).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Time zone of the calendar rules: an IANA name, UTC, or local (default).
    #[arg(long, default_value = "local", env = "HOLDFAST_TIMEZONE")]
    pub timezone: String,
    /// Only print what would be kept and forgotten.
    #[arg(long)]
    pub dry_run: bool,
    /// Forget points under a governance lock (full key; recorded in the lock history).
    #[arg(long)]
    pub bypass_governance: bool,
}

/// `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only report what would be freed.
    #[arg(long)]
    pub dry_run: bool,
    /// Repack a pack when at least this percentage of it is unused.
    #[arg(long, default_value_t = 25.0, value_name = "PCT")]
    pub repack_threshold: f64,
    /// How long to wait for running backups before leaving the deletion to a later prune.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub max_wait: String,
    /// Declare a session abandoned after this long without a heartbeat.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub abandon_after: String,
}

/// `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The destination vault (path, file://, s3://). Its secret comes from
    /// HOLDFAST_TO_PASSPHRASE(_FILE|_COMMAND) or HOLDFAST_TO_KEY_FILE.
    #[arg(long)]
    pub to: String,
    /// Points to copy (id prefix, `latest`, `latest:RESOURCE`).
    pub points: Vec<String>,
    /// Copy every point of this resource.
    #[arg(long, conflicts_with = "points")]
    pub resource: Option<String>,
    /// Copy every point.
    #[arg(long, conflicts_with_all = ["points", "resource"])]
    pub all: bool,
    /// S3 endpoint of the destination (default: the source's).
    #[arg(long)]
    pub to_s3_endpoint: Option<String>,
    /// S3 region of the destination.
    #[arg(long)]
    pub to_s3_region: Option<String>,
}

/// `lock` subcommands.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Set or change the vault lock.
    Set {
        /// governance (liftable with --bypass-governance) or compliance (immutable after
        /// the cooling-off period).
        #[arg(long, value_parser = ["governance", "compliance"])]
        mode: String,
        /// Every point is kept at least this long after its time (30d, 7y).
        #[arg(long, value_name = "DURATION")]
        min_retention: String,
        /// Longest retention plans may ask for.
        #[arg(long, value_name = "DURATION")]
        max_retention: Option<String>,
        /// Compliance: how long the lock can still be changed or removed.
        #[arg(long, default_value = "72h", value_name = "DURATION")]
        cooling_off: String,
        /// Allow weakening a governance lock (recorded).
        #[arg(long)]
        bypass_governance: bool,
    },
    /// Show the vault lock, the holds and the history of changes.
    Show,
    /// Make the storage enforce the lock (S3 Object Lock): extend the retention of every
    /// object a point needs (also done by `lock set` and `prune`).
    Apply,
    /// Remove the vault lock (governance: needs --bypass-governance; compliance: only
    /// during the cooling-off period).
    Remove {
        /// Allow lifting a governance lock (recorded).
        #[arg(long)]
        bypass_governance: bool,
    },
}

/// `hold` subcommands.
#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Place a legal hold.
    Add {
        /// The hold's name.
        name: String,
        /// Only points of this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Only points at or after this time.
        #[arg(long)]
        from: Option<String>,
        /// Only points at or before this time.
        #[arg(long)]
        to: Option<String>,
        /// Why (recorded).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List legal holds.
    List,
    /// Release a legal hold.
    Release {
        /// The hold's name.
        name: String,
    },
}

/// `repair` subcommands.
#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the packs themselves: every pack is read, its header and every
    /// blob it lists authenticated; forged or damaged index records and entries are dropped.
    Index {
        /// Trust the packs' headers and skip reading blob contents (two small reads per
        /// pack instead of the whole vault; forged entries in packs a write-only key created
        /// are then kept).
        #[arg(long)]
        headers_only: bool,
    },
}

/// `backup`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").args(["paths", "stdin", "postgres", "mysql", "sqlite", "command", "s3_source"]).multiple(false)))]
pub struct BackupArgs {
    /// Files and folders to back up.
    pub paths: Vec<PathBuf>,
    /// Back up standard input as one file instead of paths.
    #[arg(long)]
    pub stdin: bool,
    /// The file name standard input (or --command's output) is stored as.
    #[arg(long, default_value = "stdin")]
    pub stdin_name: String,
    /// Back up PostgreSQL databases (pg_dump per database + globals) from this URL
    /// (postgresql://user[:pass]@host:port/db; the password goes to the tools by env).
    /// `env:VAR` or `file:PATH` read the URL from there (keeps a password out of argv).
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// With --postgres or --mysql: only this database (repeatable; default: all).
    #[arg(long = "database", value_name = "NAME")]
    pub databases: Vec<String>,
    /// Back up MariaDB/MySQL (mariadb-dump --single-transaction) from this URL
    /// (mysql://user[:pass]@host:port/db or ?socket=PATH).
    #[arg(long, value_name = "URL")]
    pub mysql: Option<String>,
    /// Back up a live SQLite database through its online backup API.
    #[arg(long, value_name = "FILE")]
    pub sqlite: Option<PathBuf>,
    /// Back up a program's standard output as one file (--stdin-name names it), e.g. a
    /// user-directory export; a non-zero exit fails the point.
    #[arg(long, value_name = "COMMAND")]
    pub command: Option<String>,
    /// Back up the objects of an S3 bucket/prefix (with content type and user metadata).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub s3_source: Option<String>,
    /// Endpoint of the --s3-source bucket (default: the vault's S3 settings).
    #[arg(long, value_name = "URL")]
    pub s3_source_endpoint: Option<String>,
    /// The resource this point protects (default: the paths, or stdin:NAME).
    #[arg(long)]
    pub resource: Option<String>,
    /// Tag the point (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Skip paths matching this glob (repeatable); with a `/` it matches the whole path.
    #[arg(long = "exclude")]
    pub excludes: Vec<String>,
    /// Record this time instead of now (RFC 3339, or YYYY-MM-DD[ HH:MM:SS] in UTC).
    #[arg(long)]
    pub time: Option<String>,
    /// Record this host name instead of the machine's.
    #[arg(long)]
    pub host: Option<String>,
    /// Read every file even if the local cache says it is unchanged.
    #[arg(long)]
    pub no_cache: bool,
}

/// `points`.
#[derive(Debug, Args)]
pub struct PointsArgs {
    /// Also show each point's source facts (server and tool versions, what a restore needs).
    #[arg(long, short)]
    pub long: bool,
    /// Only points of this resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only points with this tag (repeatable: all must match).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

/// `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Point: an id prefix, `latest` or `latest:RESOURCE`.
    pub point: String,
    /// Only under this path.
    pub path: Option<String>,
    /// Show mode, owner, size and time.
    #[arg(long, short)]
    pub long: bool,
}

/// `dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Point: an id prefix, `latest` or `latest:RESOURCE`.
    pub point: String,
    /// Path of the file inside the point.
    pub path: String,
}

/// `restore`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("to").args(["target", "to_postgres", "to_mysql", "to_sqlite", "to_command", "to_s3"]).required(true).multiple(false)))]
pub struct RestoreArgs {
    /// Point: an id prefix, `latest` or `latest:RESOURCE`.
    pub point: String,
    /// Folder to restore into (created if missing).
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Restore a PostgreSQL point into this server (new or empty databases; pg_restore).
    /// `env:VAR` or `file:PATH` read the URL from there (keeps a password out of argv).
    #[arg(long, value_name = "URL")]
    pub to_postgres: Option<String>,
    /// Restore a MariaDB/MySQL point into this server (`env:VAR` / `file:PATH` as above).
    #[arg(long, value_name = "URL")]
    pub to_mysql: Option<String>,
    /// Restore a SQLite point to this file (must not exist) and run integrity_check.
    #[arg(long, value_name = "FILE")]
    pub to_sqlite: Option<PathBuf>,
    /// Pipe the point's file into this program's standard input.
    #[arg(long, value_name = "COMMAND")]
    pub to_command: Option<String>,
    /// Restore an S3 point's objects to this bucket/prefix, with their metadata.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub to_s3: Option<String>,
    /// Endpoint of the --to-s3 bucket (default: the vault's S3 settings).
    #[arg(long, value_name = "URL")]
    pub to_s3_endpoint: Option<String>,
    /// With --to-postgres: only this database (repeatable).
    #[arg(long = "database", value_name = "NAME")]
    pub databases: Vec<String>,
    /// With --to-postgres and one database: restore it under this name.
    #[arg(long, value_name = "NAME")]
    pub as_database: Option<String>,
    /// With --to-postgres: parallel pg_restore jobs.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Only restore paths matching this glob (repeatable).
    #[arg(long = "include")]
    pub includes: Vec<String>,
    /// Restore through this plan: the vault and its secret come from the plan, and the
    /// restore is recorded as a job in the catalog (with its duration against the RTO).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// With --plan: the plan's vault to restore from (default: the vault of the resource
    /// named in `latest:RESOURCE`).
    #[arg(long, value_name = "VAULT", requires = "plan")]
    pub from: Option<String>,
    /// With --plan: the state directory holding the job catalog.
    #[arg(long, env = "HOLDFAST_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Read and authenticate every stored pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read and authenticate this percentage of packs (e.g. 10 or 2.5%: always the same
    /// packs), or part K of N of them (e.g. 3/10: parts 1/N..N/N read every pack once).
    #[arg(long, value_name = "PCT|K/N")]
    pub read_data_subset: Option<String>,
}

/// `key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the passphrase keys of the vault.
    List,
    /// Add a passphrase key (new passphrase from HOLDFAST_NEW_PASSPHRASE(_FILE) or a prompt).
    Add {
        /// A label stored with the key.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Remove a passphrase key by id prefix.
    Remove {
        /// Key id prefix.
        id: String,
    },
    /// Change the passphrase of the key in use.
    Passwd,
    /// Write a write-only (backup-only) key file: can add points, cannot read or delete. It
    /// carries a new writer identity: every point it writes is signed and names it.
    CreateBackupOnly {
        /// The key file to create (mode 0600; never overwritten).
        #[arg(long)]
        output: PathBuf,
        /// The writer's name, shown with every point it writes (e.g. the backup host's name;
        /// default `writer-` and the first digits of its id).
        #[arg(long)]
        label: Option<String>,
        /// A resource the writer may write (`*` matches anything; repeat for more). Points it
        /// claims for other resources are not trusted. Default: any resource.
        #[arg(long = "resource", value_name = "PATTERN")]
        resources: Vec<String>,
    },
    /// List the writer identities issued by create-backup-only, and their quarantines.
    Writers,
    /// Quarantine a writer (a compromised backup host): its points stored since --since are
    /// no longer trusted (never `latest`; reported by verify). Cannot be lifted.
    Quarantine {
        /// Writer id prefix or label.
        writer: String,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
        /// Distrust its points stored from this time (RFC 3339; default: all of them).
        #[arg(long)]
        since: Option<String>,
    },
}
