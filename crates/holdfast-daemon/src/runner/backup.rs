//! One attempt at a resource's backup: the pre hook, the backup's worker, the post
//! hook (which sees the backup's state and can only add to the job's message).

use tokio::time::Instant;

use holdfast_ops::worker::Report;

use super::{Runtime, Try, ts_ns};
use crate::commands;
use crate::exec::Ended;
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
            return Try::fail(format!("resource {resource:?} is not in the plan"));
        };
        let mut kill = self.kill.subscribe();
        if let Some(h) = &r.pre_hook {
            match self
                .executor
                .hook(
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
                        // A hook's failure may pass (a database restarting): retried.
                        Ended::Exited => Try::Failed {
                            message: format!("pre_hook failed: {}", o.error_line()),
                            retryable: true,
                        },
                    };
                }
                Err(e) => return Try::fail(format!("pre_hook cannot run: {e}")),
            }
        }
        let step = match commands::backup(&self.exe, plan, resource) {
            Ok(c) => c,
            Err(e) => return Try::fail(e.to_string()),
        };
        let mut t = self
            .work(job, step, deadline, |r| match r {
                Report::Backup(b) => Try::Done {
                    state: if b.partial {
                        JobState::Partial
                    } else {
                        JobState::Completed
                    },
                    bytes: Some(b.summary.bytes_added),
                    point_ns: ts_ns(&b.time),
                    message: b
                        .partial
                        .then(|| format!("{} item(s) could not be read", b.errors.len())),
                    point: Some(b.point),
                },
                Report::BaseBackup(b) => Try::Done {
                    state: JobState::Completed,
                    bytes: Some(b.summary.bytes_added),
                    point_ns: ts_ns(&b.time),
                    message: None,
                    point: Some(b.point),
                },
                other => Try::mismatch("backup", &other),
            })
            .await;
        if let Some(h) = &r.post_hook {
            let state = match &t {
                Try::Done { state, .. } => state.as_str(),
                _ => "failed",
            };
            match self
                .executor
                .hook(
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
                        Try::Failed { message, .. } => message.push_str(&format!("; {why}")),
                        _ => {}
                    }
                }
                Err(e) => tracing::warn!("post_hook cannot run: {e}"),
            }
        }
        t
    }
}
