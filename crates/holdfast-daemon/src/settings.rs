//! A checked plan with its schedules, and the daemon settings with their defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use holdfast_plan::schedule::Schedule;
use holdfast_plan::{
    CategoryRules, DEFAULT_START_WINDOW, Plan, Problem, ReadData, ResolveError, ResolvedPlan,
    VerifyRules,
};

/// A plan that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `plan check` finds problems.
    #[error("{path}:{}: {} (fix: {}){}", .problems[0].line, .problems[0].message, .problems[0].fix,
        if .problems.len() > 1 { format!(" — and {} more; run `holdfast plan check`", .problems.len() - 1) } else { String::new() })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem (at least one).
        problems: Vec<Problem>,
    },
    /// A value `plan check` accepted does not resolve (a bug: please report it).
    #[error("{path}: {source}")]
    Resolve {
        /// The file.
        path: PathBuf,
        /// What does not resolve.
        source: ResolveError,
    },
}

/// A plan that passed `plan check`, resolved once ([`ResolvedPlan`]): the daemon reads its
/// schedules, windows, objectives, retention and secret sources from `resolved`.
pub struct LoadedPlan {
    /// The plan.
    pub plan: Plan,
    /// Where it was read from.
    pub path: PathBuf,
    /// The plan's values, resolved.
    pub resolved: ResolvedPlan,
    /// Settings with defaults applied.
    pub settings: Settings,
}

impl LoadedPlan {
    /// Read, check and resolve `path`.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let src = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let plan = holdfast_plan::check(&src).map_err(|problems| LoadError::Invalid {
            path: path.to_path_buf(),
            problems,
        })?;
        let resolved = ResolvedPlan::of(&plan).map_err(|source| LoadError::Resolve {
            path: path.to_path_buf(),
            source,
        })?;
        let settings = Settings::of(&plan);
        Ok(LoadedPlan {
            plan,
            path: path.to_path_buf(),
            resolved,
            settings,
        })
    }

    /// The rules of a resource's category.
    pub fn rules_of(&self, resource: &str) -> Option<&CategoryRules> {
        let r = self.plan.resources.get(resource)?;
        self.resolved.category(r.category.get_ref())
    }

    /// The schedule of a resource's category.
    pub fn schedule_of(&self, resource: &str) -> Option<&Schedule> {
        self.rules_of(resource).map(|c| &c.schedule)
    }

    /// A category's start window (default 1 h).
    pub fn start_window(&self, category: &str) -> Duration {
        self.resolved
            .category(category)
            .map_or(DEFAULT_START_WINDOW, |c| c.start_window)
    }

    /// A category's completion window (default: none).
    pub fn completion_window(&self, category: &str) -> Option<Duration> {
        self.resolved.category(category)?.completion_window
    }

    /// A category's RTO.
    pub fn rto(&self, category: &str) -> Option<Duration> {
        self.resolved.category(category)?.rto
    }

    /// A category's RPO.
    pub fn rpo(&self, category: &str) -> Option<Duration> {
        self.resolved.category(category)?.rpo
    }

    /// A vault's scheduled verify.
    pub fn verify_of(&self, vault: &str) -> Option<&VerifyRules> {
        self.resolved.verifies.get(vault)
    }

    /// How much a vault's verify reads (default: structure only).
    pub fn read_data(&self, vault: &str) -> ReadData {
        self.verify_of(vault)
            .map_or(ReadData::None, |v| v.read_data)
    }

    /// A vault verify's start window (default 1 h).
    pub fn verify_start_window(&self, vault: &str) -> Duration {
        self.verify_of(vault)
            .map_or(DEFAULT_START_WINDOW, |v| v.start_window)
    }

    /// A vault verify's completion window (default: none).
    pub fn verify_completion_window(&self, vault: &str) -> Option<Duration> {
        self.verify_of(vault)?.completion_window
    }
}

/// A `[daemon]` duration as a `Duration` (plan check has parsed it).
fn dur(s: &str) -> Option<Duration> {
    holdfast_plan::duration_ns(s).map(|n| Duration::from_nanos(n.max(0) as u64))
}

/// The `[daemon]` table with defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// State directory (catalog).
    pub state_dir: PathBuf,
    /// HTTP listener.
    pub listen: SocketAddr,
    /// Jobs at once.
    pub max_jobs: usize,
    /// Jobs at once per vault.
    pub max_jobs_per_vault: usize,
    /// Retries of a failed job.
    pub retries: u32,
    /// First retry delay (doubles).
    pub retry_backoff: Duration,
    /// Grace on SIGTERM.
    pub shutdown_grace: Duration,
    /// Prune after retention.
    pub prune: bool,
    /// `/metrics` without token.
    pub metrics_public: bool,
}

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/holdfast";
/// The default listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9847";

impl Settings {
    /// The settings of `plan`.
    pub fn of(plan: &Plan) -> Settings {
        let d = &plan.daemon;
        Settings {
            state_dir: d
                .state_dir
                .clone()
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into())
                .into(),
            listen: d
                .listen
                .as_ref()
                .and_then(|l| l.get_ref().parse().ok())
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("constant address")),
            max_jobs: d.max_jobs.as_ref().map_or(2, |v| *v.get_ref() as usize),
            max_jobs_per_vault: d
                .max_jobs_per_vault
                .as_ref()
                .map_or(1, |v| *v.get_ref() as usize),
            retries: d.retries.unwrap_or(2),
            retry_backoff: d
                .retry_backoff
                .as_ref()
                .and_then(|s| dur(s.get_ref()))
                .unwrap_or(Duration::from_secs(60)),
            shutdown_grace: d
                .shutdown_grace
                .as_ref()
                .and_then(|s| dur(s.get_ref()))
                .unwrap_or(Duration::from_secs(300)),
            prune: d.prune.unwrap_or(true),
            metrics_public: d.metrics_public,
        }
    }
}
