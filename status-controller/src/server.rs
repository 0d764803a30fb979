//! The controller's own HTTP server: `/health` (the loop is making progress, not merely the process alive),
//! `/ready` (a complete, fresh view to act on), `/metrics`, `/actions` (what it did recently, newest
//! first) and `/hold` (the maintenance hold: `POST` sets it and `DELETE` ends it, with the bearer token).
//! Every error is `{"error", "message"}` JSON; every request runs in a span of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::web::{Data, Json};
use poem::{get, handler, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use serde::Serialize;
use shared::runtime::api_docs;
use shared::runtime::hosts::HostCheck;
use shared::runtime::http::error_json;
use shared::runtime::secret::Secret;

use tracing::Instrument;

use crate::cors::ReadOnlyCors;
use crate::hold_file::MaintenanceHold;
use crate::journal::{ActionRecord, Journal, CAPACITY};
use crate::maintenance::{parse_end_query, parse_hold_query, Ended, HoldState, Maintenance};
use crate::metrics::Metrics;
use crate::openapi;
use crate::state::{ControllerState, QuarantineView, ReadinessCheck, STALL_AFTER};

/// What the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerState {
    pub state: ControllerState,
    pub journal: Journal,
    pub metrics: Metrics,
    pub maintenance: Maintenance,
    /// The token from `--token-file`, which `POST /hold` and `DELETE /hold` require; `None`: they are off.
    pub token: Option<Secret>,
    /// The `Host` names served (`--allowed-hosts`), checked before any route.
    pub hosts: HostCheck,
    /// The origins whose pages may read the `GET` answers (`--cors-origin`).
    pub cors: ReadOnlyCors,
}

/// The whole server: the five endpoints, their OpenAPI document and Swagger UI, the JSON-error edge and the
/// `Host` check. Every route is here, in one place; [`ROUTES`] and [`allowed_methods`] follow it.
pub fn app(state: ServerState) -> impl Endpoint {
    let (hosts, cors) = (state.hosts.clone(), state.cors.clone());
    Route::new()
        .at("/health", get(health))
        .at("/ready", get(ready))
        .at("/metrics", get(metrics))
        .at("/actions", get(actions))
        .at("/hold", get(show_hold).post(set_hold).delete(end_hold))
        .at(openapi::DOCUMENT_PATH, get(openapi::openapi_json))
        .at(api_docs::PAGE_PATHS[0], get(openapi::docs_page))
        .at(api_docs::PAGE_PATHS[1], get(openapi::docs_page))
        .at(api_docs::SCRIPT_PATH, get(openapi::docs_script))
        .at(api_docs::STYLE_PATH, get(openapi::docs_style))
        .at(api_docs::INIT_PATH, get(openapi::docs_init))
        .at("/favicon.ico", get(openapi::favicon))
        .data(state)
        .around(json_errors)
        .with(cors)
        .with(hosts)
        .around(trace_requests)
}

/// The routes this server knows, so a span's `route` never carries an arbitrary path (every file of the
/// docs is `/docs`).
const ROUTES: [&str; 8] = [
    "/health",
    "/ready",
    "/metrics",
    "/actions",
    "/hold",
    "/openapi.json",
    "/docs",
    "/favicon.ico",
];

/// The methods a path takes, for the `Allow` header of a 405 (RFC 9110 §15.5.6); `None` for a path this
/// server does not serve. poem answers `HEAD` wherever it answers `GET`.
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/hold" => Some("GET, HEAD, POST, DELETE"),
        "/health"
        | "/ready"
        | "/metrics"
        | "/actions"
        | "/favicon.ico"
        | openapi::DOCUMENT_PATH => Some("GET, HEAD"),
        docs if docs == "/docs" || docs.starts_with("/docs/") => Some("GET, HEAD"),
        _ => None,
    }
}

/// A span per request (method, route, status, duration), closed with one event: at info when the answer is
/// not a success, at debug otherwise, so probes do not flood the logs.
async fn trace_requests<E: Endpoint>(endpoint: Arc<E>, request: Request) -> poem::Result<Response> {
    let path = request.uri().path();
    let path = if path.starts_with("/docs/") {
        "/docs"
    } else {
        path
    };
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
    #[serde(flatten)]
    hold: HoldFields,
    /// What is wrong with the action journal file in `--state-dir`, when something is; never a reason to be
    /// `DOWN`: actions go on, and are kept in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    journal_problem: Option<String>,
}

/// The maintenance hold as `/health` and `/actions` show it: `hold` (null when there is none) and, only when
/// the hold file cannot be read, `hold_problem`.
#[derive(Debug, Serialize)]
struct HoldFields {
    hold: Option<MaintenanceHold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hold_problem: Option<String>,
}

impl HoldFields {
    fn of(maintenance: &Maintenance) -> Self {
        let state = maintenance.state(Utc::now());
        Self {
            hold: state.hold().cloned(),
            hold_problem: state.problem().map(str::to_owned),
        }
    }
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
        hold: HoldFields::of(&api.maintenance),
        journal_problem: api.journal.problem(),
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
    /// `snapshot` (read from status-api), `status_api` (its view is complete and fresh) and `hold` (the
    /// maintenance hold: up while held on purpose, down only when its file cannot be read).
    checks: BTreeMap<&'static str, CheckBody>,
}

#[derive(Debug, Serialize)]
struct CheckBody {
    /// `UP` or `DOWN`.
    status: &'static str,
    detail: String,
}

/// 200 when the controller may act: it has the snapshot, and status-api's latest view was reachable,
/// ready, live and fresh. Else 503, and `checks` says why. A maintenance hold keeps it at 200: held on
/// purpose is not broken; a hold file that cannot be read is 503 until the operator clears it.
#[handler]
fn ready(Data(api): Data<&ServerState>) -> Response {
    let (ready, mut checks) = api.state.readiness();
    let hold = hold_check(&api.maintenance.state(Utc::now()));
    let ready = ready && hold.ok;
    checks.insert("hold", hold);
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

/// The `hold` check of `/ready`: who held the controller, why and until when.
fn hold_check(state: &HoldState) -> ReadinessCheck {
    match state {
        HoldState::Free => ReadinessCheck {
            ok: true,
            detail: "no maintenance hold".into(),
        },
        HoldState::Held(hold) => ReadinessCheck {
            ok: true,
            detail: format!(
                "held for maintenance by {} until {} ({}): no action until then",
                hold.by,
                hold.until.to_rfc3339(),
                hold.reason
            ),
        },
        HoldState::Damaged(problem) => ReadinessCheck {
            ok: false,
            detail: problem.clone(),
        },
    }
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
    #[serde(flatten)]
    hold: HoldFields,
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
        hold: HoldFields::of(&api.maintenance),
    })
    .into_response()
}

/// `GET /hold`: the maintenance hold, 404 `not_held` without one. No token needed: `/health` shows as much.
#[handler]
fn show_hold(Data(api): Data<&ServerState>) -> Response {
    match api.maintenance.state(Utc::now()) {
        HoldState::Free => not_held(),
        HoldState::Held(hold) => Json(hold).into_response(),
        HoldState::Damaged(problem) => error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            "hold_file_damaged",
            problem,
        ),
    }
}

/// `POST /hold?for=D&reason=R&by=B` (bearer token): holds every action for `D` (at most 24 h), replacing any
/// hold there is. 201 with the hold, 200 when it replaced one.
#[handler]
fn set_hold(request: &Request, Data(api): Data<&ServerState>) -> Response {
    if let Some(refused) = refusal(api.token.as_ref(), request) {
        return refused;
    }
    let asked = match parse_hold_query(request.uri().query().unwrap_or_default()) {
        Ok(asked) => asked,
        Err(message) => return error_json(StatusCode::BAD_REQUEST, "bad_request", message),
    };
    match api.maintenance.set(asked, &client(request), Utc::now()) {
        Ok((hold, replaced)) => {
            let status = if replaced.holds() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Json(hold).with_status(status).into_response()
        }
        Err(err) => error_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            "write_failed",
            format!("{}: the hold is not set", crate::error_chain(&err)),
        ),
    }
}

/// What `DELETE /hold` answers when it cleared a damaged hold file.
#[derive(Debug, Serialize)]
struct ClearedBody {
    /// Always `damaged_hold_file`.
    ended: &'static str,
    /// What was wrong with it.
    problem: String,
}

/// `DELETE /hold?by=B` (bearer token): ends the hold. 200 with the hold that ended, 404 `not_held`.
#[handler]
fn end_hold(request: &Request, Data(api): Data<&ServerState>) -> Response {
    if let Some(refused) = refusal(api.token.as_ref(), request) {
        return refused;
    }
    let by = match parse_end_query(request.uri().query().unwrap_or_default()) {
        Ok(by) => by.unwrap_or_else(|| client(request)),
        Err(message) => return error_json(StatusCode::BAD_REQUEST, "bad_request", message),
    };
    match api.maintenance.end(&by, Utc::now()) {
        Ok(None) => not_held(),
        Ok(Some(Ended::Hold(hold))) => Json(hold).into_response(),
        Ok(Some(Ended::DamagedFile(problem))) => Json(ClearedBody {
            ended: "damaged_hold_file",
            problem,
        })
        .into_response(),
        Err(err) => error_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            "write_failed",
            format!("{}: the hold stays", crate::error_chain(&err)),
        ),
    }
}

fn not_held() -> Response {
    error_json(
        StatusCode::NOT_FOUND,
        "not_held",
        "there is no maintenance hold: POST /hold?for=15m&reason=… sets one",
    )
}

/// Who sent `request`, for a hold that names nobody: the client's IP address.
fn client(request: &Request) -> String {
    request
        .remote_addr()
        .as_socket_addr()
        .map_or_else(|| "unknown".to_owned(), |addr| addr.ip().to_string())
}

/// The bearer token check of `POST /hold` and `DELETE /hold`: `None` lets the request through; else the
/// answer is 403 when this controller has no token (none could help), 401 with `WWW-Authenticate` for a
/// missing or wrong one. Compared in constant time ([`Secret::matches`]), so the answer time tells nothing
/// about how much of a guess was right; the token is never logged.
fn refusal(expected: Option<&Secret>, request: &Request) -> Option<Response> {
    let Some(expected) = expected else {
        return Some(error_json(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this controller has no token configured: start it with --token-file to enable /hold",
        ));
    };
    let sent = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let problem = match sent {
        None => "this endpoint needs a token: send `Authorization: Bearer <token>` with the token from --token-file",
        Some(token) if expected.matches(token) => return None,
        Some(_) => "the bearer token is wrong: send the token from the controller's --token-file",
    };
    let mut response = error_json(StatusCode::UNAUTHORIZED, "unauthorized", problem);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"status-controller\""),
    );
    Some(response)
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
    let mut response = shared::runtime::http::router_error(
        err,
        method.as_str(),
        path,
        "status-controller serves /health, /ready, /metrics, /actions and /hold, described at /docs and \
         /openapi.json",
        "use GET (and POST or DELETE on /hold)",
    );
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(allowed) = allowed_methods(path) {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use poem::test::TestClient;

    use super::*;

    const TOKEN: &str = "s3cret-token";

    fn server_state(state: ControllerState, token: Option<&str>) -> ServerState {
        server_state_over(state, token, None)
    }

    fn server_state_over(
        state: ControllerState,
        token: Option<&str>,
        file: Option<crate::hold_file::HoldFile>,
    ) -> ServerState {
        let registry = Metrics::new();
        let (set, until) = registry.maintenance();
        ServerState {
            state,
            journal: Journal::new(),
            maintenance: Maintenance::start(
                file,
                crate::maintenance::HoldMetrics { set, until },
                Utc::now(),
            ),
            metrics: registry,
            token: token.map(Secret::from),
            hosts: HostCheck::new(Default::default(), crate::config::ALLOWED_HOSTS_ENV),
            cors: ReadOnlyCors::default(),
        }
    }

    /// Asserts the status of `response` and the `error` code of its JSON body.
    async fn assert_error(response: poem::test::TestResponse, status: StatusCode, code: &str) {
        response.assert_status(status);
        response
            .json()
            .await
            .value()
            .object()
            .get("error")
            .assert_string(code);
    }

    fn client() -> TestClient<impl Endpoint> {
        TestClient::new(app(server_state(ControllerState::new(), Some(TOKEN))))
    }

    #[tokio::test]
    async fn the_hold_needs_the_token_and_answers_what_was_set() {
        let client = client();
        let response = client.post("/hold?for=15m").send().await;
        response.assert_status(StatusCode::UNAUTHORIZED);
        response.assert_header(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"status-controller\"",
        );
        let response = client
            .post("/hold?for=15m")
            .header(header::AUTHORIZATION, "Bearer wrong")
            .send()
            .await;
        response.assert_status(StatusCode::UNAUTHORIZED);

        let bearer = format!("Bearer {TOKEN}");
        let response = client
            .post("/hold?for=25h")
            .header(header::AUTHORIZATION, &bearer)
            .send()
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;

        let response = client
            .post("/hold?for=15m&reason=kernel+update&by=alice")
            .header(header::AUTHORIZATION, &bearer)
            .send()
            .await;
        response.assert_status(StatusCode::CREATED);
        let body = response.json().await;
        body.value().object().get("by").assert_string("alice");
        body.value()
            .object()
            .get("reason")
            .assert_string("kernel update");

        let response = client.get("/hold").send().await;
        response.assert_status_is_ok();
        response
            .json()
            .await
            .value()
            .object()
            .get("by")
            .assert_string("alice");
        let response = client.get("/ready").send().await;
        let body = response.json().await;
        let hold = body
            .value()
            .object()
            .get("checks")
            .object()
            .get("hold")
            .object();
        hold.get("status").assert_string("UP");
        assert!(hold.get("detail").string().contains("by alice until"));
        let response = client
            .post("/hold?for=1h")
            .header(header::AUTHORIZATION, &bearer)
            .send()
            .await;
        response.assert_status_is_ok();
        let by = response
            .json()
            .await
            .value()
            .object()
            .get("by")
            .string()
            .to_owned();
        assert!(!by.is_empty(), "the client, when nobody is named");

        let response = client
            .delete("/hold")
            .header(header::AUTHORIZATION, &bearer)
            .send()
            .await;
        response.assert_status_is_ok();
        let response = client
            .delete("/hold")
            .header(header::AUTHORIZATION, &bearer)
            .send()
            .await;
        assert_error(response, StatusCode::NOT_FOUND, "not_held").await;
        client
            .get("/hold")
            .send()
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_damaged_hold_file_is_not_ready_until_the_operator_clears_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(crate::hold_file::FILE_NAME);
        std::fs::write(&path, b"{not json").expect("writes");
        let file = crate::hold_file::HoldFile::in_dir(
            dir.path(),
            shared::runtime::state_dir::User::current("status-controller"),
        );
        let client = TestClient::new(app(server_state_over(
            ControllerState::new(),
            Some(TOKEN),
            Some(file),
        )));

        let response = client.get("/ready").send().await;
        response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        let body = response.json().await;
        let hold = body
            .value()
            .object()
            .get("checks")
            .object()
            .get("hold")
            .object();
        hold.get("status").assert_string("DOWN");
        let detail = hold.get("detail").string().to_owned();
        assert!(detail.contains(&path.display().to_string()), "{detail}");
        assert!(detail.contains("DELETE /hold"), "{detail}");
        let response = client.get("/hold").send().await;
        assert_error(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            "hold_file_damaged",
        )
        .await;
        let answer = client.get("/health").send().await.json().await;
        answer.value().object().get("hold").assert_null();
        assert!(answer
            .value()
            .object()
            .get("hold_problem")
            .string()
            .contains("damaged"));

        let response = client
            .delete("/hold")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .send()
            .await;
        response.assert_status_is_ok();
        response
            .json()
            .await
            .value()
            .object()
            .get("ended")
            .assert_string("damaged_hold_file");
        assert!(!path.exists(), "removed");
        let body = client.get("/ready").send().await.json().await;
        body.value()
            .object()
            .get("checks")
            .object()
            .get("hold")
            .object()
            .get("status")
            .assert_string("UP");
    }

    #[test]
    fn the_state_shows_no_token() {
        let state = server_state(ControllerState::new(), Some(TOKEN));
        let shown = format!("{state:?}");
        assert!(shown.contains("token: Some(Secret("), "{shown}");
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    #[tokio::test]
    async fn without_a_token_the_hold_is_forbidden() {
        let client = TestClient::new(app(server_state(ControllerState::new(), None)));
        for response in [
            client.post("/hold?for=15m").send().await,
            client
                .delete("/hold")
                .header(header::AUTHORIZATION, "Bearer anything")
                .send()
                .await,
        ] {
            assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
        }
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
        let client = TestClient::new(app(server_state(state, None)));
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
            assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        }
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_answer_json() {
        let response = client().get("/nope").send().await;
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;

        let response = client().post("/actions").send().await;
        response.assert_header(header::ALLOW, "GET, HEAD");
        assert_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
        for (method, path, allowed) in [
            (Method::PUT, "/hold", "GET, HEAD, POST, DELETE"),
            (Method::DELETE, "/health", "GET, HEAD"),
            (Method::POST, "/openapi.json", "GET, HEAD"),
            (Method::PATCH, "/docs", "GET, HEAD"),
        ] {
            let response = client().request(method.clone(), path).send().await;
            response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
            response.assert_header(header::ALLOW, allowed);
        }
    }

    #[tokio::test]
    async fn the_document_and_swagger_ui_are_served_under_a_strict_policy() {
        let client = client();
        let response = client.get("/openapi.json").send().await;
        response.assert_status_is_ok();
        let document = response.json().await;
        document
            .value()
            .object()
            .get("info")
            .object()
            .get("title")
            .assert_string("dockstate status-controller");
        for (path, content_type) in [
            ("/docs", "text/html; charset=utf-8"),
            ("/docs/", "text/html; charset=utf-8"),
            (api_docs::SCRIPT_PATH, "text/javascript; charset=utf-8"),
            (api_docs::STYLE_PATH, "text/css; charset=utf-8"),
            (api_docs::INIT_PATH, "text/javascript; charset=utf-8"),
        ] {
            let response = client.get(path).send().await;
            response.assert_status_is_ok();
            response.assert_content_type(content_type);
            response.assert_header(
                header::CONTENT_SECURITY_POLICY,
                api_docs::CONTENT_SECURITY_POLICY,
            );
        }
        let page = client.get("/docs").send().await.0.into_body();
        let page = page.into_string().await.expect("text");
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(page.contains("<title>dockstate status-controller — API docs</title>"));
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
