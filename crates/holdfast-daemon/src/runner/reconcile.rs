//! After a crash: what the vaults say about jobs a stopped process left unfinished.

use std::time::Duration;

use super::{Runtime, ts_ns};
use crate::job::JobKind;

impl Runtime {
    /// After a crash: for each aborted backup job, look for a point the child saved after
    /// all, and record the job completed with it. Also note each resource's newest point.
    pub async fn reconcile(&self, aborted: &[crate::catalog::JobRecord]) {
        let loaded = self.plan();
        let plan = &loaded.plan;
        for vname in plan.vaults.keys() {
            let resources: Vec<&String> = plan
                .resources
                .iter()
                .filter(|(_, r)| {
                    plan.categories
                        .get(r.category.get_ref())
                        .is_some_and(|c| c.vault.get_ref() == vname)
                })
                .map(|(n, _)| n)
                .collect();
            if resources.is_empty() {
                continue;
            }
            let points: Vec<(String, String, i64)> =
                match crate::points::list(self, vname, Duration::from_secs(300)).await {
                    Ok(rows) => rows
                        .into_iter()
                        .filter_map(|p| Some((p.id, p.resource, ts_ns(&p.time)?)))
                        .collect(),
                    Err(e) => {
                        tracing::warn!("vault {vname:?}: cannot list points: {e}");
                        continue;
                    }
                };
            for r in resources {
                let _ = self.catalog.see_resource(r, self.now_ns());
                if let Some(newest) = points.iter().filter(|p| &p.1 == r).map(|p| p.2).max() {
                    let _ = self.catalog.set_last_point(r, newest);
                }
            }
            for j in aborted
                .iter()
                .filter(|j| j.kind == JobKind::Backup && &j.vault == vname)
            {
                let since = j.started_ns.unwrap_or(j.created_ns) - 5_000_000_000;
                let known: Vec<String> = self
                    .catalog
                    .list(&crate::catalog::Filter {
                        resource: Some(j.resource.clone()),
                        kind: Some(JobKind::Backup),
                        ..Default::default()
                    })
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|k| k.point)
                    .collect();
                if let Some(p) = points
                    .iter()
                    .filter(|p| p.1 == j.resource && p.2 >= since && !known.contains(&p.0))
                    .min_by_key(|p| p.2)
                {
                    tracing::info!(
                        job = j.id,
                        "point {} of {} found after restart",
                        &p.0[..12.min(p.0.len())],
                        j.resource
                    );
                    let _ = self.catalog.adopt_point(j.id, &p.0, p.2, self.now_ns());
                }
            }
        }
    }
}
