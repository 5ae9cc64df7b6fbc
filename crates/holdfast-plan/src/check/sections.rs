//! The checks of `plan check`, one function per section of the plan.

use super::*;

/// Vaults: a location, no credentials in it, exactly one secret source, verify schedules.
pub(super) fn vaults(c: &mut Ctx<'_>, plan: &Plan) {
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
            check_verify(c, name, vs);
        }
    }
}

/// Categories: schedules, windows, RPO against the schedule, vaults, retention against locks.
pub(super) fn categories(c: &mut Ctx<'_>, plan: &Plan) {
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
}

/// Resources: names, categories, the keys each kind needs, no password in a URL, hooks.
pub(super) fn resources(c: &mut Ctx<'_>, plan: &Plan) {
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
}

/// Notification channels: kind, where their secrets come from, events.
pub(super) fn notifications(c: &mut Ctx<'_>, plan: &Plan) {
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
}

/// The `[daemon]` settings: listen address, limits, durations, one API token source.
pub(super) fn daemon(c: &mut Ctx<'_>, plan: &Plan) {
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
}
