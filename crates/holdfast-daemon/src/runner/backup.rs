//! One attempt at a resource's backup: the pre hook, the `holdfast backup` child, the post
//! hook (which sees the backup's state and can only add to the job's message).

use tokio::time::Instant;

use super::{Runtime, Try, failed_or, json, ts_ns};
use crate::commands;
use crate::exec::{self, Ended};
use crate::job::JobState;

impl Runtime {
    pub(super) async fn backup_once(
        &self,
        plan: &holdfast_plan::Plan,
        resource: &str,
        job: i64,
        deadline: Option<Instant>,
    ) -> Try {
        let Ok((r, _)) = commands::resource(plan, resource) else {
            return Try::Failed(format!("resource {resource:?} is not in the plan"));
        };
        let mut kill = self.kill.subscribe();
        if let Some(h) = &r.pre_hook {
            match exec::run(
                commands::hook(plan, h.get_ref(), resource, job, "pre", None),
                deadline,
                &mut kill,
            )
            .await
            {
                Ok(o) if o.ended == Ended::Exited && o.code == Some(0) => {}
                Ok(o) => {
                    return match o.ended {
                        Ended::Deadline => Try::Deadline,
                        Ended::Shutdown => Try::Shutdown,
                        Ended::Exited => {
                            Try::Failed(format!("pre_hook failed: {}", o.error_line()))
                        }
                    };
                }
                Err(e) => return Try::Failed(format!("pre_hook cannot run: {e}")),
            }
        }
        let cmd = match commands::backup(&self.exe, plan, resource) {
            Ok(c) => c,
            Err(e) => return Try::Failed(e.to_string()),
        };
        let mut t = match exec::run(cmd, deadline, &mut kill).await {
            Ok(o) => failed_or(&o, |o| {
                let v = json(o);
                let partial = o.code == Some(3) || v["partial"].as_bool() == Some(true);
                Try::Done {
                    state: if partial {
                        JobState::Partial
                    } else {
                        JobState::Completed
                    },
                    bytes: v["summary"]["bytes_added"].as_u64(),
                    point: v["point"].as_str().map(String::from),
                    point_ns: v["time"].as_str().and_then(ts_ns),
                    message: partial.then(|| {
                        format!(
                            "{} item(s) could not be read",
                            v["errors"].as_array().map_or(0, Vec::len)
                        )
                    }),
                }
            }),
            Err(e) => Try::Failed(format!("cannot run {}: {e}", self.exe.display())),
        };
        if let Some(h) = &r.post_hook {
            let state = match &t {
                Try::Done { state, .. } => state.as_str(),
                _ => "failed",
            };
            match exec::run(
                commands::hook(plan, h.get_ref(), resource, job, "post", Some(state)),
                deadline,
                &mut kill,
            )
            .await
            {
                Ok(o) if o.ended == Ended::Exited && o.code == Some(0) => {}
                Ok(o) => {
                    let why = format!("post_hook failed: {}", o.error_line());
                    match &mut t {
                        Try::Done { message, .. } => *message = Some(why),
                        Try::Failed(m) => m.push_str(&format!("; {why}")),
                        _ => {}
                    }
                }
                Err(e) => tracing::warn!("post_hook cannot run: {e}"),
            }
        }
        t
    }
}
