//! `forget`, `prune` and `repair index`.

use std::collections::HashSet;
use std::time::Duration;

use holdfast_engine::point::Manifest;
use holdfast_engine::prune::{PruneOptions, PruneReport};
use holdfast_engine::{Error, Id, Result, protect, prune, repair};
use holdfast_retention::{Candidate, Policy, evaluate, parse_span, time_zone};
use holdfast_sources::pitr;

use super::{Ctx, by, now_ns, origin};
use crate::cli::{ForgetArgs, PruneArgs};
use crate::{exit, output};

fn matches(m: &Manifest, resource: Option<&str>, tags: &[String]) -> bool {
    resource.is_none_or(|r| m.resource == r) && tags.iter().all(|t| m.tags.contains(t))
}

/// One line of the forget report.
#[derive(serde::Serialize)]
struct Line {
    point: String,
    time: String,
    resource: String,
    reasons: Vec<String>,
}

pub fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<i32> {
    let policy = Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a
            .keep_within
            .as_deref()
            .map(parse_span)
            .transpose()
            .map_err(|e| Error::Input(e.to_string()))?,
    };
    let delete_before = a
        .delete_after
        .as_deref()
        .map(parse_span)
        .transpose()
        .map_err(|e| Error::Input(format!("--delete-after: {e}")))?
        .map(|span| {
            let now = now_ns();
            now - (holdfast_retention::add_span(now, span) - now)
        });
    if !a.points.is_empty() && (!policy.is_empty() || delete_before.is_some()) {
        return Err(Error::Input(
            "give either point ids or --keep-* rules, not both".into(),
        ));
    }
    let tz = time_zone(&a.timezone).map_err(|e| Error::Input(e.to_string()))?;
    let vault = ctx.unlock()?;
    vault.require_full("forget")?;
    let state = protect::current(&vault)?;
    let now = now_ns();
    let (points, _) = vault.list_points()?;
    let mut keep: Vec<Line> = Vec::new();
    let mut go: Vec<(Id, Line, bool)> = Vec::new(); // (id, line, needs governance bypass)
    let line = |id: &Id, m: &Manifest, reasons: Vec<String>| Line {
        point: id.to_hex(),
        time: output::time_ns(m.time_ns),
        resource: m.resource.clone(),
        reasons,
    };
    if !a.points.is_empty() {
        let mut chosen: Vec<(Id, Manifest)> = Vec::new();
        let mut ids = HashSet::new();
        for spec in &a.points {
            let (id, m) = vault.find_point(spec)?;
            if ids.insert(id) {
                chosen.push((id, m));
            }
        }
        for (id, m) in &chosen {
            if let Some(why) = protect::protected(&state, m, now, a.bypass_governance) {
                return Err(Error::Locked(format!(
                    "recovery point {} ({}) cannot be forgotten: {why}",
                    id.short(),
                    m.resource
                )));
            }
            let bypass = protect::protected(&state, m, now, false).is_some();
            go.push((*id, line(id, m, vec!["given".into()]), bypass));
        }
    } else {
        // Untrusted points (docs/format.md 13.5) are neither counted by the rules nor deleted
        // by them: otherwise forged points of a resource could push its genuine ones out of
        // --keep-last. They go only when named by id.
        let (points, untrusted) = holdfast_engine::trust::Judge::with(state.clone()).split(points);
        for ((id, m), why) in &untrusted {
            if matches(m, a.resource.as_deref(), &a.tags) {
                keep.push(line(
                    id,
                    m,
                    vec![format!("untrusted, not counted ({why}); forget it by id")],
                ));
            }
        }
        // Archived WAL (kind postgres-wal, resource R:wal) is not counted by the rules: it is
        // kept from the oldest kept base backup of R onward, decided after the bases.
        let selected: Vec<&(Id, Manifest)> = points
            .iter()
            .filter(|(_, m)| m.source.kind != pitr::WAL_KIND)
            .filter(|(_, m)| matches(m, a.resource.as_deref(), &a.tags))
            .collect();
        let candidates: Vec<Candidate<usize>> = selected
            .iter()
            .enumerate()
            .map(|(i, (_, m))| Candidate {
                key: i,
                time_ns: m.time_ns,
                group: m.resource.clone(),
            })
            .collect();
        let decisions = if policy.is_empty() && delete_before.is_some() {
            // Only a lifecycle limit: every point is kept until it is too old.
            candidates
                .iter()
                .map(|c| holdfast_retention::Decision {
                    key: c.key,
                    group: c.group.clone(),
                    time_ns: c.time_ns,
                    reasons: vec!["younger than --delete-after".into()],
                })
                .collect()
        } else {
            evaluate(&policy, &tz, &candidates).map_err(|e| Error::Input(e.to_string()))?
        };
        for d in decisions {
            let (id, m) = selected[d.key];
            let expired = delete_before.is_some_and(|b| m.time_ns < b);
            if d.keep() && !expired {
                keep.push(line(id, m, d.reasons));
            } else if let Some(why) = protect::protected(&state, m, now, a.bypass_governance) {
                keep.push(line(id, m, vec![format!("protected: {why}")]));
            } else {
                let bypass = protect::protected(&state, m, now, false).is_some();
                go.push((*id, line(id, m, vec![]), bypass));
            }
        }
        // WAL of the base-backup resources this run looked at.
        let going: HashSet<String> = go.iter().map(|g| g.0.to_hex()).collect();
        let bases: Vec<&(Id, Manifest)> = selected
            .iter()
            .copied()
            .filter(|(_, m)| m.source.kind == pitr::BASE_KIND)
            .collect();
        let resources: HashSet<&str> = bases.iter().map(|(_, m)| m.resource.as_str()).collect();
        for r in resources {
            let kept: Vec<&Manifest> = bases
                .iter()
                .filter(|(id, m)| m.resource == r && !going.contains(&id.to_hex()))
                .map(|(_, m)| m)
                .collect();
            let seg_size = |m: &Manifest| {
                m.source
                    .facts
                    .get("wal_segment_size")
                    .and_then(|s| pitr::parse_size(s))
                    .unwrap_or(16 << 20)
            };
            let firsts: Vec<(u64, u64)> = kept
                .iter()
                .filter_map(|m| {
                    let size = seg_size(m);
                    pitr::base_first_segment(m.source.facts.get("start_lsn")?, size)
                        .map(|f| (f, size))
                })
                .collect();
            let size = firsts.first().map_or(16 << 20, |f| f.1);
            let first_segs: Vec<u64> = firsts.iter().map(|f| f.0).collect();
            let wal_res = format!("{r}:wal");
            for (id, m) in points
                .iter()
                .filter(|(_, m)| m.source.kind == pitr::WAL_KIND && m.resource == wal_res)
            {
                let name = m.source.facts.get("wal_file").cloned().unwrap_or_default();
                if pitr::wal_needed(&name, size, &first_segs) {
                    let why = if first_segs.is_empty() {
                        "WAL: no base backup of this resource is kept".to_string()
                    } else {
                        "WAL needed by a kept base backup".to_string()
                    };
                    keep.push(line(id, m, vec![why]));
                } else if let Some(why) = protect::protected(&state, m, now, a.bypass_governance) {
                    keep.push(line(id, m, vec![format!("protected: {why}")]));
                } else {
                    let bypass = protect::protected(&state, m, now, false).is_some();
                    go.push((
                        *id,
                        line(id, m, vec!["WAL older than every kept base backup".into()]),
                        bypass,
                    ));
                }
            }
        }
    }
    let bypassed: Vec<String> = go
        .iter()
        .filter(|g| g.2)
        .map(|g| g.0.to_hex()[..12].to_string())
        .collect();
    if !a.dry_run {
        if !bypassed.is_empty() {
            // Record the bypass before acting on it.
            protect::update(&vault, &by(), now, |cur| {
                Ok((
                    cur.clone(),
                    format!(
                        "forget bypassing governance: {} point(s): {}",
                        bypassed.len(),
                        bypassed.join(" ")
                    ),
                ))
            })?;
        }
        for (id, _, _) in &go {
            vault.delete_point(id)?;
        }
    }
    if ctx.json {
        let forget: Vec<&Line> = go.iter().map(|g| &g.1).collect();
        ctx.print_json(&serde_json::json!({
            "dry_run": a.dry_run, "keep": keep, "forget": forget,
        }));
    } else if !ctx.quiet {
        for k in &keep {
            println!(
                "keep    {}  {}  {}  {}",
                &k.point[..12],
                k.time,
                k.resource,
                k.reasons.join(", ")
            );
        }
        for (_, l, _) in &go {
            println!("forget  {}  {}  {}", &l.point[..12], l.time, l.resource);
        }
        println!(
            "{} {} point(s), kept {}{}",
            if a.dry_run { "would forget" } else { "forgot" },
            go.len(),
            keep.len(),
            if a.dry_run || go.is_empty() {
                String::new()
            } else {
                "; run `holdfast prune` to free their space".into()
            }
        );
    }
    Ok(exit::OK)
}

fn duration(flag: &str, s: &str) -> Result<Duration> {
    let span = parse_span(s).map_err(|e| Error::Input(format!("{flag}: {e}")))?;
    let secs = span
        .total(jiff::Unit::Second)
        .map_err(|e| Error::Input(format!("{flag} {s:?}: {e} (use h, m or s)")))?;
    Ok(Duration::from_secs_f64(secs.max(0.0)))
}

pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<i32> {
    if !(0.0..=100.0).contains(&a.repack_threshold) {
        return Err(Error::Input(
            "--repack-threshold must be between 0 and 100".into(),
        ));
    }
    let opts = PruneOptions {
        dry_run: a.dry_run,
        repack_unused_pct: a.repack_threshold,
        max_wait: duration("--max-wait", &a.max_wait)?,
        abandon_after: duration("--abandon-after", &a.abandon_after)?,
    };
    let vault = ctx.unlock()?;
    let info = holdfast_engine::session::SessionInfo {
        purpose: "prune".into(),
        host: holdfast_sources::meta::hostname(),
        pid: std::process::id(),
        started: origin().now,
    };
    let quiet = ctx.quiet || ctx.json;
    let log = |l: &str| {
        if !quiet {
            eprintln!("holdfast: {l}");
        }
    };
    let r = prune::prune(&vault, &opts, &info, &log)?;
    print_prune(ctx, &r);
    if !a.dry_run {
        // Extend storage retention (S3 Object Lock) to the points made since the last run.
        let st = protect::current(&vault)?;
        if st.lock.is_some() {
            super::protect::apply(ctx, &vault, &st, now_ns())?;
        }
    }
    Ok(exit::OK)
}

fn print_prune(ctx: &Ctx, r: &PruneReport) {
    if ctx.json {
        ctx.print_json(&serde_json::json!(r));
        return;
    }
    if ctx.quiet {
        return;
    }
    println!(
        "{} points, {} packs ({}), {} blobs in use",
        r.points,
        r.packs,
        output::size(r.stored_bytes),
        r.used_blobs
    );
    println!(
        "{}: {} unused packs, {} to repack ({} of live data), {} unindexed; {} packs ({})",
        if r.dry_run {
            "would condemn"
        } else {
            "condemned"
        },
        r.unused_packs,
        r.repacked_packs,
        output::size(r.repacked_bytes),
        r.unindexed_packs,
        r.condemned_packs,
        output::size(r.condemned_bytes)
    );
    if !r.dry_run {
        println!(
            "deleted {} packs, freed {}{}",
            r.deleted_packs,
            output::size(r.freed_bytes),
            if r.rescued_packs > 0 {
                format!(
                    "; kept {} condemned packs that points need (no other copy authenticates)",
                    r.rescued_packs
                )
            } else {
                String::new()
            }
        );
    }
    if r.forged_locations > 0 {
        println!(
            "warning: {} index entries claim blobs that do not authenticate (forged or damaged); \
             run `holdfast verify --read-data`, then `holdfast repair index` to drop them",
            r.forged_locations
        );
    }
    for p in &r.pending {
        let who: Vec<String> = p
            .waiting_for
            .iter()
            .map(|w| match &w.info {
                Some(i) => format!("{} on {} (pid {})", i.purpose, i.host, i.pid),
                None => format!("session {}", &w.session[..12]),
            })
            .collect();
        println!(
            "pending: {} packs ({}) wait for {}; run prune again later",
            p.packs,
            output::size(p.bytes),
            who.join(", ")
        );
    }
}

pub fn repair_index(ctx: &Ctx, headers_only: bool) -> Result<i32> {
    let vault = ctx.unlock()?;
    let quiet = ctx.quiet || ctx.json;
    let log = |l: &str| {
        if !quiet {
            eprintln!("holdfast: {l}");
        }
    };
    let r = repair::repair_index(&vault, headers_only, &log)?;
    for d in &r.unreadable {
        eprintln!(
            "holdfast: warning: {} is unreadable ({}); not indexed",
            d.object, d.reason
        );
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!(r));
    } else if !ctx.quiet {
        println!(
            "index rebuilt: {} packs{}, {} added from their headers, {} missing dropped, {} forged or damaged records and {} entries dropped, {} damaged index objects replaced; wrote {} and deleted {} index objects",
            r.packs,
            if r.read_data {
                " read and authenticated"
            } else {
                " (headers only)"
            },
            r.packs_added,
            r.packs_dropped,
            r.records_dropped,
            r.entries_dropped,
            r.damaged_index_objects,
            r.index_written,
            r.index_deleted
        );
    }
    Ok(if r.unreadable.is_empty() {
        exit::OK
    } else {
        exit::DAMAGED
    })
}

/// `migrate`: convert a vault of the previous format version.
pub fn migrate(ctx: &Ctx) -> Result<i32> {
    let locked = holdfast_engine::LockedVault::open_any(ctx.storage()?)?;
    let from = locked.config().version;
    let vault = super::unlock_locked(locked, "HOLDFAST")?;
    let changed = vault.migrate()?;
    let to = holdfast_engine::config::FORMAT_VERSION;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"from": from, "to": to, "changed": changed}));
    } else if changed {
        println!(
            "vault {} converted from format version {from} to {to}",
            vault.config().id_hex()
        );
    } else if !ctx.quiet {
        println!(
            "vault {} is already at format version {to}",
            vault.config().id_hex()
        );
    }
    Ok(exit::OK)
}
