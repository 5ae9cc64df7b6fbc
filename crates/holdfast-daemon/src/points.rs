//! The vaults' point lists for `GET /api/v1/points`, without a process per request.
//!
//! Listing a vault's points means a points worker child (key derivation, index load), so
//! the API serves them from a per-vault cache:
//!
//! - a list is served as is while it is younger than [`FRESH_FOR`] and no job of this daemon
//!   that changes the vault (backup, copy, retention, prune) ended since it was read;
//! - otherwise one refresh re-reads it. There is one refresh worker for all vaults: at most
//!   one `holdfast points` child runs for the API at any time; requests that arrive while it
//!   runs wait for it (up to [`WAIT_LIMIT`]) and share its result, and a vault is re-read at
//!   most once every [`MIN_GAP`] (a request inside that gap waits for it to pass);
//! - a failed refresh answers its error to the requests that waited for it, and is not
//!   cached: the next request tries again (still at most once per [`MIN_GAP`]).
//!
//! So the points a job of this daemon saved are listed by the first request after the job;
//! points written by another host, or by hand, within [`FRESH_FOR`]. The metric
//! `holdfast_points_refreshes` counts the children started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use holdfast_ops::points::PointRow;
use holdfast_ops::worker::Report;

use crate::exec::WorkerResult;
use crate::runner::Runtime;

/// How long a vault's list is served without re-reading it (unless a job changed the vault).
pub const FRESH_FOR: Duration = Duration::from_secs(60);
/// The shortest time between two reads of one vault.
pub const MIN_GAP: Duration = Duration::from_secs(2);
/// How long one `holdfast points` child may run.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a request waits for the refresh worker.
pub const WAIT_LIMIT: Duration = Duration::from_secs(150);

/// Why points cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    /// The worker stayed busy longer than [`WAIT_LIMIT`].
    #[error("the point list is being refreshed; try again shortly")]
    Busy,
    /// The vault could not be listed.
    #[error("{0}")]
    Failed(String),
}

/// A vault's points as last read.
#[derive(Debug, Clone)]
pub struct Points {
    /// Every point of the vault (the rows of `holdfast points --json`).
    pub all: Arc<Vec<PointRow>>,
    /// When it was read (Unix ns).
    pub fetched_ns: i64,
}

#[derive(Default)]
struct Entry {
    points: Option<Points>,
    /// When `points` was read, and the vault's generation then.
    fetched: Option<(Instant, u64)>,
    /// Bumped by every job end that may change the vault.
    generation: u64,
    /// The last refresh's start and end.
    started: Option<Instant>,
    completed: Option<Instant>,
    /// The last refresh's error (cleared by a successful one).
    error: Option<String>,
}

impl Entry {
    fn fresh(&self) -> Option<Points> {
        let (at, generation) = self.fetched?;
        (generation == self.generation && at.elapsed() < FRESH_FOR)
            .then(|| self.points.clone())
            .flatten()
    }

    fn last_result(&self) -> Result<Points, PointsError> {
        match (&self.error, &self.points) {
            (Some(e), _) => Err(PointsError::Failed(e.clone())),
            (None, Some(p)) => Ok(p.clone()),
            (None, None) => Err(PointsError::Failed("no point list yet".into())),
        }
    }
}

/// The cache and its one refresh worker.
#[derive(Default)]
pub struct PointsCache {
    entries: Mutex<HashMap<String, Entry>>,
    worker: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
}

impl PointsCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `holdfast points` children started so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// A job that may have changed `vault` ended: its list is re-read at the next request.
    pub fn invalidate(&self, vault: &str) {
        self.entries()
            .entry(vault.to_string())
            .or_default()
            .generation += 1;
    }

    /// The points of `vault`, from the cache or from one refresh.
    pub async fn get(&self, rt: &Runtime, vault: &str) -> Result<Points, PointsError> {
        let asked = Instant::now();
        if let Some(p) = self.entries().get(vault).and_then(Entry::fresh) {
            return Ok(p);
        }
        let Ok(_worker) = tokio::time::timeout(WAIT_LIMIT, self.worker.lock()).await else {
            return Err(PointsError::Busy);
        };
        let (started, generation) = {
            let m = self.entries();
            let e = m.get(vault);
            if let Some(e) = e {
                // A refresh that ended after this request arrived (it ran while we waited)
                // answers it too.
                if e.completed.is_some_and(|c| c >= asked) {
                    return e.last_result();
                }
                if let Some(p) = e.fresh() {
                    return Ok(p);
                }
            }
            (e.and_then(|e| e.started), e.map_or(0, |e| e.generation))
        };
        if let Some(s) = started {
            tokio::time::sleep_until(s + MIN_GAP).await;
        }
        self.entries().entry(vault.to_string()).or_default().started = Some(Instant::now());
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let result = read(rt, vault).await;
        let mut m = self.entries();
        let e = m.entry(vault.to_string()).or_default();
        e.completed = Some(Instant::now());
        match result {
            Ok(all) => {
                let p = Points {
                    all: Arc::new(all),
                    fetched_ns: rt.now_ns(),
                };
                e.points = Some(p.clone());
                e.fetched = Some((Instant::now(), generation));
                e.error = None;
                Ok(p)
            }
            Err(why) => {
                e.error = Some(why.clone());
                Err(PointsError::Failed(why))
            }
        }
    }
}

/// One points worker for `vault`, stopped after `limit`.
pub async fn list(rt: &Runtime, vault: &str, limit: Duration) -> Result<Vec<PointRow>, String> {
    let plan = rt.plan();
    let step = crate::commands::points(&rt.exe, &plan.plan, vault).map_err(|e| e.to_string())?;
    let mut kill = rt.kill.subscribe();
    let deadline = Instant::now() + limit;
    let run = rt
        .executor
        .worker(step, Some(deadline), &mut kill, Box::new(|_| {}))
        .await
        .map_err(|e| format!("cannot run {}: {e}", rt.exe.display()))?;
    match run.result {
        WorkerResult::Done(Report::Points { points }) => Ok(points),
        WorkerResult::Done(other) => Err(format!(
            "vault {vault}: the worker answered a point list with a {} report",
            other.op()
        )),
        WorkerResult::Failed(f) => Err(f.message),
        WorkerResult::Deadline => Err(format!(
            "vault {vault}: listing the points took longer than {}s",
            limit.as_secs()
        )),
        WorkerResult::Shutdown => Err("the daemon is shutting down".into()),
        WorkerResult::Silent(m) => Err(m),
    }
}

async fn read(rt: &Runtime, vault: &str) -> Result<Vec<PointRow>, String> {
    list(rt, vault, REFRESH_TIMEOUT).await
}
