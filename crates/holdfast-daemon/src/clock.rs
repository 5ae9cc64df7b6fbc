//! Wall-clock helpers shared by the runner, the daemon, the API and the CLI: Unix
//! nanoseconds, RFC 3339 rendering, `1h 30m`-style durations, the host name.

use std::time::Duration;

/// Unix nanoseconds now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// RFC 3339 of Unix nanoseconds.
pub fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

/// `1h 30m`-style rendering of a duration.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!(
            "{}m{}",
            s / 60,
            if !s.is_multiple_of(60) {
                format!(" {}s", s % 60)
            } else {
                String::new()
            }
        ),
        3600..86_400 => format!(
            "{}h{}",
            s / 3600,
            if s % 3600 >= 60 {
                format!(" {}m", s % 3600 / 60)
            } else {
                String::new()
            }
        ),
        _ => format!(
            "{}d{}",
            s / 86_400,
            if s % 86_400 >= 3600 {
                format!(" {}h", s % 86_400 / 3600)
            } else {
                String::new()
            }
        ),
    }
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
