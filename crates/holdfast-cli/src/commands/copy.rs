//! `holdfast copy`.

use holdfast_engine::copy::CopyReport;
use holdfast_engine::{Error, Result};
use holdfast_ops::copy::{CopyRequest, CopySelection, Destination};
use holdfast_storage::url::{Location, OpenLocation};

use super::{Ctx, start_session, unlock_at};
use crate::cli::CopyArgs;
use crate::{exit, output};

/// What `a` selects.
pub fn selection(a: &CopyArgs) -> Result<CopySelection> {
    if a.all {
        Ok(CopySelection::All)
    } else if let Some(r) = &a.resource {
        Ok(CopySelection::Resource {
            resource: r.clone(),
        })
    } else if !a.points.is_empty() {
        Ok(CopySelection::Ids {
            points: a.points.clone(),
        })
    } else {
        Err(Error::Input(
            "say what to copy: point ids, --resource R or --all".into(),
        ))
    }
}

/// The request `a` describes.
pub fn request(a: &CopyArgs) -> Result<CopyRequest> {
    Ok(CopyRequest {
        select: selection(a)?,
        to: Destination {
            vault: a.to.clone(),
            s3_endpoint: a.to_s3_endpoint.clone(),
            s3_region: a.to_s3_region.clone(),
        },
    })
}

/// Open both vaults (the destination's secret from `HOLDFAST_TO_*`) and copy.
pub fn run(ctx: &Ctx, sink: &dyn holdfast_ops::Sink, req: &CopyRequest) -> Result<CopyReport> {
    let select = &req.select;
    let (src, src_session) = ctx.open_with_session_to(sink, "copy", false)?;
    let result = (|| {
        let dst_loc = Location::parse(&req.to.vault).map_err(|e| Error::Input(e.message))?;
        let dst_storage =
            dst_loc.open(&ctx.s3_with(req.to.s3_endpoint.clone(), req.to.s3_region.clone()))?;
        let dst = unlock_at(dst_storage, "HOLDFAST_TO")?;
        holdfast_ops::copy::distinct(&src, &dst)?;
        let dst_session =
            start_session(&dst, "copy", true)?.ok_or_else(|| Error::Input("no session".into()))?;
        let r = holdfast_ops::session::load_index(&dst, sink).and_then(|()| {
            ctx.with_ops(sink, |o| {
                holdfast_ops::copy::copy(o, &src, &dst, &dst_session, select)
            })
        });
        dst_session.end();
        r
    })();
    if let Some(s) = src_session {
        s.end();
    }
    result
}

pub fn copy(ctx: &Ctx, a: CopyArgs) -> Result<i32> {
    let req = request(&a)?;
    let term = output::Term::plain(ctx.json, ctx.quiet);
    let r = run(ctx, &term, &req)?;
    if ctx.json {
        ctx.print_report(&r);
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
