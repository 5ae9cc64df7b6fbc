//! The plan's structure, as read from TOML (unknown keys are errors).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A whole plan.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Vaults by name.
    #[serde(default)]
    pub vaults: BTreeMap<String, Vault>,
    /// Categories by name.
    #[serde(default)]
    pub categories: BTreeMap<String, Category>,
    /// Resources by name.
    #[serde(default)]
    pub resources: BTreeMap<String, Resource>,
    /// Notification channels by name.
    #[serde(default)]
    pub notifications: BTreeMap<String, Notification>,
    /// Restore tests by name.
    #[serde(default)]
    pub restore_tests: BTreeMap<String, RestoreTest>,
    /// Disaster-recovery drills by name (the keys of a restore test, `from` required, plus
    /// `parallel`).
    #[serde(default)]
    pub drills: BTreeMap<String, RestoreTest>,
    /// How the scheduler daemon runs.
    #[serde(default)]
    pub daemon: Daemon,
}

/// The scheduler daemon's settings (`[daemon]`; every key optional).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    /// Where the job catalog lives (default `/var/lib/holdfast`).
    pub state_dir: Option<String>,
    /// HTTP listener for `/metrics` and the REST API (default `127.0.0.1:9847`).
    pub listen: Option<Spanned<String>>,
    /// Bearer token of the REST API from this environment variable.
    pub api_token_env: Option<String>,
    /// Bearer token of the REST API from this file.
    pub api_token_file: Option<String>,
    /// Serve `/metrics` without the token (default false).
    #[serde(default)]
    pub metrics_public: bool,
    /// Jobs running at once, in all (default 2).
    pub max_jobs: Option<Spanned<u32>>,
    /// Jobs running at once per vault (default 1).
    pub max_jobs_per_vault: Option<Spanned<u32>>,
    /// Retries of a failed backup (default 2).
    pub retries: Option<u32>,
    /// Wait before the first retry; doubles each time (default `1m`).
    pub retry_backoff: Option<Spanned<String>>,
    /// On SIGTERM, how long running jobs may finish before they are stopped (default `5m`).
    pub shutdown_grace: Option<Spanned<String>>,
    /// Run prune after retention forgot points (default true).
    pub prune: Option<bool>,
}

/// A vault and where its secret comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vault {
    /// Path, file:// or s3:// URL.
    pub url: Spanned<String>,
    /// File holding the passphrase.
    pub passphrase_file: Option<String>,
    /// Environment variable holding the passphrase.
    pub passphrase_env: Option<String>,
    /// Key file.
    pub key_file: Option<String>,
    /// S3 endpoint URL (S3 vaults; default: AWS_ENDPOINT_URL, else AWS).
    pub endpoint: Option<String>,
    /// S3 region (S3 vaults).
    pub region: Option<String>,
    /// Scheduled verification of the vault (`[vaults.NAME.verify]`).
    pub verify: Option<VerifySchedule>,
}

/// When and how deeply the daemon verifies a vault.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySchedule {
    /// Cron expression (5 or 6 fields).
    pub schedule: Spanned<String>,
    /// IANA time zone of the schedule.
    pub timezone: Option<Spanned<String>>,
    /// How much stored data to read and authenticate: `none` (structure, index and every
    /// point's references; the default), `all`, or a share of the packs such as `10%`.
    pub read_data: Option<Spanned<String>>,
    /// A verify that cannot start within this span of its time is expired (default 1 h).
    pub start_window: Option<Spanned<String>>,
    /// A verify must finish within this span of its start.
    pub completion_window: Option<Spanned<String>>,
}

impl VerifySchedule {
    /// `read_data` as written, `none` when absent.
    pub fn depth(&self) -> &str {
        self.read_data.as_ref().map_or("none", |r| r.get_ref())
    }
}

/// How much stored data a verify reads, as `read_data` says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    /// Structure only.
    None,
    /// Every pack.
    All,
    /// This percentage of the packs (0 < p < 100).
    Subset(f64),
}

impl ReadData {
    /// Parse `none`, `all` or `N%` (`N` alone is a percentage too).
    pub fn parse(s: &str) -> Option<ReadData> {
        match s.trim() {
            "none" => Some(ReadData::None),
            "all" | "100%" | "100" => Some(ReadData::All),
            other => {
                let n: f64 = other
                    .strip_suffix('%')
                    .unwrap_or(other)
                    .trim()
                    .parse()
                    .ok()?;
                (n > 0.0 && n < 100.0).then_some(ReadData::Subset(n))
            }
        }
    }
}

/// Retention of a category.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep every point at least this many days.
    pub min_days: Option<Spanned<u32>>,
    /// GFS rules.
    pub keep_last: Option<u32>,
    /// GFS rules.
    pub keep_daily: Option<u32>,
    /// GFS rules.
    pub keep_weekly: Option<u32>,
    /// GFS rules.
    pub keep_monthly: Option<u32>,
    /// GFS rules.
    pub keep_yearly: Option<u32>,
    /// Lifecycle: delete points after this span (`7y`).
    pub delete_after: Option<Spanned<String>>,
}

impl Retention {
    /// The count rules (`keep_last`, `keep_daily`, … `keep_yearly`), 0 when absent.
    pub(crate) fn counts(&self) -> [u32; 5] {
        [
            self.keep_last,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .map(|n| n.unwrap_or(0))
    }

    /// Whether the retention job forgets anything (a count rule, or a `delete_after`).
    /// [`crate::RetentionRules::forgets`] decides it for a resolved plan, by the same rule.
    pub(crate) fn forgets(&self) -> bool {
        crate::resolved::any_count(self.counts()) || self.delete_after.is_some()
    }
}

/// A category of data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Cron expression (5 or 6 fields).
    pub schedule: Spanned<String>,
    /// IANA time zone of the schedule.
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// A run that cannot start within this span of its time is expired.
    pub start_window: Option<Spanned<String>>,
    /// A run must finish within this span of its start.
    pub completion_window: Option<Spanned<String>>,
    /// Recovery point objective.
    pub rpo: Option<Spanned<String>>,
    /// Recovery time objective.
    pub rto: Option<Spanned<String>>,
    /// The vault backups go to.
    pub vault: Spanned<String>,
    /// Vaults that receive copies.
    #[serde(default)]
    pub copy_to: Vec<Spanned<String>>,
    /// Retention.
    #[serde(default)]
    pub retention: Retention,
}

/// What kind of resource.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Files and folders.
    Files,
    /// PostgreSQL (logical).
    Postgres,
    /// PostgreSQL base backups (physical; with WAL archiving, point-in-time recovery).
    #[serde(rename = "postgres-base")]
    PostgresBase,
    /// MariaDB/MySQL.
    Mysql,
    /// SQLite.
    Sqlite,
    /// A command's output.
    Command,
    /// An S3 bucket/prefix.
    S3,
}

impl Kind {
    /// Whether a restore test's `sql` checks run against its points (their scratch target
    /// is a database holdfast can query).
    pub fn queryable(self) -> bool {
        matches!(
            self,
            Kind::Sqlite | Kind::Postgres | Kind::PostgresBase | Kind::Mysql
        )
    }

    /// Whether its points record row counts a restore test's `row_counts` compares with.
    pub fn counts_rows(self) -> bool {
        matches!(self, Kind::Sqlite | Kind::Postgres)
    }

    /// Its name in the plan.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Files => "files",
            Kind::Postgres => "postgres",
            Kind::PostgresBase => "postgres-base",
            Kind::Mysql => "mysql",
            Kind::Sqlite => "sqlite",
            Kind::Command => "command",
            Kind::S3 => "s3",
        }
    }
}

/// A protected resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Its kind.
    pub kind: Spanned<Kind>,
    /// Its category.
    pub category: Spanned<String>,
    /// Files: paths.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Files: excludes.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Databases: connection URL from this environment variable.
    pub url_env: Option<String>,
    /// Databases: connection URL from this file.
    pub url_file: Option<String>,
    /// A literal URL — only allowed without a password.
    pub url: Option<Spanned<String>>,
    /// SQLite: the database file.
    pub path: Option<String>,
    /// S3 source: endpoint URL (default: AWS_ENDPOINT_URL, else AWS).
    pub endpoint: Option<String>,
    /// Command: the command line.
    pub command: Option<Spanned<String>>,
    /// Command: the stored file's name.
    pub name: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Run before the backup.
    pub pre_hook: Option<Spanned<String>>,
    /// Run after the backup.
    pub post_hook: Option<Spanned<String>>,
}

/// A notification channel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// `webhook` or `email`.
    pub kind: Spanned<String>,
    /// Webhook URL from this environment variable.
    pub url_env: Option<String>,
    /// Webhook URL from this file.
    pub url_file: Option<String>,
    /// Slack-compatible body.
    #[serde(default)]
    pub slack: bool,
    /// Email: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Email: SMTP server `host:port`.
    pub smtp: Option<String>,
    /// Email: SMTP password from this environment variable.
    pub smtp_password_env: Option<String>,
    /// Email: SMTP user name.
    pub smtp_user: Option<String>,
    /// Email: the sender address (default `holdfast@HOSTNAME`).
    pub from: Option<String>,
    /// Email: `starttls` (default), `tls` or `none` (loopback relays only).
    pub smtp_security: Option<Spanned<String>>,
    /// Events sent: `failure`, `expired`, `rpo`, `recovery` (default: all).
    #[serde(default)]
    pub events: Vec<Spanned<String>>,
}

/// A restore test (`[restore_tests.NAME]`): points of resources restored into throwaway
/// targets and checked. A drill (`[drills.NAME]`) has the same keys: its resources are
/// recovered from the `from` vault alone, in parallel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreTest {
    /// The resources tested.
    #[serde(default)]
    pub resources: Vec<Spanned<String>>,
    /// Every resource of these categories is tested too.
    #[serde(default)]
    pub categories: Vec<Spanned<String>>,
    /// Cron expression (5 or 6 fields) of the daemon's runs; none: only run by hand.
    pub schedule: Option<Spanned<String>>,
    /// IANA time zone of the schedule.
    pub timezone: Option<Spanned<String>>,
    /// Which point: `latest` (default) or `oldest`.
    pub select: Option<Spanned<String>>,
    /// Instead of `select`: a random point no older than this span before the newest.
    pub random_within: Option<Spanned<String>>,
    /// The vault to restore from (default: each resource's category vault), e.g. the copy.
    pub from: Option<Spanned<String>>,
    /// Checks beyond the built-in one of each point's kind.
    #[serde(default)]
    pub checks: Vec<Spanned<TestCheck>>,
    /// The recovery time objective (default: each resource's category RTO).
    pub max_rto: Option<Spanned<String>>,
    /// How long after its scheduled time a daemon's run may still start (default 1h).
    pub start_window: Option<Spanned<String>>,
    /// How long one resource's test may run before it is stopped (default: none).
    pub completion_window: Option<Spanned<String>>,
    /// Drills only: how many resources are recovered at once (default 2).
    pub parallel: Option<Spanned<usize>>,
}

/// One check of a restore test: exactly one key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCheck {
    /// A query that must return a true value.
    pub sql: Option<String>,
    /// `"match"`: row counts equal to the ones recorded at backup time.
    pub row_counts: Option<String>,
    /// A command that must exit 0 (it gets the restored target in its environment).
    pub command: Option<String>,
}
