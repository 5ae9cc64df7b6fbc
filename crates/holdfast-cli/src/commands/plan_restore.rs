//! `holdfast restore POINT --plan FILE`: a restore whose vault and secret come from the plan,
//! run as a `restore` job so the catalog records who restored which point, when, how long it
//! took and whether that fits the category's RTO.

use holdfast_daemon::runner::{RestoreRequest, VAULT_WIDE};
use holdfast_daemon::{JobState, LoadedPlan, Runtime};
use holdfast_engine::{Error, Result};

use super::Ctx;
use crate::cli::RestoreArgs;
use crate::exit;

/// Which vault and resource a restore through `plan` is about.
fn resolve(plan: &LoadedPlan, a: &RestoreArgs) -> Result<(String, String)> {
    let resource = a.point.strip_prefix("latest:").map(str::to_string);
    if let Some(r) = &resource
        && !plan.plan.resources.contains_key(r)
    {
        return Err(Error::Input(format!(
            "resource {r:?} is not in the plan {} (restore from a vault with --from VAULT)",
            plan.path.display()
        )));
    }
    let vault = match (&a.from, &resource) {
        (Some(v), _) => v.clone(),
        (None, Some(r)) => holdfast_daemon::commands::resource(&plan.plan, r)
            .map(|(_, c)| c.vault.get_ref().clone())
            .map_err(|e| Error::Input(e.to_string()))?,
        (None, None) => {
            return Err(Error::Input(format!(
                "restore of {:?} through the plan: name the vault with --from VAULT, or give \
                 the point as latest:RESOURCE",
                a.point
            )));
        }
    };
    super::schedule::plan_vault(plan, &vault)?;
    Ok((resource.unwrap_or_else(|| VAULT_WIDE.into()), vault))
}

pub fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<i32> {
    let loaded = super::schedule::load_plan(a.plan.clone(), a.state_dir.as_ref())?;
    let (resource, vault) = resolve(&loaded, &a)?;
    let rto = loaded
        .plan
        .resources
        .get(&resource)
        .map(|r| r.category.get_ref().clone())
        .and_then(|c| loaded.rto(&c));
    let req = RestoreRequest {
        resource,
        vault,
        request: super::read::restore_request(&a)?,
        rto,
    };
    let cat = super::schedule::catalog(&loaded.settings.state_dir)?;
    let rt = Runtime::new(super::schedule::exe()?, cat, loaded);
    if !ctx.quiet && !ctx.json {
        eprintln!("holdfast: restoring {} from vault {}", a.point, req.vault);
    }
    let out = super::schedule::runtime()?
        .block_on(async {
            let o = rt.run_restore(&req).await;
            rt.notifier.flush(std::time::Duration::from_secs(20)).await;
            o
        })
        .map_err(|e| Error::Input(e.to_string()))?;
    let message = out.message.clone().unwrap_or_default();
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "job": out.job, "state": out.state, "message": out.message, "restore": out.report,
        }));
    } else if !ctx.quiet || !out.state.succeeded() {
        println!("job {} restore: {}: {message}", out.job, out.state.as_str());
    }
    Ok(match out.state {
        JobState::Completed => exit::OK,
        JobState::Partial => exit::PARTIAL,
        _ => {
            if !ctx.json {
                eprintln!(
                    "holdfast: error: restore job {} {}: {message} (hint: `holdfast jobs --kind restore` lists restores)",
                    out.job,
                    out.state.as_str()
                );
            }
            exit::ERROR
        }
    })
}
