//! The daemon's HTTP listener: `/metrics`, `/healthz` and the REST API under `/api/v1`.
//!
//! Every API call needs `Authorization: Bearer TOKEN`, the token coming from the plan's
//! `api_token_env` / `api_token_file` (compared in constant time). Without a configured token
//! the API answers 401 to everything. `/metrics` needs the token too unless
//! `metrics_public = true`; `/healthz` never does.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/api/v1/jobs?resource=&vault=&state=&kind=&since=&limit=` | jobs, newest first |
//! | GET | `/api/v1/jobs/{id}` | one job |
//! | GET | `/api/v1/resources` | every resource's status (RPO, last success, next run) |
//! | GET | `/api/v1/rpo` | resource, RPO, data age, breach |
//! | GET | `/api/v1/points?resource=R` | the resource's points in its vault |
//! | POST | `/api/v1/resources/{name}/run` | 202 with the new backup job's id |
//! | GET | `/api/v1/vaults` | every vault: verify schedule, newest verify, next verify |
//! | POST | `/api/v1/vaults/{name}/verify` | 202 with the new verify job's id |

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::catalog::Filter;
use crate::job::{JobKind, JobState};
use crate::runner::{Runtime, now_ns};

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    /// The runtime.
    pub rt: Arc<Runtime>,
    /// The bearer token (None: API closed).
    pub token: Option<Arc<String>>,
    /// When the daemon started (Unix ns).
    pub started_ns: i64,
}

/// The router.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/api/v1/resources", get(resources))
        .route("/api/v1/rpo", get(rpo))
        .route("/api/v1/points", get(points))
        .route("/api/v1/resources/{name}/run", post(run))
        .route("/api/v1/vaults", get(vaults))
        .route("/api/v1/vaults/{name}/verify", post(verify))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(api)
}

fn err(code: StatusCode, msg: &str) -> Response {
    (code, axum::Json(json!({ "error": msg }))).into_response()
}

#[allow(clippy::result_large_err)] // a ready response is the natural error of a handler guard
fn authorized(api: &Api, headers: &HeaderMap) -> Result<(), Response> {
    let Some(token) = &api.token else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "the API has no token configured (set api_token_env or api_token_file in [daemon])",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) && !given.is_empty() {
        Ok(())
    } else {
        let mut r = err(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("constant"),
        );
        Err(r)
    }
}

async fn metrics(State(api): State<Api>, headers: HeaderMap) -> Response {
    if !api.rt.plan().settings.metrics_public
        && let Err(r) = authorized(&api, &headers)
    {
        return r;
    }
    let rt = api.rt.clone();
    let started = api.started_ns;
    let body = tokio::task::spawn_blocking(move || crate::metrics::render(&rt, now_ns(), started))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct JobsQuery {
    resource: Option<String>,
    vault: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

/// `since`: RFC 3339, or a duration back from now (`24h`).
pub fn parse_since(s: &str, now: i64) -> Option<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return i64::try_from(t.as_nanosecond()).ok();
    }
    holdfast_plan::duration_ns(s).map(|d| now - d)
}

async fn jobs(State(api): State<Api>, headers: HeaderMap, Query(q): Query<JobsQuery>) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    let state = match q.state.as_deref().map(JobState::parse) {
        Some(None) => return err(StatusCode::BAD_REQUEST, "unknown state"),
        Some(s) => s,
        None => None,
    };
    let kind = match q.kind.as_deref() {
        Some(k) => match JobKind::ALL.into_iter().find(|x| x.as_str() == k) {
            Some(k) => Some(k),
            None => return err(StatusCode::BAD_REQUEST, "unknown kind"),
        },
        None => None,
    };
    let since = match q.since.as_deref().map(|s| parse_since(s, now_ns())) {
        Some(None) => {
            return err(
                StatusCode::BAD_REQUEST,
                "since: RFC 3339 or a duration such as 24h",
            );
        }
        Some(s) => s,
        None => None,
    };
    let f = Filter {
        resource: q.resource,
        vault: q.vault,
        states: state.into_iter().collect(),
        kind,
        since_ns: since,
        limit: q.limit.unwrap_or(200),
        ..Filter::default()
    };
    match api.rt.catalog.list(&f) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn job(State(api): State<Api>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    match api.rt.catalog.get(id) {
        Ok(Some(j)) => axum::Json(j).into_response(),
        Ok(None) => err(StatusCode::NOT_FOUND, "no such job"),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn resources(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    axum::Json(crate::status::statuses(&api.rt, now_ns())).into_response()
}

async fn rpo(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    let v: Vec<_> = crate::status::statuses(&api.rt, now_ns())
        .into_iter()
        .map(|s| {
            json!({"resource": s.resource, "category": s.category, "rpo_seconds": s.rpo_seconds,
                   "age_seconds": s.age_seconds, "last_point": s.last_point, "breach": s.rpo_breach})
        })
        .collect();
    axum::Json(v).into_response()
}

#[derive(Deserialize)]
struct PointsQuery {
    resource: String,
}

async fn points(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(q): Query<PointsQuery>,
) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    let plan = api.rt.plan();
    let Ok((_, c)) = crate::commands::resource(&plan.plan, &q.resource) else {
        return err(StatusCode::NOT_FOUND, "no such resource in the plan");
    };
    let cmd = match crate::commands::points(&api.rt.exe, &plan.plan, c.vault.get_ref()) {
        Ok(c) => c,
        Err(e) => return err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut kill = api.rt.kill.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    match crate::exec::run(cmd, Some(deadline), &mut kill).await {
        Ok(o) if o.code == Some(0) => {
            let all: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap_or(json!([]));
            let v: Vec<&serde_json::Value> = all
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| p["resource"] == q.resource.as_str())
                        .collect()
                })
                .unwrap_or_default();
            axum::Json(v).into_response()
        }
        Ok(o) => err(StatusCode::BAD_GATEWAY, &o.error_line()),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Start a job now: 202 with its id, 404 when `known` is false, 503 while draining. `start`
/// records the job and launches it.
fn start_now(
    api: &Api,
    headers: &HeaderMap,
    known: bool,
    unknown: &str,
    start: impl FnOnce() -> Result<i64, crate::catalog::CatalogError>,
) -> Response {
    if let Err(r) = authorized(api, headers) {
        return r;
    }
    if *api.rt.draining.borrow() {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        );
    }
    if !known {
        return err(StatusCode::NOT_FOUND, unknown);
    }
    match start() {
        Ok(job) => (StatusCode::ACCEPTED, axum::Json(json!({ "job": job }))).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn run(State(api): State<Api>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let known = api.rt.plan().plan.resources.contains_key(&name);
    start_now(
        &api,
        &headers,
        known,
        "no such resource in the plan",
        || {
            let job = api.rt.create_backup(&name, "api", None)?;
            api.rt.spawn_run(job, name.clone(), None);
            Ok(job)
        },
    )
}

async fn vaults(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    axum::Json(crate::status::vault_statuses(&api.rt, now_ns())).into_response()
}

async fn verify(State(api): State<Api>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let known = api.rt.plan().plan.vaults.contains_key(&name);
    start_now(&api, &headers, known, "no such vault in the plan", || {
        let job = api.rt.create_verify(&name, "api", None)?;
        api.rt.spawn_verify(job, name.clone(), None);
        Ok(job)
    })
}
