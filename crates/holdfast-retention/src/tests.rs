//! Table-driven retention tests with hand-checked expectations, including calendar edges:
//! ISO week 53, month ends, leap days, time zones and DST.

use super::*;

fn ns(s: &str) -> i64 {
    let t: Timestamp = s.parse().expect("test timestamp");
    i64::try_from(t.as_nanosecond()).expect("in range")
}

struct Case {
    name: &'static str,
    tz: &'static str,
    policy: Policy,
    /// (timestamp, group)
    points: &'static [(&'static str, &'static str)],
    /// timestamps expected to be kept
    keep: &'static [&'static str],
}

fn p() -> Policy {
    Policy::default()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "daily across a leap day and a month end",
            tz: "UTC",
            policy: Policy { daily: 3, ..p() },
            points: &[
                ("2024-02-28T10:00:00Z", "a"),
                ("2024-02-28T22:00:00Z", "a"),
                ("2024-02-29T09:00:00Z", "a"),
                ("2024-03-01T01:00:00Z", "a"),
            ],
            keep: &[
                "2024-03-01T01:00:00Z",
                "2024-02-29T09:00:00Z",
                "2024-02-28T22:00:00Z",
            ],
        },
        Case {
            name: "ISO week 53 of 2020 is a bucket of its own",
            tz: "UTC",
            policy: Policy { weekly: 3, ..p() },
            points: &[
                ("2020-12-27T12:00:00Z", "a"), // Sunday, 2020-W52
                ("2020-12-31T12:00:00Z", "a"), // Thursday, 2020-W53
                ("2021-01-03T12:00:00Z", "a"), // Sunday, 2020-W53
                ("2021-01-04T12:00:00Z", "a"), // Monday, 2021-W01
            ],
            keep: &[
                "2021-01-04T12:00:00Z",
                "2021-01-03T12:00:00Z",
                "2020-12-27T12:00:00Z",
            ],
        },
        Case {
            name: "weeks across a year end without week 53 (2025-12-29 is 2026-W01)",
            tz: "UTC",
            policy: Policy { weekly: 2, ..p() },
            points: &[
                ("2025-12-28T08:00:00Z", "a"), // Sunday, 2025-W52
                ("2025-12-29T08:00:00Z", "a"), // Monday, 2026-W01
                ("2026-01-02T08:00:00Z", "a"), // Friday, 2026-W01
            ],
            keep: &["2026-01-02T08:00:00Z", "2025-12-28T08:00:00Z"],
        },
        Case {
            name: "monthly keeps the last point of each month, months without points skipped",
            tz: "UTC",
            policy: Policy { monthly: 3, ..p() },
            points: &[
                ("2025-11-30T23:59:59Z", "a"),
                ("2026-01-01T00:00:00Z", "a"),
                ("2026-01-31T23:59:59Z", "a"),
                ("2026-02-28T12:00:00Z", "a"),
                ("2026-03-01T00:00:00Z", "a"),
            ],
            keep: &[
                "2026-03-01T00:00:00Z",
                "2026-02-28T12:00:00Z",
                "2026-01-31T23:59:59Z",
            ],
        },
        Case {
            name: "the same instants split into other days in Europe/Berlin",
            tz: "Europe/Berlin",
            policy: Policy { daily: 2, ..p() },
            points: &[
                ("2026-03-01T22:30:00Z", "a"), // 23:30 on 1 March in Berlin
                ("2026-03-01T23:30:00Z", "a"), // 00:30 on 2 March in Berlin
            ],
            keep: &["2026-03-01T23:30:00Z", "2026-03-01T22:30:00Z"],
        },
        Case {
            name: "... and fall into one day in UTC",
            tz: "UTC",
            policy: Policy { daily: 2, ..p() },
            points: &[("2026-03-01T22:30:00Z", "a"), ("2026-03-01T23:30:00Z", "a")],
            keep: &["2026-03-01T23:30:00Z"],
        },
        Case {
            name: "a month end in America/New_York is already the next month in UTC",
            tz: "America/New_York",
            policy: Policy { monthly: 2, ..p() },
            points: &[
                ("2026-01-31T20:00:00Z", "a"), // 15:00 31 Jan in New York
                ("2026-02-01T03:00:00Z", "a"), // 22:00 31 Jan in New York
                ("2026-02-01T06:00:00Z", "a"), // 01:00 1 Feb in New York
            ],
            keep: &["2026-02-01T06:00:00Z", "2026-02-01T03:00:00Z"],
        },
        Case {
            name: "the repeated hour of a DST fall-back is one local hour",
            tz: "Europe/Berlin",
            policy: Policy { hourly: 5, ..p() },
            points: &[
                ("2026-10-25T00:30:00Z", "a"), // 02:30 CEST
                ("2026-10-25T01:30:00Z", "a"), // 02:30 CET, the same wall hour
                ("2026-10-25T02:30:00Z", "a"), // 03:30 CET
            ],
            keep: &["2026-10-25T02:30:00Z", "2026-10-25T01:30:00Z"],
        },
        Case {
            name: "yearly over leap years",
            tz: "UTC",
            policy: Policy { yearly: 2, ..p() },
            points: &[
                ("2023-12-31T23:00:00Z", "a"),
                ("2024-02-29T12:00:00Z", "a"),
                ("2024-12-31T23:59:59Z", "a"),
                ("2025-06-01T00:00:00Z", "a"),
            ],
            keep: &["2025-06-01T00:00:00Z", "2024-12-31T23:59:59Z"],
        },
        Case {
            name: "last N counts points, not buckets",
            tz: "UTC",
            policy: Policy { last: 2, ..p() },
            points: &[
                ("2026-05-01T01:00:00Z", "a"),
                ("2026-05-01T02:00:00Z", "a"),
                ("2026-05-01T03:00:00Z", "a"),
            ],
            keep: &["2026-05-01T03:00:00Z", "2026-05-01T02:00:00Z"],
        },
        Case {
            name: "within is measured from the newest point, not from now",
            tz: "UTC",
            policy: Policy {
                within: Some(Span::new().days(2)),
                ..p()
            },
            points: &[
                ("2020-01-01T00:00:00Z", "a"),
                ("2020-01-03T00:00:00Z", "a"), // exactly 2 days before the newest: kept
                ("2020-01-04T12:00:00Z", "a"),
                ("2020-01-05T00:00:00Z", "a"),
            ],
            keep: &[
                "2020-01-05T00:00:00Z",
                "2020-01-04T12:00:00Z",
                "2020-01-03T00:00:00Z",
            ],
        },
        Case {
            name: "within a calendar month from 31 March reaches back to 29 February",
            tz: "UTC",
            policy: Policy {
                within: Some(Span::new().months(1)),
                ..p()
            },
            points: &[
                ("2024-02-28T12:00:00Z", "a"),
                ("2024-02-29T12:00:00Z", "a"),
                ("2024-03-31T12:00:00Z", "a"),
            ],
            keep: &["2024-03-31T12:00:00Z", "2024-02-29T12:00:00Z"],
        },
        Case {
            name: "groups are evaluated separately",
            tz: "UTC",
            policy: Policy { last: 1, ..p() },
            points: &[
                ("2026-01-01T00:00:00Z", "db"),
                ("2026-01-02T00:00:00Z", "files"),
                ("2026-01-03T00:00:00Z", "db"),
                ("2026-01-01T00:00:00Z", "files"),
            ],
            keep: &["2026-01-03T00:00:00Z", "2026-01-02T00:00:00Z"],
        },
        Case {
            name: "rules combine: a point kept by any rule stays",
            tz: "UTC",
            policy: Policy {
                last: 1,
                daily: 2,
                weekly: 2,
                ..p()
            },
            points: &[
                ("2026-06-01T09:00:00Z", "a"), // Monday W23
                ("2026-06-07T09:00:00Z", "a"), // Sunday W23
                ("2026-06-08T09:00:00Z", "a"), // Monday W24
                ("2026-06-08T18:00:00Z", "a"), // Monday W24
            ],
            keep: &["2026-06-08T18:00:00Z", "2026-06-07T09:00:00Z"],
        },
    ]
}

#[test]
fn retention_table() {
    for case in cases() {
        let tz = time_zone(case.tz).expect("tz");
        let candidates: Vec<Candidate<usize>> = case
            .points
            .iter()
            .enumerate()
            .map(|(i, (t, g))| Candidate {
                key: i,
                time_ns: ns(t),
                group: g.to_string(),
            })
            .collect();
        let decisions = evaluate(&case.policy, &tz, &candidates).expect("evaluate");
        assert_eq!(decisions.len(), case.points.len(), "{}", case.name);
        let mut kept: Vec<i64> = decisions
            .iter()
            .filter(|d| d.keep())
            .map(|d| d.time_ns)
            .collect();
        let mut want: Vec<i64> = case.keep.iter().map(|t| ns(t)).collect();
        kept.sort_unstable();
        want.sort_unstable();
        assert_eq!(kept, want, "case: {}", case.name);
    }
}

#[test]
fn reasons_name_the_rule_and_bucket() {
    let pts = [
        ("2020-12-31T12:00:00Z", "a"),
        ("2021-01-03T12:00:00Z", "a"),
        ("2021-01-04T12:00:00Z", "a"),
    ];
    let candidates: Vec<Candidate<usize>> = pts
        .iter()
        .enumerate()
        .map(|(i, (t, g))| Candidate {
            key: i,
            time_ns: ns(t),
            group: g.to_string(),
        })
        .collect();
    let policy = Policy {
        last: 1,
        weekly: 2,
        monthly: 1,
        ..p()
    };
    let d = evaluate(&policy, &TimeZone::UTC, &candidates).expect("evaluate");
    let lines: Vec<String> = d
        .iter()
        .map(|d| format!("{} {:?}", d.key, d.reasons))
        .collect();
    insta::assert_snapshot!(lines.join("\n"), @r#"
    2 ["last 1", "weekly 2021-W01", "monthly 2021-01"]
    1 ["weekly 2020-W53"]
    0 []
    "#);
}

#[test]
fn empty_policy_is_refused() {
    let c = [Candidate {
        key: 0,
        time_ns: 0,
        group: "a".into(),
    }];
    assert_eq!(
        evaluate(&Policy::default(), &TimeZone::UTC, &c).unwrap_err(),
        RetentionError::Empty
    );
}

#[test]
fn spans_parse_and_apply_on_the_calendar() {
    let s = parse_span("1y").expect("1y");
    assert_eq!(
        add_span(ns("2024-02-29T00:00:00Z"), s),
        ns("2025-02-28T00:00:00Z")
    );
    assert_eq!(
        add_span(ns("2026-01-31T00:00:00Z"), parse_span("1mo").expect("1mo")),
        ns("2026-02-28T00:00:00Z")
    );
    assert_eq!(
        add_span(ns("2026-01-01T00:00:00Z"), parse_span("72h").expect("72h")),
        ns("2026-01-04T00:00:00Z")
    );
    assert!(parse_span("P30D").is_ok());
    assert!(parse_span("30d").is_ok());
    assert!(parse_span("").is_err());
    assert!(parse_span("soon").is_err());
    assert!(parse_span("-3d").is_err());
    assert!(time_zone("Mars/Olympus").is_err());
}

proptest::proptest! {
    /// Every rule keeps at most its count; `last N` keeps exactly min(N, len); the newest
    /// point is always kept by any non-empty calendar rule.
    #[test]
    fn counts_are_bounded(times in proptest::collection::vec(0i64..4_000_000_000, 1..60),
                          daily in 0u32..10, last in 0u32..5) {
        let policy = Policy { daily: daily.max(1), last, ..p() };
        let c: Vec<Candidate<usize>> = times.iter().enumerate()
            .map(|(i, t)| Candidate { key: i, time_ns: t * 1_000_000_000, group: "g".into() })
            .collect();
        let d = evaluate(&policy, &TimeZone::UTC, &c).expect("evaluate");
        let daily_kept = d.iter().filter(|d| d.reasons.iter().any(|r| r.starts_with("daily"))).count();
        proptest::prop_assert!(daily_kept <= policy.daily as usize);
        let last_kept = d.iter().filter(|d| d.reasons.iter().any(|r| r.starts_with("last"))).count();
        proptest::prop_assert_eq!(last_kept, (last as usize).min(times.len()));
        proptest::prop_assert!(d[0].keep());
    }
}
