//! `plan check`: every problem with its line and the fix.

use std::fmt;

use holdfast_retention::{add_span, parse_span, time_zone};
use toml::Spanned;

use crate::model::{Kind, Plan};
use crate::schedule::Schedule;

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
    for (name, v) in &plan.vaults {
        if let Err(e) = holdfast_location::Location::parse(v.url.get_ref()) {
            c.at(
                &v.url,
                format!("vault {name:?}: {}", e.message),
                "use a path, file://PATH or s3://BUCKET/PREFIX",
            );
        }
        if v.url.get_ref().contains('@') {
            c.at(
                &v.url,
                format!("vault {name:?}: the URL carries credentials"),
                "give S3 credentials by AWS_* environment variables",
            );
        }
        let sources = [&v.passphrase_file, &v.passphrase_env, &v.key_file]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if sources != 1 {
            let line = c.line_for_table(&format!("[vaults.{name}]"));
            c.out.push(Problem {
                line,
                message: format!("vault {name:?} needs exactly one secret source (has {sources})"),
                fix: "set one of passphrase_file, passphrase_env, key_file".into(),
            });
        }
        if let Some(vs) = &v.verify {
            check_verify(&mut c, name, vs);
        }
    }
    for (name, cat) in &plan.categories {
        let who = format!("category {name:?}");
        let parsed = c.cron(&cat.schedule, &who);
        let tz = c.zone(cat.timezone.as_ref(), &who);
        let start = cat
            .start_window
            .as_ref()
            .and_then(|s| c.span(s, "start_window"));
        let complete = cat
            .completion_window
            .as_ref()
            .and_then(|s| c.span(s, "completion_window"));
        let rpo = cat.rpo.as_ref().and_then(|s| c.span(s, "rpo"));
        if let Some(r) = &cat.rto {
            c.span(r, "rto");
        }
        let now: i64 = 1_767_225_600_000_000_000; // 2026-01-01, a fixed reference
        if let (Some(s), Some(w), Some(cw)) = (start, complete, cat.completion_window.as_ref())
            && add_span(now, w) < add_span(now, s)
        {
            c.at(
                cw,
                format!("category {name:?}: completion_window is shorter than start_window"),
                "make the completion window at least as long as the start window",
            );
        }
        if let (Some(cron), Some(rpo), Some(_), Some(r)) = (&parsed, rpo, &tz, &cat.rpo) {
            // The longest gap between the next 64 runs must fit in the RPO (gaps are measured
            // in UTC; the time zone only shifts them).
            {
                let times: Vec<i128> = cron.upcoming(now, 64).into_iter().map(i128::from).collect();
                let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
                let rpo_ns = i128::from(add_span(now, rpo) - now);
                if gap > rpo_ns {
                    c.at(r, format!("category {name:?}: the schedule leaves gaps of {} h, longer than the RPO {}", gap / i128::from(NS_H), r.get_ref()), "schedule backups more often or relax the RPO");
                }
            }
        }
        if !plan.vaults.contains_key(cat.vault.get_ref()) {
            c.at(
                &cat.vault,
                format!(
                    "category {name:?}: no vault named {:?}",
                    cat.vault.get_ref()
                ),
                "define it under [vaults.NAME] or correct the name",
            );
        }
        for d in &cat.copy_to {
            if !plan.vaults.contains_key(d.get_ref()) {
                c.at(
                    d,
                    format!(
                        "category {name:?}: copy_to names no vault {:?}",
                        d.get_ref()
                    ),
                    "define it under [vaults.NAME] or correct the name",
                );
            } else if d.get_ref() == cat.vault.get_ref() {
                c.at(
                    d,
                    format!("category {name:?}: copies to its own vault"),
                    "copy to a second, isolated vault",
                );
            }
        }
        let r = &cat.retention;
        if !r.forgets() && r.min_days.is_none() {
            let line = c.line_for_table(&format!("[categories.{name}"));
            c.out.push(Problem {
                line,
                message: format!("category {name:?} has no retention"),
                fix: "add [categories.NAME.retention] with min_days and keep_* rules".into(),
            });
        }
        // delete_after must parse even without min_days: the retention job reads it.
        let del_span = r
            .delete_after
            .as_ref()
            .and_then(|d| c.span(d, &format!("category {name:?}: delete_after")));
        if let (Some(min), Some(del), Some(d)) = (&r.min_days, &r.delete_after, del_span) {
            let days = (add_span(now, d) - now) / (24 * NS_H);
            if i64::from(*min.get_ref()) > days {
                c.at(
                    del,
                    format!(
                        "category {name:?}: delete_after ({}) is shorter than min_days ({})",
                        del.get_ref(),
                        min.get_ref()
                    ),
                    "delete after at least min_days",
                );
            }
        }
    }
    for (name, r) in &plan.resources {
        if name.contains(':') || name.contains('/') || name.is_empty() {
            c.at(
                &r.category,
                format!("resource name {name:?} contains ':' or '/'"),
                "use letters, digits, '-', '_' and '.'",
            );
        }
        if !plan.categories.contains_key(r.category.get_ref()) {
            c.at(
                &r.category,
                format!(
                    "resource {name:?}: no category named {:?}",
                    r.category.get_ref()
                ),
                "define it under [categories.NAME] or correct the name",
            );
        }
        if let Some(u) = &r.url
            && let Some(how) = url_password(u.get_ref())
        {
            c.at(
                u,
                format!("resource {name:?}: the URL carries a password ({how})"),
                "remove it from the plan: keep the whole URL in an environment variable (url_env = \"VAR\") or a file (url_file = \"/etc/holdfast/NAME.url\")",
            );
        }
        let conn = r.url.is_some() || r.url_env.is_some() || r.url_file.is_some();
        let missing = match *r.kind.get_ref() {
            Kind::Files => (r.paths.is_empty()).then_some("paths = [\"/srv/app\"]"),
            Kind::Postgres | Kind::PostgresBase | Kind::Mysql | Kind::S3 => {
                (!conn).then_some("url_env = \"VAR\" (or url_file, or url without password)")
            }
            Kind::Sqlite => r.path.is_none().then_some("path = \"/srv/app/app.db\""),
            Kind::Command => r
                .command
                .is_none()
                .then_some("command = \"exporter --all\""),
        };
        if let Some(fix) = missing {
            c.at(
                &r.kind,
                format!(
                    "resource {name:?} of kind {} lacks what to back up",
                    r.kind.get_ref().as_str()
                ),
                &format!("add {fix}"),
            );
        }
        for h in [&r.pre_hook, &r.post_hook].into_iter().flatten() {
            if h.get_ref().trim().is_empty() {
                c.at(
                    h,
                    format!("resource {name:?}: empty hook"),
                    "remove the hook or give a command",
                );
            }
        }
    }
    for (name, n) in &plan.notifications {
        match n.kind.get_ref().as_str() {
            "webhook" => {
                if n.url_env.is_none() && n.url_file.is_none() {
                    c.at(
                        &n.kind,
                        format!("notification {name:?}: a webhook needs url_env or url_file"),
                        "set url_env = \"VAR\" (webhook URLs are secrets)",
                    );
                }
            }
            "email" => {
                if n.to.is_empty() || n.smtp.is_none() {
                    c.at(
                        &n.kind,
                        format!("notification {name:?}: email needs `to` and `smtp`"),
                        "set to = [\"ops@example.com\"] and smtp = \"host:587\"",
                    );
                }
            }
            other => c.at(
                &n.kind,
                format!("notification {name:?}: unknown kind {other:?}"),
                "use webhook or email",
            ),
        }
        for e in &n.events {
            if !crate::EVENTS.contains(&e.get_ref().as_str()) {
                c.at(
                    e,
                    format!("notification {name:?}: unknown event {:?}", e.get_ref()),
                    "use failure, expired, rpo or recovery",
                );
            }
        }
        if let Some(sec) = &n.smtp_security
            && !["starttls", "tls", "none"].contains(&sec.get_ref().as_str())
        {
            c.at(
                sec,
                format!(
                    "notification {name:?}: unknown smtp_security {:?}",
                    sec.get_ref()
                ),
                "use starttls, tls or none",
            );
        }
    }
    let d = &plan.daemon;
    if let Some(l) = &d.listen
        && l.get_ref().parse::<std::net::SocketAddr>().is_err()
    {
        c.at(
            l,
            format!(
                "daemon: listen {:?} is not an address and port",
                l.get_ref()
            ),
            "write listen = \"127.0.0.1:9847\"",
        );
    }
    for (v, what) in [
        (&d.max_jobs, "max_jobs"),
        (&d.max_jobs_per_vault, "max_jobs_per_vault"),
    ] {
        if let Some(v) = v
            && *v.get_ref() == 0
        {
            c.at(
                v,
                format!("daemon: {what} is 0, nothing would run"),
                "allow at least 1",
            );
        }
    }
    for (s, what) in [
        (&d.retry_backoff, "retry_backoff"),
        (&d.shutdown_grace, "shutdown_grace"),
    ] {
        if let Some(s) = s {
            c.span(s, what);
        }
    }
    if d.api_token_env.is_some() && d.api_token_file.is_some() {
        let line = c.line_for_table("[daemon]");
        c.out.push(Problem {
            line,
            message: "daemon: both api_token_env and api_token_file are set".into(),
            fix: "keep one source for the API token".into(),
        });
    }
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
