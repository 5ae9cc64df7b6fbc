//! `plan check`: every problem with its line and the fix.

use std::fmt;

use holdfast_retention::{add_span, parse_span, time_zone};
use toml::Spanned;

use crate::model::{Kind, Plan};
use crate::schedule::Schedule;

mod restore_tests;
mod sections;
use sections::{categories, daemon, notifications, resources, vaults};

/// One problem in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} (fix: {})",
            self.line, self.message, self.fix
        )
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

struct Ctx<'a> {
    src: &'a str,
    out: Vec<Problem>,
}

impl Ctx<'_> {
    fn at<T>(&mut self, s: &Spanned<T>, message: String, fix: &str) {
        let line = line_of(self.src, s.span().start);
        self.out.push(Problem {
            line,
            message,
            fix: fix.to_string(),
        });
    }

    fn line_for_table(&self, header: &str) -> usize {
        self.src.find(header).map_or(1, |o| line_of(self.src, o))
    }

    fn span(&mut self, s: &Spanned<String>, what: &str) -> Option<jiff::Span> {
        match parse_span(s.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.at(
                    s,
                    format!("{what}: {e}"),
                    "write a duration such as 30m, 8h, 7d, 1y",
                );
                None
            }
        }
    }

    /// The cron expression `s`, read in UTC (the zone is checked on its own).
    fn cron(&mut self, s: &Spanned<String>, who: &str) -> Option<Schedule> {
        match Schedule::new(s.get_ref(), None) {
            Ok(c) => Some(c),
            Err(e) => {
                self.at(
                    s,
                    format!("{who}: {e}"),
                    "use a cron expression such as \"0 2 * * *\" (minute hour day month weekday)",
                );
                None
            }
        }
    }

    fn zone(&mut self, t: Option<&Spanned<String>>, who: &str) -> Option<jiff::tz::TimeZone> {
        let Some(t) = t else {
            return Some(jiff::tz::TimeZone::UTC);
        };
        match time_zone(t.get_ref()) {
            Ok(z) => Some(z),
            Err(e) => {
                self.at(
                    t,
                    format!("{who}: {e}"),
                    "use an IANA name such as Europe/Berlin",
                );
                None
            }
        }
    }
}

/// `[vaults.NAME.verify]`.
fn check_verify(c: &mut Ctx<'_>, name: &str, v: &crate::model::VerifySchedule) {
    let who = format!("vault {name:?}: verify");
    c.cron(&v.schedule, &who);
    c.zone(v.timezone.as_ref(), &who);
    if let Some(r) = &v.read_data
        && crate::model::ReadData::parse(r.get_ref()).is_none()
    {
        c.at(
            r,
            format!(
                "{who}: read_data {:?} is not none, all or a percentage",
                r.get_ref()
            ),
            "write read_data = \"none\", \"all\" or a share such as \"10%\"",
        );
    }
    for (s, what) in [
        (&v.start_window, "verify start_window"),
        (&v.completion_window, "verify completion_window"),
    ] {
        if let Some(s) = s {
            c.span(s, what);
        }
    }
}

const NS_H: i64 = 3_600_000_000_000;

/// How a connection URL carries a password, if it does: userinfo (`user:pw@host`) or a
/// `password` / `sslpassword` query parameter (which libpq reads too).
fn url_password(url: &str) -> Option<&'static str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split(['/', '#']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return Some("user:password@");
    }
    let query = query.split('#').next().unwrap_or("");
    for part in query.split('&') {
        let key = part.split_once('=').map_or(part, |(k, _)| k);
        match percent_decoded(key).to_ascii_lowercase().as_slice() {
            b"password" => return Some("?password="),
            b"sslpassword" => return Some("?sslpassword="),
            _ => {}
        }
    }
    None
}

/// `%XX` escapes decoded (a key spelled `pass%77ord` is still `password`).
fn percent_decoded(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Parse and validate a plan. Returns the plan, or every problem found.
pub fn check(src: &str) -> Result<Plan, Vec<Problem>> {
    let plan: Plan = match toml::from_str(src) {
        Ok(p) => p,
        Err(e) => {
            let line = e.span().map_or(1, |s| line_of(src, s.start));
            let msg = e.message().trim().to_string();
            let fix = if msg.contains("password")
                || msg.contains("passphrase`")
                || msg.contains("secret")
            {
                "secrets are never written in the plan: use passphrase_env / passphrase_file, url_env / url_file"
            } else if msg.contains("unknown field") {
                "remove the key or correct its spelling (see docs/plan.md for every key)"
            } else if msg.contains("unknown variant") {
                "use one of the listed values"
            } else if msg.contains("missing field") {
                "add the required key"
            } else {
                "fix the TOML syntax"
            };
            return Err(vec![Problem {
                line,
                message: msg,
                fix: fix.into(),
            }]);
        }
    };
    let mut c = Ctx {
        src,
        out: Vec::new(),
    };
    if plan.resources.is_empty() {
        c.out.push(Problem {
            line: 1,
            message: "the plan protects no resource".into(),
            fix: "add a [resources.NAME] table".into(),
        });
    }
    vaults(&mut c, &plan);
    categories(&mut c, &plan);
    resources(&mut c, &plan);
    notifications(&mut c, &plan);
    daemon(&mut c, &plan);
    restore_tests::restore_tests(&mut c, &plan);
    if c.out.is_empty() {
        Ok(plan)
    } else {
        c.out.sort_by_key(|p| p.line);
        Err(c.out)
    }
}

#[cfg(test)]
mod url_tests {
    use super::url_password;

    #[test]
    fn passwords_in_urls_are_found_wherever_libpq_reads_them() {
        for (url, how) in [
            ("postgresql://app:pw@db/shop", "user:password@"),
            ("postgresql://app:pw@/shop?host=/run/pg", "user:password@"),
            ("postgresql://app@db/shop?password=pw", "?password="),
            (
                "postgresql://app@db/shop?sslmode=require&PASSWORD=pw",
                "?password=",
            ),
            ("postgresql://app@db/shop?pass%77ord=pw", "?password="),
            ("postgresql://app@db/shop?sslpassword=pw", "?sslpassword="),
            ("mysql://root:pw@127.0.0.1:3306/app", "user:password@"),
        ] {
            assert_eq!(url_password(url), Some(how), "{url}");
        }
        for url in [
            "postgresql://app@db:5432/shop",
            "postgresql:///shop?host=/run/pg&user=a@b:c",
            "postgresql://db:5432/shop?passwordless=1",
            "s3://bucket/prefix",
        ] {
            assert_eq!(url_password(url), None, "{url}");
        }
    }
}
