//! Times as reports show them and requests accept them.

/// RFC 3339 UTC rendering of Unix nanoseconds (the form every report uses).
pub fn rfc3339_ns(ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ns.to_string())
}

/// Parse a point time: RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC). Unix
/// nanoseconds.
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

/// Now, Unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Now, Unix seconds.
pub fn now_secs() -> i64 {
    now_ns().div_euclid(1_000_000_000)
}

/// `1h 30m`-style rendering of a duration.
pub fn humanize(d: std::time::Duration) -> String {
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

/// [`humanize`] of a measured number of seconds (negative counts as 0), as reports hold them.
pub fn humanize_secs(secs: f64) -> String {
    humanize(std::time::Duration::from_secs_f64(secs.max(0.0)))
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
        assert_eq!(
            rfc3339_ns(1_709_164_800_000_000_000),
            "2024-02-29T00:00:00Z"
        );
    }
}
