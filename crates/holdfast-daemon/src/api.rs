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
//! | GET | `/api/v1/points?resource=R` | the resource's points in its vault (cached, [`crate::points`]) |
//! | POST | `/api/v1/resources/{name}/run` | 202 with the backup job's id (the queued or running one, if any) |
//! | GET | `/api/v1/vaults` | every vault: verify schedule, newest verify, next verify |
//! | POST | `/api/v1/vaults/{name}/verify` | 202 with the verify job's id (the queued or running one, if any) |
//! | GET | `/api/v1/notifications?pending=&limit=` | the notification outbox, newest first |
//!
//! Limits: `limit` is 1..=[`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]); a bad query value is a
//! 400 with a JSON error. Request bodies over [`MAX_BODY`] bytes get 413 (no endpoint takes
//! a body); request headers over [`MAX_HEADER_BYTES`] bytes or [`MAX_HEADERS`] fields get
//! 431; headers must arrive within [`HEADER_TIMEOUT`]; at most [`MAX_CONNECTIONS`]
//! connections are served at once (more are closed at once).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::catalog::Filter;
use crate::job::{JobKind, JobState};
use crate::runner::Runtime;

/// The largest `limit` a list call accepts.
pub const MAX_LIMIT: u32 = 1000;
/// The `limit` of a list call that gives none.
pub const DEFAULT_LIMIT: u32 = 200;
/// The largest request body accepted (no endpoint takes one).
pub const MAX_BODY: usize = 64 * 1024;
/// The largest request head (request line and headers) accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most header fields a request may have.
pub const MAX_HEADERS: usize = 64;
/// How long a client may take to send a request's head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 128;

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
        .route("/api/v1/restore-tests/{name}/run", post(restore_test))
        .route("/api/v1/notifications", get(notifications))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn(limit_body))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// 413 for a body over [`MAX_BODY`] (by its Content-Length, or as it is read); the body,
/// read up to the limit, is passed on.
async fn limit_body(req: Request, next: Next) -> Response {
    let too_large = || {
        err(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is larger than {MAX_BODY} bytes"),
        )
    };
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(n) if n > MAX_BODY as u64 => return too_large(),
            Some(_) => {}
            None => return err(StatusCode::BAD_REQUEST, "bad Content-Length"),
        }
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            let inner = e.into_inner();
            if inner
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large()
            } else {
                err(StatusCode::BAD_REQUEST, "the request body cannot be read")
            }
        }
    }
}

/// Serve `app` on `listener` until `stop` fires, with the limits above (hyper's HTTP/1
/// server: head size and field count, head timeout; a cap on connections), then let the
/// open connections finish (at most 10 s).
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .max_buf_size(4 * MAX_HEADER_BYTES);
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!("API listener: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("API: {MAX_CONNECTIONS} connections open; one more refused");
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
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
    let body =
        tokio::task::spawn_blocking(move || crate::metrics::render(&rt, rt.now_ns(), started))
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
    limit: Option<String>,
}

/// A `limit` parameter: 1..=[`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
pub fn parse_limit(given: Option<&str>) -> Result<u32, String> {
    let Some(s) = given else {
        return Ok(DEFAULT_LIMIT);
    };
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("limit: a whole number from 1 to {MAX_LIMIT}")),
    }
}

/// A query string that does not parse: 400 with a JSON error.
fn bad_query(r: QueryRejection) -> Response {
    err(
        StatusCode::BAD_REQUEST,
        &format!("bad query: {}", r.body_text()),
    )
}

/// `since`: RFC 3339, or a duration back from now (`24h`).
pub fn parse_since(s: &str, now: i64) -> Option<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return i64::try_from(t.as_nanosecond()).ok();
    }
    holdfast_plan::duration_ns(s).map(|d| now - d)
}

async fn jobs(
    State(api): State<Api>,
    headers: HeaderMap,
    q: Result<Query<JobsQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    let q = match q {
        Ok(Query(q)) => q,
        Err(r) => return bad_query(r),
    };
    let limit = match parse_limit(q.limit.as_deref()) {
        Ok(n) => n as usize,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
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
    let since = match q.since.as_deref().map(|s| parse_since(s, api.rt.now_ns())) {
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
        limit,
        ..Filter::default()
    };
    match api.rt.catalog.list(&f) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn job(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    let Ok(Path(id)) = id else {
        return err(StatusCode::BAD_REQUEST, "a job id is a number");
    };
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
    axum::Json(crate::status::statuses(&api.rt, api.rt.now_ns())).into_response()
}

async fn rpo(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    let v: Vec<_> = crate::status::statuses(&api.rt, api.rt.now_ns())
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
    resource: Option<String>,
}

async fn points(
    State(api): State<Api>,
    headers: HeaderMap,
    q: Result<Query<PointsQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    let resource = match q {
        Ok(Query(PointsQuery { resource: Some(r) })) => r,
        Ok(_) => return err(StatusCode::BAD_REQUEST, "resource: required"),
        Err(r) => return bad_query(r),
    };
    let plan = api.rt.plan();
    let Ok((_, c)) = crate::commands::resource(&plan.plan, &resource) else {
        return err(StatusCode::NOT_FOUND, "no such resource in the plan");
    };
    let vault = c.vault.get_ref().clone();
    drop(plan);
    match api.rt.points.get(&api.rt, &vault).await {
        Ok(p) => {
            let v: Vec<&holdfast_ops::points::PointRow> =
                p.all.iter().filter(|x| x.resource == resource).collect();
            let age = (api.rt.now_ns() - p.fetched_ns).max(0) / 1_000_000_000;
            ([(header::AGE, age.to_string())], axum::Json(v)).into_response()
        }
        Err(e @ crate::points::PointsError::Busy) => {
            err(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
        Err(e) => err(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

/// Start a job now: 202 with its id — or with the id of the same work already queued or
/// running, which is not queued again — 404 when `known` is false, 503 while draining.
/// `start` records the job and launches it unless one is in flight: (job, newly queued).
fn start_now<E: std::fmt::Display>(
    api: &Api,
    headers: &HeaderMap,
    known: bool,
    unknown: &str,
    start: impl FnOnce() -> Result<(i64, bool), E>,
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
        Ok((job, queued)) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "job": job, "queued": queued })),
        )
            .into_response(),
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
        || api.rt.request_run(&name, "api"),
    )
}

async fn vaults(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    axum::Json(crate::status::vault_statuses(&api.rt, api.rt.now_ns())).into_response()
}

async fn verify(State(api): State<Api>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let known = api.rt.plan().plan.vaults.contains_key(&name);
    start_now(&api, &headers, known, "no such vault in the plan", || {
        api.rt.request_verify(&name, "api")
    })
}

async fn restore_test(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let known = api.rt.plan().resolved.restore_tests.contains_key(&name);
    start_now(
        &api,
        &headers,
        known,
        "no such restore test in the plan",
        || api.rt.request_restore_test(&name, "api"),
    )
}

#[derive(Deserialize)]
struct NotificationsQuery {
    pending: Option<String>,
    limit: Option<String>,
}

async fn notifications(
    State(api): State<Api>,
    headers: HeaderMap,
    q: Result<Query<NotificationsQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = authorized(&api, &headers) {
        return r;
    }
    let q = match q {
        Ok(Query(q)) => q,
        Err(r) => return bad_query(r),
    };
    let pending = match q.pending.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return err(StatusCode::BAD_REQUEST, "pending: true or false"),
    };
    let limit = match parse_limit(q.limit.as_deref()) {
        Ok(n) => n as usize,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    match api.rt.catalog.outbox_list(pending, limit) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert_eq!(parse_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some("1")), Ok(1));
        assert_eq!(parse_limit(Some("1000")), Ok(1000));
        for bad in ["0", "1001", "18446744073709551615", "-1", "abc", "", "1e3"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
