//! The controller's own HTTP server: `/health` (the loop is making progress, not merely the process alive),
//! `/ready` (a complete, fresh view to act on), `/metrics` and `/actions` (what it did recently, newest
//! first). Every error is `{"error", "message"}` JSON; every request runs in a span of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use poem::http::{Method, StatusCode};
use poem::web::{Data, Json};
use poem::{get, handler, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use serde::Serialize;
use shared::runtime::http::error_json;

use tracing::Instrument;

use crate::journal::{ActionRecord, Journal, CAPACITY};
use crate::metrics::Metrics;
use crate::state::{ControllerState, QuarantineView, ReadinessCheck, STALL_AFTER};

/// What the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerState {
    pub state: ControllerState,
    pub journal: Journal,
    pub metrics: Metrics,
}

/// The whole server: the four endpoints and the JSON-error edge.
pub fn app(state: ServerState) -> impl Endpoint {
    Route::new()
        .at("/health", get(health))
        .at("/ready", get(ready))
        .at("/metrics", get(metrics))
        .at("/actions", get(actions))
        .data(state)
        .around(json_errors)
        .around(trace_requests)
}

/// The routes this server knows, so a span's `route` never carries an arbitrary path.
const ROUTES: [&str; 4] = ["/health", "/ready", "/metrics", "/actions"];

/// A span per request (method, route, status, duration), closed with one event: at info when the answer is
/// not a success, at debug otherwise, so probes do not flood the logs.
async fn trace_requests<E: Endpoint>(endpoint: Arc<E>, request: Request) -> poem::Result<Response> {
    let path = request.uri().path();
    let route = ROUTES
        .iter()
        .find(|route| **route == path)
        .copied()
        .unwrap_or("(unknown)");
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        status = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let response = endpoint.call(request).await?.into_response();
        let status = response.status().as_u16();
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let span = tracing::Span::current();
        span.record("status", status);
        span.record("duration_ms", duration_ms);
        if response.status().is_success() {
            tracing::debug!(status, duration_ms, "request served");
        } else {
            tracing::info!(status, duration_ms, "request served");
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

#[derive(Debug, Serialize)]
struct HealthBody {
    /// `UP` while the loop makes progress, `DOWN` when it has stalled.
    status: &'static str,
    /// Seconds since the loop last got somewhere: an answer from status-api, a pass, or a hold.
    last_progress_seconds_ago: f64,
    detail: String,
}

/// 200 while the reconcile loop makes progress; 503 when it has not moved for three long polls, which only
/// a stuck loop explains (a down status-api still moves it: every retry is progress).
#[handler]
fn health(Data(api): Data<&ServerState>) -> Response {
    let since = api.state.since_progress();
    let up = since <= STALL_AFTER;
    let body = HealthBody {
        status: if up { "UP" } else { "DOWN" },
        last_progress_seconds_ago: since.as_secs_f64(),
        detail: if up {
            "the reconcile loop is making progress".into()
        } else {
            format!(
                "the reconcile loop has not made progress for {}s (limit {}s)",
                since.as_secs(),
                STALL_AFTER.as_secs()
            )
        },
    };
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Json(body).with_status(status).into_response()
}

#[derive(Debug, Serialize)]
struct ReadyBody {
    /// `READY` or `NOT_READY`.
    status: &'static str,
    /// `snapshot` (read from status-api) and `status_api` (its view is complete and fresh).
    checks: BTreeMap<&'static str, CheckBody>,
}

#[derive(Debug, Serialize)]
struct CheckBody {
    /// `UP` or `DOWN`.
    status: &'static str,
    detail: String,
}

/// 200 when the controller may act: it has the snapshot, and status-api's latest view was reachable,
/// ready, live and fresh. Else 503, and `checks` says why.
#[handler]
fn ready(Data(api): Data<&ServerState>) -> Response {
    let (ready, checks) = api.state.readiness();
    let body = ReadyBody {
        status: if ready { "READY" } else { "NOT_READY" },
        checks: checks
            .into_iter()
            .map(|(name, ReadinessCheck { ok, detail })| {
                let status = if ok { "UP" } else { "DOWN" };
                (name, CheckBody { status, detail })
            })
            .collect(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Json(body).with_status(status).into_response()
}

#[handler]
fn metrics(Data(api): Data<&ServerState>) -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(api.metrics.render())
}

#[derive(Debug, Serialize)]
struct ActionsBody {
    /// Newest first.
    actions: Vec<ActionRecord>,
    /// Containers left alone because they kept failing.
    quarantined: Vec<QuarantineView>,
}

/// The recent actions, newest first (`?limit=N`, 1 to 256, default all that are kept), and the containers in
/// quarantine.
#[handler]
fn actions(request: &Request, Data(api): Data<&ServerState>) -> Response {
    let limit = match limit_param(request.uri().query()) {
        Ok(limit) => limit,
        Err(message) => return error_json(StatusCode::BAD_REQUEST, "bad_request", message),
    };
    Json(ActionsBody {
        actions: api.journal.recent(limit),
        quarantined: api.state.quarantined(),
    })
    .into_response()
}

fn limit_param(query: Option<&str>) -> Result<usize, String> {
    let raw = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == "limit")
        .map(|(_, value)| value);
    match raw {
        None => Ok(CAPACITY),
        Some(value) => match value.parse::<usize>() {
            Ok(limit) if (1..=CAPACITY).contains(&limit) => Ok(limit),
            _ => Err(format!(
                "query parameter `limit` is `{value}`: use a whole number from 1 to {CAPACITY}"
            )),
        },
    }
}

/// Every error as `{error, message}` JSON with a message that says what to do.
async fn json_errors<E: Endpoint>(endpoint: Arc<E>, request: Request) -> poem::Result<Response> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    Ok(match endpoint.call(request).await {
        Ok(response) => response.into_response(),
        Err(err) => error_response(&err, &method, &path),
    })
}

fn error_response(err: &poem::Error, method: &Method, path: &str) -> Response {
    shared::runtime::http::router_error(
        err,
        method.as_str(),
        path,
        "status-controller serves /health, /ready, /metrics and /actions",
        "use GET",
    )
}

#[cfg(test)]
mod tests {
    use poem::test::TestClient;

    use super::*;

    fn client() -> TestClient<impl Endpoint> {
        TestClient::new(app(ServerState {
            state: ControllerState::new(),
            journal: Journal::new(),
            metrics: Metrics::new(),
        }))
    }

    #[tokio::test]
    async fn health_is_up_while_the_loop_moves() {
        let response = client().get("/health").send().await;
        response.assert_status_is_ok();
        let body = response.json().await;
        body.value().object().get("status").assert_string("UP");
    }

    #[tokio::test]
    async fn health_is_down_when_the_loop_has_stalled() {
        let state = ControllerState::new();
        let stalled_since = std::time::Instant::now()
            .checked_sub(STALL_AFTER + std::time::Duration::from_secs(1))
            .expect("the clock is past it");
        state.set_last_progress(stalled_since);
        let client = TestClient::new(app(ServerState {
            state,
            journal: Journal::new(),
            metrics: Metrics::new(),
        }));
        let response = client.get("/health").send().await;
        response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        let body = response.json().await;
        body.value().object().get("status").assert_string("DOWN");
    }

    #[tokio::test]
    async fn not_ready_before_the_first_view() {
        let response = client().get("/ready").send().await;
        response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        let body = response.json().await;
        let body = body.value().object();
        body.get("status").assert_string("NOT_READY");
        body.get("checks")
            .object()
            .get("snapshot")
            .object()
            .get("status")
            .assert_string("DOWN");
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let response = client().get("/metrics").send().await;
        response.assert_status_is_ok();
        response.assert_content_type("text/plain; version=0.0.4; charset=utf-8");
        let text = response.0.into_body().into_string().await.expect("text");
        assert!(text.contains("dockstate_controller_holds_total"), "{text}");
    }

    #[tokio::test]
    async fn actions_start_empty_and_check_their_limit() {
        let response = client().get("/actions?limit=5").send().await;
        response.assert_status_is_ok();
        let body = response.json().await;
        body.value()
            .object()
            .get("actions")
            .array()
            .assert_is_empty();
        body.value()
            .object()
            .get("quarantined")
            .array()
            .assert_is_empty();

        for bad in ["0", "x", "100000"] {
            let response = client().get(format!("/actions?limit={bad}")).send().await;
            response.assert_status(StatusCode::BAD_REQUEST);
            let body = response.json().await;
            body.value()
                .object()
                .get("error")
                .assert_string("bad_request");
        }
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_answer_json() {
        let response = client().get("/nope").send().await;
        response.assert_status(StatusCode::NOT_FOUND);
        let body = response.json().await;
        body.value()
            .object()
            .get("error")
            .assert_string("not_found");

        let response = client().post("/actions").send().await;
        response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        let body = response.json().await;
        body.value()
            .object()
            .get("error")
            .assert_string("method_not_allowed");
    }

    #[test]
    fn limits_parse_from_the_query() {
        assert_eq!(limit_param(None), Ok(CAPACITY));
        assert_eq!(limit_param(Some("limit=3")), Ok(3));
        assert_eq!(limit_param(Some("x=1&limit=256")), Ok(256));
        assert!(limit_param(Some("limit=")).is_err());
        assert!(limit_param(Some("limit")).is_err());
    }
}
