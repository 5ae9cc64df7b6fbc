//! Disaster-recovery drills: every listed resource recovered from one vault — normally the
//! isolated copy — with nothing but that vault and its key (no catalog, no primary vault),
//! `parallel` recoveries at once, each a restore test ([`crate::restore_test`]) into a
//! throwaway target with its checks. The drill report names, per resource, the point used,
//! its age (RPO) when the drill started, the recovery time, the checks; the total RTO (start
//! of the drill to the end of its last recovery) against the target; and what could not be
//! recovered and why — a resource without a point in the vault is *not recoverable*, and
//! fails the drill. The report is kept in the vault as evidence (kind `drill`) and rendered
//! as Markdown and standalone HTML for people.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use holdfast_engine::{Error, Result, Vault};
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::restore_test::{self, CheckResult, RestoreTestRequest};

/// A drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillRequest {
    /// Its name in the plan.
    pub name: String,
    /// The plan's name of the vault recovered from (for the report).
    pub vault: String,
    /// One restore test per resource, in plan order.
    pub tests: Vec<RestoreTestRequest>,
    /// Recoveries at once (at least 1).
    pub parallel: usize,
    /// The total RTO target, seconds.
    #[serde(default)]
    pub max_rto_seconds: Option<u64>,
}

/// How one resource's recovery went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Restored and every check passed within its RTO.
    Recovered,
    /// Restored, but a check failed or the RTO was missed; or the recovery broke off.
    Failed,
    /// The vault holds no (trusted) point of the resource.
    NotRecoverable,
}

impl Outcome {
    /// How reports print it: `recovered`, `FAILED`, `NOT RECOVERABLE`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::Failed => "FAILED",
            Outcome::NotRecoverable => "NOT RECOVERABLE",
        }
    }
}

/// One resource of a drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillResource {
    /// The resource.
    pub resource: String,
    /// How it went.
    pub outcome: Outcome,
    /// The point used (64 hex).
    pub point: Option<String>,
    /// Its source kind.
    pub kind: Option<String>,
    /// The point's age when the drill started, seconds: the data this recovery loses.
    pub rpo_seconds: Option<f64>,
    /// The category's RPO.
    pub max_rpo_seconds: Option<u64>,
    /// Wall time of this resource's recovery and checks, seconds.
    pub rto_seconds: Option<f64>,
    /// The resource's own RTO target (its category's).
    pub max_rto_seconds: Option<u64>,
    /// Every check.
    pub checks: Vec<CheckResult>,
    /// Why it could not be recovered or checked.
    pub error: Option<String>,
    /// Its restore-test evidence record.
    pub evidence: Option<String>,
}

/// What a drill found: the `--json` output of `holdfast drill run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillReport {
    /// The drill.
    pub name: String,
    /// The plan's name of the vault recovered from.
    pub vault: String,
    /// When it started (RFC 3339) and as Unix nanoseconds.
    pub started: String,
    /// Unix nanoseconds.
    pub started_ns: i64,
    /// Host that ran it.
    pub host: String,
    /// Every resource, in plan order.
    pub resources: Vec<DrillResource>,
    /// Start of the drill to the end of its last recovery, seconds.
    pub total_rto_seconds: f64,
    /// The target.
    pub max_rto_seconds: Option<u64>,
    /// Whether the total RTO is within the target (true without one).
    pub rto_met: bool,
    /// Every resource recovered and the total RTO met.
    pub passed: bool,
    /// The drill's evidence record in the vault.
    #[serde(default)]
    pub evidence: Option<String>,
}

/// Run a drill against `vault` (a full key; the index loaded).
pub fn run(ctx: &Context<'_>, vault: &Vault, req: &DrillRequest) -> Result<DrillReport> {
    if req.tests.is_empty() {
        return Err(Error::Input(format!(
            "drill {:?} recovers no resource",
            req.name
        )));
    }
    let start = Instant::now();
    let started_ns = crate::time::now_ns();
    let slots: Vec<Mutex<Option<DrillResource>>> =
        req.tests.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = req.parallel.clamp(1, req.tests.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(t) = req.tests.get(i) else { break };
                    let r = recover(ctx, vault, t);
                    *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    let resources: Vec<DrillResource> = slots
        .into_iter()
        .zip(&req.tests)
        .map(|(m, t)| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| broke_off(t, "the recovery did not run".into()))
        })
        .collect();
    let total = start.elapsed().as_secs_f64();
    let rto_met = req.max_rto_seconds.is_none_or(|m| total <= m as f64);
    let passed = rto_met && resources.iter().all(|r| r.outcome == Outcome::Recovered);
    let mut report = DrillReport {
        name: req.name.clone(),
        vault: req.vault.clone(),
        started: crate::time::rfc3339_ns(started_ns),
        started_ns,
        host: holdfast_sources::meta::hostname(),
        resources,
        total_rto_seconds: total,
        max_rto_seconds: req.max_rto_seconds,
        rto_met,
        passed,
        evidence: None,
    };
    match crate::evidence::record_drill(vault, &report) {
        Ok(id) => report.evidence = Some(id.to_hex()),
        Err(e) => ctx
            .sink
            .warning(&format!("the drill's evidence could not be stored: {e}")),
    }
    Ok(report)
}

fn broke_off(t: &RestoreTestRequest, error: String) -> DrillResource {
    DrillResource {
        resource: t.resource.clone(),
        outcome: Outcome::Failed,
        point: None,
        kind: None,
        rpo_seconds: None,
        max_rpo_seconds: t.rpo_seconds,
        rto_seconds: None,
        max_rto_seconds: t.max_rto_seconds,
        checks: vec![],
        error: Some(error),
        evidence: None,
    }
}

fn recover(ctx: &Context<'_>, vault: &Vault, t: &RestoreTestRequest) -> DrillResource {
    match restore_test::run(ctx, vault, t) {
        Ok(r) => DrillResource {
            resource: r.resource.clone(),
            outcome: if r.passed {
                Outcome::Recovered
            } else {
                Outcome::Failed
            },
            point: Some(r.point.clone()),
            kind: Some(r.kind.clone()),
            rpo_seconds: Some(r.rpo_seconds),
            max_rpo_seconds: r.max_rpo_seconds,
            rto_seconds: Some(r.rto_seconds),
            max_rto_seconds: r.max_rto_seconds,
            error: (!r.rto_met).then(|| "the recovery took longer than its RTO".to_string()),
            checks: r.checks,
            evidence: r.evidence,
        },
        Err(e @ Error::NotFound(_)) => DrillResource {
            outcome: Outcome::NotRecoverable,
            ..broke_off(t, e.to_string())
        },
        Err(e) => broke_off(t, e.to_string()),
    }
}

fn dur(s: Option<f64>) -> String {
    s.map_or("-".into(), crate::time::humanize_secs)
}

fn target(s: Option<u64>) -> String {
    s.map_or("-".into(), |s| {
        crate::time::humanize(std::time::Duration::from_secs(s))
    })
}

/// The report for people, in Markdown.
pub fn markdown(r: &DrillReport) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut m = format!(
        "# Drill {}: {}\n\nRecovered from vault `{}` on {}, started {}. Total RTO **{}** (target {}){}.\n\n",
        cell(&r.name),
        if r.passed { "passed" } else { "FAILED" },
        cell(&r.vault),
        cell(&r.host),
        r.started,
        dur(Some(r.total_rto_seconds)),
        target(r.max_rto_seconds),
        if r.rto_met { "" } else { ": **missed**" }
    );
    m.push_str(
        "| resource | outcome | point | kind | RPO (age) | RPO target | RTO | RTO target |\n",
    );
    m.push_str("|---|---|---|---|---:|---:|---:|---:|\n");
    for x in &r.resources {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&x.resource),
            x.outcome.label(),
            x.point.as_deref().map_or("-", |p| &p[..p.len().min(12)]),
            x.kind.as_deref().unwrap_or("-"),
            dur(x.rpo_seconds),
            target(x.max_rpo_seconds),
            dur(x.rto_seconds),
            target(x.max_rto_seconds)
        ));
    }
    for x in &r.resources {
        m.push_str(&format!("\n## {}\n\n", cell(&x.resource)));
        if let Some(e) = &x.error {
            m.push_str(&format!("- **{}**: {}\n", x.outcome.label(), cell(e)));
        }
        for c in &x.checks {
            m.push_str(&format!(
                "- {} `{}`: {}\n",
                if c.passed { "ok" } else { "**FAIL**" },
                c.check.replace('`', "'"),
                cell(&c.detail)
            ));
        }
    }
    m
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report for people, as one standalone HTML page (no scripts, no external files).
pub fn html(r: &DrillReport) -> String {
    let mut h = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Drill {name}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #999;padding:.3em .6em;text-align:left}}.bad{{color:#b00;font-weight:bold}}\
         .ok{{color:#070}}</style></head><body>\n<h1>Drill {name}: <span class=\"{cls}\">{verdict}</span></h1>\n\
         <p>Recovered from vault <code>{vault}</code> on {host}, started {started}. Total RTO <b>{rto}</b> \
         (target {target}){missed}.</p>\n<table><tr><th>resource</th><th>outcome</th><th>point</th>\
         <th>kind</th><th>RPO (age)</th><th>RPO target</th><th>RTO</th><th>RTO target</th></tr>\n",
        name = esc(&r.name),
        cls = if r.passed { "ok" } else { "bad" },
        verdict = if r.passed { "passed" } else { "FAILED" },
        vault = esc(&r.vault),
        host = esc(&r.host),
        started = esc(&r.started),
        rto = dur(Some(r.total_rto_seconds)),
        target = target(r.max_rto_seconds),
        missed = if r.rto_met {
            ""
        } else {
            ": <span class=\"bad\">missed</span>"
        },
    );
    for x in &r.resources {
        h.push_str(&format!(
            "<tr><td>{}</td><td class=\"{}\">{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&x.resource),
            if x.outcome == Outcome::Recovered { "ok" } else { "bad" },
            x.outcome.label(),
            esc(x.point.as_deref().map_or("-", |p| &p[..p.len().min(12)])),
            esc(x.kind.as_deref().unwrap_or("-")),
            dur(x.rpo_seconds),
            target(x.max_rpo_seconds),
            dur(x.rto_seconds),
            target(x.max_rto_seconds)
        ));
    }
    h.push_str("</table>\n");
    for x in &r.resources {
        h.push_str(&format!("<h2>{}</h2>\n<ul>\n", esc(&x.resource)));
        if let Some(e) = &x.error {
            h.push_str(&format!(
                "<li class=\"bad\">{}: {}</li>\n",
                x.outcome.label(),
                esc(e)
            ));
        }
        for c in &x.checks {
            h.push_str(&format!(
                "<li><span class=\"{}\">{}</span> <code>{}</code>: {}</li>\n",
                if c.passed { "ok" } else { "bad" },
                if c.passed { "ok" } else { "FAIL" },
                esc(&c.check),
                esc(&c.detail)
            ));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DrillReport {
        let res = |name: &str, outcome| DrillResource {
            resource: name.into(),
            outcome,
            point: Some("0123456789abcdef".into()),
            kind: Some("files".into()),
            rpo_seconds: Some(3700.0),
            max_rpo_seconds: Some(86_400),
            rto_seconds: Some(2.0),
            max_rto_seconds: Some(900),
            checks: vec![CheckResult {
                check: "files".into(),
                passed: true,
                detail: "a|b <ok>".into(),
                seconds: 0.1,
            }],
            error: None,
            evidence: None,
        };
        DrillReport {
            name: "monthly".into(),
            vault: "dr".into(),
            started: "2026-12-01T05:00:00Z".into(),
            started_ns: 0,
            host: "h".into(),
            resources: vec![
                res("<script>x</script>", Outcome::Recovered),
                res("a|b", Outcome::NotRecoverable),
            ],
            total_rto_seconds: 5.0,
            max_rto_seconds: Some(3600),
            rto_met: true,
            passed: false,
            evidence: None,
        }
    }

    #[test]
    fn reports_escape_what_they_quote() {
        let r = report();
        let h = html(&r);
        assert!(!h.contains("<script>") && h.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(h.contains("a|b &lt;ok&gt;"));
        let m = markdown(&r);
        assert!(m.starts_with("# Drill monthly: FAILED\n"), "{m}");
        assert!(
            m.contains(
                "| a\\|b | NOT RECOVERABLE | 0123456789ab | files | 1h 1m | 1d | 2s | 15m |"
            ),
            "{m}"
        );
        assert!(m.contains("- ok `files`: a\\|b <ok>"), "{m}");
    }
}
