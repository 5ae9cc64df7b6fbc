//! A checked plan resolved once into typed values: schedules as [`Schedule`]s, windows and
//! objectives as [`Duration`]s, retention as rules with a [`Policy`], each vault's secret
//! source as a [`VaultSecret`] ([`Vault::secret`]). The daemon, `plan check --connect` and the CLI's plan-driven
//! commands read these instead of re-reading the plan's strings, so each key is interpreted in
//! exactly one place.
//!
//! Durations written in calendar units (`1mo`, `1y`) are measured from the moment the plan is
//! resolved (when the daemon loads it), as `plan check` measures them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use holdfast_retention::{Policy, add_span, parse_span};
use jiff::Span;
use toml::Spanned;

use crate::model::{Category, Plan, ReadData, Retention, Vault, VerifySchedule};
use crate::schedule::Schedule;

/// A start window when the plan gives none.
pub const DEFAULT_START_WINDOW: Duration = Duration::from_secs(3600);

/// A plan value that does not resolve. `plan check` refuses every one of these, so it only
/// happens for a plan that was not checked.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A duration does not parse.
    #[error("{owner}: {key} {value:?} is not a duration")]
    Duration {
        /// `category "db"`, `vault "main"`.
        owner: String,
        /// The key.
        key: &'static str,
        /// What is written.
        value: String,
    },
    /// A schedule (cron expression or time zone) does not parse.
    #[error("{owner}: {reason}")]
    Schedule {
        /// `category "db"`, `vault "main"`.
        owner: String,
        /// Why.
        reason: String,
    },
    /// `read_data` is not `none`, `all` or a percentage.
    #[error("vault {vault:?}: read_data {value:?} is not none, all or a percentage")]
    ReadData {
        /// The vault.
        vault: String,
        /// What is written.
        value: String,
    },
}

/// Where a vault's secret comes from, in the plan's order of precedence (`key_file`, then
/// `passphrase_file`, then `passphrase_env`). `plan check` requires one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultSecret {
    /// A key file (`key_file`).
    KeyFile(PathBuf),
    /// The first line of a file (`passphrase_file`).
    PassphraseFile(PathBuf),
    /// An environment variable of the process that reads the plan (`passphrase_env`).
    PassphraseEnv(String),
}

impl Vault {
    /// This vault's secret source; None only in a plan `plan check` refuses.
    pub fn secret(&self) -> Option<VaultSecret> {
        if let Some(k) = &self.key_file {
            Some(VaultSecret::KeyFile(k.into()))
        } else if let Some(f) = &self.passphrase_file {
            Some(VaultSecret::PassphraseFile(f.into()))
        } else {
            self.passphrase_env.clone().map(VaultSecret::PassphraseEnv)
        }
    }
}

/// A span as written and as parsed (a request carries the text; checks compare the span).
#[derive(Debug, Clone)]
pub struct PlanSpan {
    /// As written (`7y`).
    pub text: String,
    /// Parsed.
    pub span: Span,
}

impl PlanSpan {
    /// Whole days this span lasts from `now_ns` (calendar units measured from then).
    pub fn days_from(&self, now_ns: i64) -> i64 {
        (add_span(now_ns, self.span) - now_ns) / DAY_NS
    }
}

/// Whether any count rule is above 0: the one definition of "this retention has a rule".
pub(crate) fn any_count(counts: [u32; 5]) -> bool {
    counts.iter().any(|n| *n > 0)
}

const DAY_NS: i64 = 86_400_000_000_000;

/// A category's retention, resolved.
#[derive(Debug, Clone, Default)]
pub struct RetentionRules {
    /// `keep_last`.
    pub last: u32,
    /// `keep_daily`.
    pub daily: u32,
    /// `keep_weekly`.
    pub weekly: u32,
    /// `keep_monthly`.
    pub monthly: u32,
    /// `keep_yearly`.
    pub yearly: u32,
    /// `min_days`: every point younger than this is kept by the count rules.
    pub min_days: Option<u32>,
    /// `delete_after`: points older than this are forgotten whatever the rules say.
    pub delete_after: Option<PlanSpan>,
}

impl RetentionRules {
    /// Whether any count rule (`keep_*` above 0) is set.
    pub fn has_rule(&self) -> bool {
        any_count([
            self.last,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ])
    }

    /// Whether the retention job forgets anything (a rule, or a `delete_after`); otherwise
    /// the category keeps every point and no retention job runs.
    pub fn forgets(&self) -> bool {
        self.has_rule() || self.delete_after.is_some()
    }

    /// The span `min_days` protects, when the count rules apply (a lifecycle limit alone keeps
    /// everything younger than it anyway), as the rules' `within` text (`14d`).
    pub fn within(&self) -> Option<String> {
        self.min_days
            .filter(|_| self.has_rule())
            .map(|d| format!("{d}d"))
    }

    /// The engine's policy of the count rules (`within` from `min_days`); None when the
    /// category keeps every point.
    pub fn to_policy(&self) -> Option<Policy> {
        self.forgets().then(|| Policy {
            last: self.last,
            hourly: 0,
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            yearly: self.yearly,
            within: self
                .min_days
                .filter(|_| self.has_rule())
                .map(|d| Span::new().days(i64::from(d))),
        })
    }
}

impl Retention {
    /// The rules, resolved.
    fn resolve(&self, owner: &str) -> Result<RetentionRules, ResolveError> {
        let [last, daily, weekly, monthly, yearly] = self.counts();
        Ok(RetentionRules {
            last,
            daily,
            weekly,
            monthly,
            yearly,
            min_days: self.min_days.as_ref().map(|d| *d.get_ref()),
            delete_after: self
                .delete_after
                .as_ref()
                .map(|d| plan_span(owner, "delete_after", d))
                .transpose()?,
        })
    }
}

/// A category, resolved.
#[derive(Debug, Clone)]
pub struct CategoryRules {
    /// When its backups run.
    pub schedule: Schedule,
    /// Its time zone's name (`UTC` when none is given); retention periods are its days.
    pub timezone: String,
    /// A run that cannot start within this span of its time is expired (default 1 h).
    pub start_window: Duration,
    /// A run must finish within this span of its start.
    pub completion_window: Option<Duration>,
    /// Recovery point objective.
    pub rpo: Option<Duration>,
    /// Recovery time objective.
    pub rto: Option<Duration>,
    /// The vault its backups go to.
    pub vault: String,
    /// The vaults that receive copies.
    pub copy_to: Vec<String>,
    /// Its retention.
    pub retention: RetentionRules,
}

/// A vault's scheduled verify, resolved.
#[derive(Debug, Clone)]
pub struct VerifyRules {
    /// When it runs.
    pub schedule: Schedule,
    /// How much stored data it reads.
    pub read_data: ReadData,
    /// A verify that cannot start within this span of its time is expired (default 1 h).
    pub start_window: Duration,
    /// A verify must finish within this span of its start.
    pub completion_window: Option<Duration>,
}

/// The plan, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedPlan {
    /// Categories by name.
    pub categories: BTreeMap<String, CategoryRules>,
    /// Vaults' scheduled verifies by name (only the vaults that have one).
    pub verifies: BTreeMap<String, VerifyRules>,
    /// Restore tests by name.
    pub restore_tests: BTreeMap<String, RestoreTestRules>,
    /// Drills by name.
    pub drills: BTreeMap<String, DrillRules>,
}

/// A drill, resolved: a restore test of every listed resource from one vault, `parallel` at
/// once.
#[derive(Debug, Clone)]
pub struct DrillRules {
    /// What each resource's recovery is: `from` is always set, `select` is latest, `max_rto`
    /// is the drill's total RTO target.
    pub test: RestoreTestRules,
    /// Recoveries at once.
    pub parallel: usize,
}

/// Default of a drill's `parallel`.
pub const DEFAULT_DRILL_PARALLEL: usize = 2;

/// Which point a restore test restores.
#[derive(Debug, Clone)]
pub enum TestSelect {
    /// The newest.
    Latest,
    /// The oldest.
    Oldest,
    /// A random one no older than this before the newest.
    RandomWithin(PlanSpan),
}

/// A check of a restore test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestCheckRule {
    /// A query that must return a true value.
    Sql(String),
    /// Row counts as recorded at backup time.
    RowCounts,
    /// A command that must exit 0.
    Command(String),
}

/// A restore test, resolved.
#[derive(Debug, Clone)]
pub struct RestoreTestRules {
    /// The resources tested: those listed, then those of the listed categories (plan order,
    /// each once).
    pub resources: Vec<String>,
    /// When the daemon runs it (None: by hand only).
    pub schedule: Option<Schedule>,
    /// Which point.
    pub select: TestSelect,
    /// The vault restored from (None: each resource's category vault).
    pub from: Option<String>,
    /// The checks beyond the built-in one.
    pub checks: Vec<TestCheckRule>,
    /// The RTO it is held to (None: each resource's category RTO).
    pub max_rto: Option<Duration>,
    /// How late after its scheduled time a run may start.
    pub start_window: Duration,
    /// How long one resource's test may run before it is stopped.
    pub completion_window: Option<Duration>,
}

impl ResolvedPlan {
    /// Resolve a checked plan, measuring calendar durations from now.
    pub fn of(plan: &Plan) -> Result<ResolvedPlan, ResolveError> {
        let mut categories = BTreeMap::new();
        for (name, c) in &plan.categories {
            categories.insert(name.clone(), category(name, c)?);
        }
        let mut verifies = BTreeMap::new();
        for (name, v) in &plan.vaults {
            if let Some(vs) = &v.verify {
                verifies.insert(name.clone(), verify(name, vs)?);
            }
        }
        let mut restore_tests = BTreeMap::new();
        for (name, t) in &plan.restore_tests {
            restore_tests.insert(name.clone(), restore_test(plan, name, t)?);
        }
        let mut drills = BTreeMap::new();
        for (name, t) in &plan.drills {
            let test = restore_test(plan, name, t)?;
            let parallel = t
                .parallel
                .as_ref()
                .map_or(DEFAULT_DRILL_PARALLEL, |p| *p.get_ref());
            drills.insert(name.clone(), DrillRules { test, parallel });
        }
        Ok(ResolvedPlan {
            categories,
            verifies,
            restore_tests,
            drills,
        })
    }

    /// A category's rules.
    pub fn category(&self, name: &str) -> Option<&CategoryRules> {
        self.categories.get(name)
    }
}

fn plan_span(
    owner: &str,
    key: &'static str,
    s: &Spanned<String>,
) -> Result<PlanSpan, ResolveError> {
    let text = s.get_ref().clone();
    match parse_span(&text) {
        Ok(span) => Ok(PlanSpan { text, span }),
        Err(_) => Err(ResolveError::Duration {
            owner: owner.to_string(),
            key,
            value: text,
        }),
    }
}

fn duration(
    owner: &str,
    key: &'static str,
    s: Option<&Spanned<String>>,
) -> Result<Option<Duration>, ResolveError> {
    let Some(s) = s else { return Ok(None) };
    let d = crate::duration_ns(s.get_ref()).ok_or_else(|| ResolveError::Duration {
        owner: owner.to_string(),
        key,
        value: s.get_ref().clone(),
    })?;
    Ok(Some(Duration::from_nanos(d.max(0) as u64)))
}

fn schedule(
    owner: &str,
    expr: &Spanned<String>,
    tz: Option<&Spanned<String>>,
) -> Result<Schedule, ResolveError> {
    Schedule::new(expr.get_ref(), tz.map(|t| t.get_ref().as_str())).map_err(|e| {
        ResolveError::Schedule {
            owner: owner.to_string(),
            reason: e.to_string(),
        }
    })
}

fn category(name: &str, c: &Category) -> Result<CategoryRules, ResolveError> {
    let owner = format!("category {name:?}");
    Ok(CategoryRules {
        schedule: schedule(&owner, &c.schedule, c.timezone.as_ref())?,
        timezone: c
            .timezone
            .as_ref()
            .map_or_else(|| "UTC".to_string(), |t| t.get_ref().clone()),
        start_window: duration(&owner, "start_window", c.start_window.as_ref())?
            .unwrap_or(DEFAULT_START_WINDOW),
        completion_window: duration(&owner, "completion_window", c.completion_window.as_ref())?,
        rpo: duration(&owner, "rpo", c.rpo.as_ref())?,
        rto: duration(&owner, "rto", c.rto.as_ref())?,
        vault: c.vault.get_ref().clone(),
        copy_to: c.copy_to.iter().map(|d| d.get_ref().clone()).collect(),
        retention: c.retention.resolve(&owner)?,
    })
}

fn verify(name: &str, v: &VerifySchedule) -> Result<VerifyRules, ResolveError> {
    let owner = format!("vault {name:?}: verify");
    Ok(VerifyRules {
        schedule: schedule(&owner, &v.schedule, v.timezone.as_ref())?,
        read_data: ReadData::parse(v.depth()).ok_or_else(|| ResolveError::ReadData {
            vault: name.to_string(),
            value: v.depth().to_string(),
        })?,
        start_window: duration(&owner, "start_window", v.start_window.as_ref())?
            .unwrap_or(DEFAULT_START_WINDOW),
        completion_window: duration(&owner, "completion_window", v.completion_window.as_ref())?,
    })
}

fn restore_test(
    plan: &Plan,
    name: &str,
    t: &crate::model::RestoreTest,
) -> Result<RestoreTestRules, ResolveError> {
    let owner = format!("restore test {name:?}");
    let mut resources: Vec<String> = t.resources.iter().map(|r| r.get_ref().clone()).collect();
    for k in &t.categories {
        for (rname, r) in &plan.resources {
            if r.category.get_ref() == k.get_ref() && !resources.contains(rname) {
                resources.push(rname.clone());
            }
        }
    }
    let select = match (
        &t.random_within,
        t.select.as_ref().map(|s| s.get_ref().as_str()),
    ) {
        (Some(w), _) => TestSelect::RandomWithin(plan_span(&owner, "random_within", w)?),
        (None, Some("oldest")) => TestSelect::Oldest,
        _ => TestSelect::Latest,
    };
    let checks = t
        .checks
        .iter()
        .filter_map(|c| {
            let c = c.get_ref();
            if let Some(q) = &c.sql {
                Some(TestCheckRule::Sql(q.clone()))
            } else if c.row_counts.is_some() {
                Some(TestCheckRule::RowCounts)
            } else {
                c.command.clone().map(TestCheckRule::Command)
            }
        })
        .collect();
    Ok(RestoreTestRules {
        resources,
        schedule: t
            .schedule
            .as_ref()
            .map(|s| schedule(&owner, s, t.timezone.as_ref()))
            .transpose()?,
        select,
        from: t.from.as_ref().map(|f| f.get_ref().clone()),
        checks,
        max_rto: duration(&owner, "max_rto", t.max_rto.as_ref())?,
        start_window: duration(&owner, "start_window", t.start_window.as_ref())?
            .unwrap_or(DEFAULT_START_WINDOW),
        completion_window: duration(&owner, "completion_window", t.completion_window.as_ref())?,
    })
}
