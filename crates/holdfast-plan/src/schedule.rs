//! When a category's backups run: its cron expression read in its time zone.
//!
//! Cron fields are wall-clock fields, so occurrences are found on the zone's civil time and
//! then placed on the timeline: a wall time skipped by a DST change runs at the first instant
//! after the gap (jiff's "compatible" rule), and a wall time repeated by a DST change runs
//! once (the earlier instant) — the sequence of runs is strictly increasing.

use chrono::{DateTime, NaiveDate, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::civil;
use jiff::tz::TimeZone;

/// A schedule that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("schedule {expr:?}: {reason}")]
    Cron {
        /// The expression.
        expr: String,
        /// Why.
        reason: String,
    },
    /// The time zone is unknown.
    #[error("{0}")]
    Zone(String),
}

/// A category's schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: TimeZone,
    zone_name: String,
    expr: String,
}

fn to_wall(ns: i64, tz: &TimeZone) -> Option<DateTime<Utc>> {
    let z = jiff::Timestamp::from_nanosecond(i128::from(ns))
        .ok()?
        .to_zoned(tz.clone());
    let d = z.datetime();
    let nd = NaiveDate::from_ymd_opt(i32::from(d.year()), d.month() as u32, d.day() as u32)?
        .and_hms_nano_opt(
            d.hour() as u32,
            d.minute() as u32,
            d.second() as u32,
            d.subsec_nanosecond() as u32,
        )?;
    Some(nd.and_utc())
}

fn from_wall(w: &DateTime<Utc>, tz: &TimeZone) -> Option<i64> {
    use chrono::{Datelike, Timelike};
    let d = civil::DateTime::new(
        i16::try_from(w.year()).ok()?,
        i8::try_from(w.month()).ok()?,
        i8::try_from(w.day()).ok()?,
        i8::try_from(w.hour()).ok()?,
        i8::try_from(w.minute()).ok()?,
        i8::try_from(w.second()).ok()?,
        0,
    )
    .ok()?;
    let z = d.to_zoned(tz.clone()).ok()?;
    i64::try_from(z.timestamp().as_nanosecond()).ok()
}

impl Schedule {
    /// Parse `expr` (5 fields, or 6 with seconds first) in the zone `tz` (IANA name, `UTC`
    /// when absent).
    pub fn new(expr: &str, tz: Option<&str>) -> Result<Self, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| ScheduleError::Cron {
                expr: expr.to_string(),
                reason: e.to_string(),
            })?;
        let zone = tz;
        let tz = match tz {
            Some(t) => {
                holdfast_retention::time_zone(t).map_err(|e| ScheduleError::Zone(e.to_string()))?
            }
            None => TimeZone::UTC,
        };
        Ok(Schedule {
            cron,
            tz,
            zone_name: zone.unwrap_or("UTC").to_string(),
            expr: expr.to_string(),
        })
    }

    /// The cron expression.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The time zone the expression is read in.
    pub fn zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The time zone's name as written (`UTC` when none was given).
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// Expression and zone: two schedules with the same key run at the same times.
    pub fn key(&self) -> String {
        format!("{}@{}", self.expr, self.zone_name)
    }

    /// The first run strictly after `after_ns` (Unix nanoseconds).
    pub fn next_after(&self, after_ns: i64) -> Option<i64> {
        let mut wall = to_wall(after_ns, &self.tz)?;
        for _ in 0..16 {
            let next = self.cron.find_next_occurrence(&wall, false).ok()?;
            let at = from_wall(&next, &self.tz)?;
            if at > after_ns {
                return Some(at);
            }
            wall = next;
        }
        None
    }

    /// The latest run at or before `at_ns`.
    pub fn latest_at_or_before(&self, at_ns: i64) -> Option<i64> {
        let mut wall = to_wall(at_ns, &self.tz)?;
        for _ in 0..16 {
            let prev = self.cron.find_previous_occurrence(&wall, true).ok()?;
            let at = from_wall(&prev, &self.tz)?;
            if at <= at_ns {
                return Some(at);
            }
            wall = prev - chrono::Duration::seconds(1);
        }
        None
    }

    /// The next `n` runs after `after_ns`.
    pub fn upcoming(&self, after_ns: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut t = after_ns;
        while out.len() < n {
            match self.next_after(t) {
                Some(x) => {
                    out.push(x);
                    t = x;
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> i64 {
        let t: jiff::Timestamp = s.parse().unwrap();
        t.as_nanosecond() as i64
    }
    fn show(n: i64) -> String {
        jiff::Timestamp::from_nanosecond(n as i128)
            .unwrap()
            .to_string()
    }

    #[test]
    fn daily_in_berlin_across_dst() {
        let s = Schedule::new("0 2 * * *", Some("Europe/Berlin")).unwrap();
        // 2026-03-29: 02:00 does not exist in Berlin (clocks jump 02:00 -> 03:00).
        let runs: Vec<String> = s
            .upcoming(ns("2026-03-27T12:00:00Z"), 3)
            .into_iter()
            .map(show)
            .collect();
        assert_eq!(
            runs,
            [
                "2026-03-28T01:00:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:00:00Z"
            ]
        );
        // 2026-10-25: 02:30 happens twice; a 02:30 job runs once.
        let s = Schedule::new("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let runs: Vec<String> = s
            .upcoming(ns("2026-10-24T12:00:00Z"), 3)
            .into_iter()
            .map(show)
            .collect();
        assert_eq!(
            runs,
            [
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
                "2026-10-27T01:30:00Z"
            ]
        );
    }

    #[test]
    fn seconds_and_latest() {
        let s = Schedule::new("*/5 * * * * *", None).unwrap();
        assert_eq!(
            s.next_after(ns("2026-01-01T00:00:03Z")),
            Some(ns("2026-01-01T00:00:05Z"))
        );
        assert_eq!(
            s.latest_at_or_before(ns("2026-01-01T00:00:09Z")),
            Some(ns("2026-01-01T00:00:05Z"))
        );
        assert_eq!(
            s.latest_at_or_before(ns("2026-01-01T00:00:10Z")),
            Some(ns("2026-01-01T00:00:10Z"))
        );
        let h = Schedule::new("0 */6 * * *", None).unwrap();
        assert_eq!(
            h.latest_at_or_before(ns("2026-01-01T13:59:00Z")),
            Some(ns("2026-01-01T12:00:00Z"))
        );
        assert!(Schedule::new("61 * * * *", None).is_err());
        assert!(Schedule::new("0 2 * * *", Some("Mars/Base")).is_err());
    }
}
