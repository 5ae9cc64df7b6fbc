//! Output helpers: progress bars on a TTY, times, sizes, JSON.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr when it is a terminal and output is not JSON/quiet; hidden
/// otherwise.
pub fn progress(json: bool, quiet: bool, what: &str) -> ProgressBar {
    if json || quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}, {elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// RFC 3339 UTC rendering of Unix nanoseconds.
pub fn time_ns(ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ns.to_string())
}

/// `YYYY-MM-DD HH:MM:SS` UTC rendering of Unix seconds.
pub fn time_short(secs: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// Human-readable byte size.
pub fn size(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// Parse `--time`: RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC). Unix nanoseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos()).ok();
    }
    let full = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    if let Ok(t) = time::PrimitiveDateTime::parse(s, &full) {
        return i64::try_from(t.assume_utc().unix_timestamp_nanos()).ok();
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &day) {
        return i64::try_from(d.midnight().assume_utc().unix_timestamp_nanos()).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("2024-02-29"), Some(1_709_164_800_000_000_000));
        assert_eq!(
            parse_time("2024-02-29 01:00:00"),
            Some(1_709_168_400_000_000_000)
        );
        assert_eq!(
            parse_time("2024-02-29T01:00:00+01:00"),
            Some(1_709_164_800_000_000_000)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(time_ns(1_709_164_800_000_000_000), "2024-02-29T00:00:00Z");
        assert_eq!(size(1536), "1.5 KiB");
    }
}
