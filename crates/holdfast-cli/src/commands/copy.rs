//! `holdfast copy`.

use holdfast_engine::copy::copy_points;
use holdfast_engine::{Error, Id, Result};
use holdfast_storage::url::Location;

use super::{Ctx, load_index, start_session, unlock_at};
use crate::cli::CopyArgs;
use crate::exit;

pub fn copy(ctx: &Ctx, a: CopyArgs) -> Result<i32> {
    if a.points.is_empty() && a.resource.is_none() && !a.all {
        return Err(Error::Input(
            "say what to copy: point ids, --resource R or --all".into(),
        ));
    }
    let (src, src_session) = ctx.open_with_session("copy", false)?;
    let result = (|| {
        let dst_loc = Location::parse(&a.to).map_err(|e| Error::Input(e.message))?;
        let dst_storage =
            dst_loc.open(&ctx.s3_with(a.to_s3_endpoint.clone(), a.to_s3_region.clone()))?;
        let dst = unlock_at(dst_storage, "HOLDFAST_TO")?;
        if dst.config().id_hex() == src.config().id_hex() {
            return Err(Error::Input("the destination is the source vault".into()));
        }
        let dst_session =
            start_session(&dst, "copy", true)?.ok_or_else(|| Error::Input("no session".into()))?;
        let r = (|| {
            load_index(&dst)?;
            // Only trusted points are copied: the destination signs what it stores, so a copied
            // forgery would become a trusted point there (docs/format.md 13.5).
            let (all, _) = src.list_points()?;
            let (trusted, untrusted) = holdfast_engine::trust::split(&src, all)?;
            let chosen: Vec<(Id, holdfast_engine::point::Manifest)> = if a.all
                || a.resource.is_some()
            {
                for ((id, m), why) in &untrusted {
                    if a.resource.as_ref().is_none_or(|r| m.resource == *r) {
                        eprintln!(
                            "holdfast: warning: not copying untrusted point {} ({}): {why}",
                            id.short(),
                            m.resource
                        );
                    }
                }
                trusted
                    .into_iter()
                    .filter(|(_, m)| a.resource.as_ref().is_none_or(|r| m.resource == *r))
                    .collect()
            } else {
                let mut v = Vec::new();
                for spec in &a.points {
                    let p = src.find_point(spec)?;
                    if let Some((_, why)) = untrusted.iter().find(|(u, _)| u.0 == p.0) {
                        return Err(Error::Input(format!(
                            "recovery point {} is untrusted ({why}); copy copies only trusted points",
                            p.0.short()
                        )));
                    }
                    if !v.iter().any(|(id, _): &(Id, _)| *id == p.0) {
                        v.push(p);
                    }
                }
                v
            };
            if chosen.is_empty() {
                return Err(Error::Input("no recovery point matches".into()));
            }
            let quiet = ctx.quiet || ctx.json;
            let log = |l: &str| {
                if !quiet {
                    eprintln!("holdfast: {l}");
                }
            };
            copy_points(&src, &dst, &dst_session, &chosen, &log)
        })();
        dst_session.end();
        r
    })();
    if let Some(s) = src_session {
        s.end();
    }
    let r = result?;
    if ctx.json {
        ctx.print_json(&serde_json::json!(r));
    } else if !ctx.quiet {
        for (s, d) in &r.copied {
            println!("copied {} -> {}", &s[..12], &d[..12]);
        }
        for s in &r.already_there {
            println!("already there: {}", &s[..12]);
        }
        println!(
            "{} point(s) copied, {} already there; {} blobs sent ({} stored), {} blobs verified in the destination",
            r.copied.len(),
            r.already_there.len(),
            r.blobs_added,
            crate::output::size(r.stored_added),
            r.blobs_verified
        );
    }
    Ok(exit::OK)
}
