//! `forget`, `prune` and `repair index`.

use std::time::Duration;

use holdfast_engine::prune::PruneReport;
use holdfast_engine::{Error, Result, repair};
use holdfast_ops::forget::{ForgetRequest, Keep, Selection};
use holdfast_ops::prune::PruneRequest;
use holdfast_retention::parse_span;

use super::{Ctx, by};
use crate::cli::{ForgetArgs, PruneArgs};
use crate::{exit, output};

/// The request `a` describes.
pub fn forget_request(a: &ForgetArgs) -> Result<ForgetRequest> {
    let keep = Keep {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within.clone(),
    };
    let rules = keep != Keep::default() || a.delete_after.is_some();
    if !a.points.is_empty() && rules {
        return Err(Error::Input(
            "give either point ids or --keep-* rules, not both".into(),
        ));
    }
    let req = ForgetRequest {
        select: if a.points.is_empty() {
            Selection::Rules {
                keep,
                delete_after: a.delete_after.clone(),
                timezone: a.timezone.clone(),
                resource: a.resource.clone(),
                tags: a.tags.clone(),
            }
        } else {
            Selection::Ids {
                points: a.points.clone(),
            }
        },
        dry_run: a.dry_run,
        bypass_governance: a.bypass_governance,
    };
    if let Some(d) = &a.delete_after {
        parse_span(d).map_err(|e| Error::Input(format!("--delete-after: {e}")))?;
    }
    req.validate()?;
    Ok(req)
}

pub fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<i32> {
    let req = forget_request(&a)?;
    let r = run_forget(ctx, &req)?;
    if ctx.json {
        ctx.print_report(&r);
    } else if !ctx.quiet {
        for k in &r.keep {
            println!(
                "keep    {}  {}  {}  {}",
                &k.point[..12],
                k.time,
                k.resource,
                k.reasons.join(", ")
            );
        }
        for l in &r.forget {
            println!("forget  {}  {}  {}", &l.point[..12], l.time, l.resource);
        }
        println!(
            "{} {} point(s), kept {}{}",
            if r.dry_run { "would forget" } else { "forgot" },
            r.forget.len(),
            r.keep.len(),
            if r.dry_run || r.forget.is_empty() {
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

/// The request `a` describes.
pub fn prune_request(a: &PruneArgs) -> Result<PruneRequest> {
    if !(0.0..=100.0).contains(&a.repack_threshold) {
        return Err(Error::Input(
            "--repack-threshold must be between 0 and 100".into(),
        ));
    }
    Ok(PruneRequest {
        dry_run: a.dry_run,
        repack_threshold_pct: a.repack_threshold,
        max_wait_secs: duration("--max-wait", &a.max_wait)?.as_secs(),
        abandon_after_secs: duration("--abandon-after", &a.abandon_after)?.as_secs(),
    })
}

/// Open the vault and prune it.
pub fn run_prune(
    ctx: &Ctx,
    sink: &dyn holdfast_ops::Sink,
    req: &PruneRequest,
) -> Result<holdfast_ops::prune::Pruned> {
    let vault = ctx.unlock()?;
    ctx.with_ops(sink, |o| holdfast_ops::prune::prune(o, &vault, req))
}

/// Open the vault and forget what `req` selects.
pub fn run_forget(ctx: &Ctx, req: &ForgetRequest) -> Result<holdfast_ops::forget::ForgetReport> {
    let vault = ctx.unlock()?;
    holdfast_ops::forget::forget(&vault, req, &by())
}

pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<i32> {
    let req = prune_request(&a)?;
    let term = output::Term::plain(ctx.json, ctx.quiet);
    let r = run_prune(ctx, &term, &req)?;
    print_prune(ctx, &r.report);
    if let Some(applied) = &r.retention {
        super::protect::print_applied(ctx, applied);
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
    let locked = holdfast_engine::KeylessVault::open_any(ctx.storage()?)?;
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
