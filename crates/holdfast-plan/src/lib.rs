//! The plan file (`holdfast.toml`): vaults, categories (schedule, windows, retention, copies,
//! RPO/RTO), resources and notification channels — and `plan check`, which validates all of
//! it and names the file, line and fix of every problem. Secrets are referenced (`*_env`,
//! `*_file`), never written in the plan.

mod check;
mod model;
mod resolved;
pub mod schedule;
mod source;

/// The events a notification channel can be sent.
pub const EVENTS: [&str; 4] = ["failure", "expired", "rpo", "recovery"];

pub use check::{Problem, check};
pub use model::*;
pub use resolved::{
    CategoryRules, DEFAULT_DRILL_PARALLEL, DEFAULT_START_WINDOW, DrillRules, PlanSpan,
    ResolveError, ResolvedPlan, RestoreTestRules, RetentionRules, TestCheckRule, TestSelect,
    VaultSecret, VerifyRules,
};
pub use source::{Connection, DEFAULT_COMMAND_NAME, Source};
pub use toml::Spanned;
#[cfg(test)]
mod tests;

/// A plan duration (`30m`, `8h`, `7d`, `1y`) in nanoseconds, measured from now (calendar
/// units: a year from today). `None` when it does not parse (`plan check` reports that).
pub fn duration_ns(s: &str) -> Option<i64> {
    let span = holdfast_retention::parse_span(s).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    Some(holdfast_retention::add_span(now, span) - now)
}
