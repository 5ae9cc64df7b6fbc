//! Retention: which recovery points a policy keeps, and why.
//!
//! A policy is a set of grandfather-father-son rules in the style of restic's `forget`:
//! `last N`, `hourly/daily/weekly/monthly/yearly N` and `within DURATION`. Points are grouped
//! (by resource, chosen by the caller) and each group is evaluated on its own, newest first:
//!
//! * `last N` keeps the N newest points.
//! * A calendar rule keeps the newest point of each of the N newest calendar buckets that
//!   hold a point (hour, day, ISO week, month, year — computed in the policy's time zone).
//!   Buckets without points do not count.
//! * `within D` keeps every point whose time is at most D before the group's newest point
//!   (not before "now": a resource whose backups stopped keeps its last points).
//!
//! A point is kept if any rule keeps it; the reasons name every rule that did. Protection
//! that overrides the policy (vault locks, legal holds) is applied by the caller.
//!
//! This crate is pure: no I/O, no clock. "Now" is not needed.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, civil::Date};

/// Why a policy or duration is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetentionError {
    /// A policy without any rule would forget everything.
    #[error(
        "the retention policy has no rule (keep last, hourly, daily, weekly, monthly, yearly or within)"
    )]
    Empty,
    /// A duration could not be parsed.
    #[error("{input:?} is not a duration (examples: 30d, 12h, 1y6mo, 2w): {reason}")]
    Duration {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// An unknown time zone.
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/Berlin, or UTC)")]
    TimeZone(String),
}

/// A retention policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Keep the N newest points.
    pub last: u32,
    /// Keep the newest point of each of the N newest hours.
    pub hourly: u32,
    /// ... days.
    pub daily: u32,
    /// ... ISO weeks (Monday to Sunday; week 53 is a week of its own).
    pub weekly: u32,
    /// ... months.
    pub monthly: u32,
    /// ... years.
    pub yearly: u32,
    /// Keep every point within this span of the group's newest point.
    pub within: Option<Span>,
}

impl Policy {
    /// Whether the policy has no rule at all.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
    }
}

/// A point to decide on.
#[derive(Debug, Clone)]
pub struct Candidate<K> {
    /// The caller's key (a point id).
    pub key: K,
    /// The point's time, Unix nanoseconds.
    pub time_ns: i64,
    /// The group it is evaluated in (the resource).
    pub group: String,
}

/// The decision for one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<K> {
    /// The caller's key.
    pub key: K,
    /// The point's group.
    pub group: String,
    /// The point's time, Unix nanoseconds.
    pub time_ns: i64,
    /// The rules that keep it (`last`, `daily 2026-03-01`, …); empty means "forget".
    pub reasons: Vec<String>,
}

impl<K> Decision<K> {
    /// Whether the policy keeps the point.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

#[derive(Clone, Copy)]
enum Rule {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    /// The bucket of a date-time, as a printable label.
    fn bucket(self, date: Date, hour: i8) -> String {
        match self {
            Rule::Hourly => format!("{date} {hour:02}h"),
            Rule::Daily => date.to_string(),
            Rule::Weekly => {
                let w = date.iso_week_date();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Rule::Monthly => format!("{:04}-{:02}", date.year(), date.month()),
            Rule::Yearly => format!("{:04}", date.year()),
        }
    }
}

/// Evaluate `policy` on `points` in time zone `tz`. Decisions come back newest first within
/// each group, groups in order of first appearance.
pub fn evaluate<K: Clone>(
    policy: &Policy,
    tz: &TimeZone,
    points: &[Candidate<K>],
) -> Result<Vec<Decision<K>>, RetentionError> {
    if policy.is_empty() {
        return Err(RetentionError::Empty);
    }
    let mut order: Vec<&str> = Vec::new();
    let mut groups: HashMap<&str, Vec<&Candidate<K>>> = HashMap::new();
    for p in points {
        groups
            .entry(p.group.as_str())
            .or_insert_with(|| {
                order.push(p.group.as_str());
                Vec::new()
            })
            .push(p);
    }
    let mut out = Vec::with_capacity(points.len());
    for g in order {
        let mut members = groups.remove(g).unwrap_or_default();
        // Newest first; ties broken by input order reversed (stable sort, then reverse).
        members.sort_by_key(|c| c.time_ns);
        members.reverse();
        out.extend(evaluate_group(policy, tz, &members));
    }
    Ok(out)
}

fn evaluate_group<K: Clone>(
    policy: &Policy,
    tz: &TimeZone,
    members: &[&Candidate<K>],
) -> Vec<Decision<K>> {
    let rules = [
        (Rule::Hourly, policy.hourly),
        (Rule::Daily, policy.daily),
        (Rule::Weekly, policy.weekly),
        (Rule::Monthly, policy.monthly),
        (Rule::Yearly, policy.yearly),
    ];
    let mut left: Vec<u32> = rules.iter().map(|r| r.1).collect();
    let mut last_bucket: Vec<Option<String>> = vec![None; rules.len()];
    let newest = members.first().map(|c| c.time_ns);
    let within_from = match (policy.within, newest) {
        (Some(span), Some(n)) => Some(
            Timestamp::from_nanosecond(i128::from(n))
                .ok()
                .map(|t| t.to_zoned(TimeZone::UTC))
                .and_then(|z| z.checked_sub(span).ok())
                .map_or(i64::MIN, |z| {
                    i64::try_from(z.timestamp().as_nanosecond()).unwrap_or(i64::MIN)
                }),
        ),
        _ => None,
    };
    let mut out = Vec::with_capacity(members.len());
    for (i, c) in members.iter().enumerate() {
        let mut reasons = Vec::new();
        if (i as u64) < u64::from(policy.last) {
            reasons.push(format!("last {}", i + 1));
        }
        if let Some(from) = within_from
            && c.time_ns >= from
        {
            reasons.push("within".to_string());
        }
        let local = Timestamp::from_nanosecond(i128::from(c.time_ns))
            .ok()
            .map(|t| t.to_zoned(tz.clone()));
        if let Some(z) = local {
            for (k, (rule, _)) in rules.iter().enumerate() {
                if left[k] == 0 {
                    continue;
                }
                let b = rule.bucket(z.date(), z.hour());
                if last_bucket[k].as_deref() != Some(b.as_str()) {
                    left[k] -= 1;
                    reasons.push(format!("{} {b}", rule.name()));
                    last_bucket[k] = Some(b);
                }
            }
        }
        out.push(Decision {
            key: c.key.clone(),
            group: c.group.clone(),
            time_ns: c.time_ns,
            reasons,
        });
    }
    out
}

/// Parse a duration such as `30d`, `12h`, `2w`, `1y6mo`, `90m` (minutes) or ISO 8601 `P30D`.
/// Calendar units (years, months, weeks, days) are applied on the calendar.
pub fn parse_span(input: &str) -> Result<Span, RetentionError> {
    let err = |reason: String| RetentionError::Duration {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty".into()));
    }
    let span: Span = s.parse().map_err(|e: jiff::Error| err(e.to_string()))?;
    if span.is_negative() {
        return Err(err("negative".into()));
    }
    Ok(span)
}

/// `t + span` in UTC on the calendar, in Unix nanoseconds (saturating at the end of time).
pub fn add_span(time_ns: i64, span: Span) -> i64 {
    Timestamp::from_nanosecond(i128::from(time_ns))
        .ok()
        .and_then(|t| t.to_zoned(TimeZone::UTC).checked_add(span).ok())
        .and_then(|z| i64::try_from(z.timestamp().as_nanosecond()).ok())
        .unwrap_or(i64::MAX)
}

/// A time zone by IANA name, `UTC`, or `local` (the system's).
pub fn time_zone(name: &str) -> Result<TimeZone, RetentionError> {
    match name {
        "local" => Ok(TimeZone::system()),
        "UTC" | "utc" => Ok(TimeZone::UTC),
        n => TimeZone::get(n).map_err(|_| RetentionError::TimeZone(n.to_string())),
    }
}

#[cfg(test)]
mod tests;
