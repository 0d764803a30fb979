//! The HTTP API (SPEC "Endpoints"), described with poem-openapi so that `/docs` teaches it to someone who has
//! never seen it. Every operation answers from the in-memory [`View`]; none calls the engine, except
//! `POST /snapshot`, which has to read what runs now.

mod http;
mod payload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::{EndpointExt, IntoEndpoint, Route};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, OpenApiService, SecurityScheme, Tags};
use serde::Serialize;
use shared::{
    ContainerSpec, ContainerState, ContainerStatus, DriftResponse, ErrorBody, LabelSelector,
    SnapshotSummary, StatusResponse,
};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

pub use self::http::route_of;
use self::payload::{to_json, JsonBytes};
use crate::inventory::{error_chain, Inventory, View};
use crate::metrics::Metrics;
use crate::snapshot::{Baseline, SnapshotError};

/// How long a long poll waits when `since` is given without `wait`.
pub const DEFAULT_WAIT_SECONDS: u64 = 30;
/// The longest `wait` accepted.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// What the operations share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub inventory: Inventory,
    pub baseline: Arc<Baseline>,
    pub metrics: Metrics,
    /// The bearer token; `None` turns re-baselining and spec access off.
    pub token: Option<Arc<str>>,
    /// Turns true on shutdown, so long polls answer at once instead of holding the drain.
    pub shutdown: watch::Receiver<bool>,
}

/// The whole application: the operations, `/docs`, `/openapi.json`, and the JSON-error/metrics edge.
pub fn app(state: ApiState) -> impl poem::Endpoint {
    let metrics = state.metrics.clone();
    let service = openapi_service(state.clone());
    let spec = service.spec_endpoint();
    let page: Arc<std::sync::OnceLock<Bytes>> = Arc::default();
    Route::new()
        .at("/docs", docs_endpoint(state.clone(), page.clone()))
        .at("/docs/", docs_endpoint(state, page))
        .at("/openapi.json", spec)
        .nest("/", service)
        .into_endpoint()
        .around(move |endpoint, request| http::around(endpoint, request, metrics.clone()))
}

fn openapi_service(state: ApiState) -> OpenApiService<StatusApi, ()> {
    OpenApiService::new(
        StatusApi(state),
        "dockstate status-api",
        env!("CARGO_PKG_VERSION"),
    )
    .description(API_DESCRIPTION)
}

/// Swagger UI, served from the binary. The page embeds the UI's 1.5 MB of script, so it is built on the first
/// visit rather than at start: a status-api nobody browses does not carry it in memory.
fn docs_endpoint(state: ApiState, page: Arc<std::sync::OnceLock<Bytes>>) -> impl poem::Endpoint {
    poem::endpoint::make_sync(move |_| {
        let body = page
            .get_or_init(|| Bytes::from(openapi_service(state.clone()).swagger_ui_html()))
            .clone();
        poem::Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(body)
    })
}

const API_DESCRIPTION: &str = "\
status-api watches one Docker engine and compares it with a baseline snapshot taken when it first started.

* `GET /status` — the containers now (running only, like `docker ps`; `all=true` for every state). \
Long-poll with `since=<revision>&wait=<seconds>` to be told of the next change within milliseconds.
* `GET /drift` — how the host differs from the snapshot: stopped, paused, removed, unhealthy, unexpected, changed.
* `GET /snapshot` — the baseline; `POST /snapshot` re-baselines (bearer token).
* `GET /health`, `GET /ready`, `GET /metrics` — for probes and Prometheus.

status-api never changes anything on the host; status-controller acts on the drift. No answer without the token \
ever contains a container's environment. Errors are `{\"error\": code, \"message\": what to fix}`.";

#[derive(Debug, Tags)]
enum Tag {
    /// The live state of the containers.
    Status,
    /// The baseline the host is compared with.
    Snapshot,
    /// Differences between the host and the snapshot.
    Drift,
    /// Health, readiness and metrics, for probes and monitoring.
    Operations,
}

/// The token from `--token-file`, sent as `Authorization: Bearer <token>`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer")]
struct BearerToken(Bearer);

/// A bearer token, or none: the operation itself says 401 (missing or wrong) or 403 (none configured).
#[derive(Debug, SecurityScheme)]
enum TokenAuth {
    Bearer(BearerToken),
    #[oai(fallback)]
    Missing,
}

#[derive(Debug)]
struct StatusApi(ApiState);

/// `{"status": "UP"}`.
#[derive(Debug, Object)]
struct HealthBody {
    /// Always `UP` while the process serves.
    status: String,
}

/// One readiness check.
#[derive(Debug, Object, Serialize)]
struct CheckBody {
    /// `UP` or `DOWN`.
    status: String,
    /// Why.
    detail: String,
}

/// Readiness: every check must be `UP`.
#[derive(Debug, Object, Serialize)]
struct ReadyBody {
    /// `READY` or `NOT_READY`.
    status: String,
    /// `docker` (the engine answers), `snapshot` (the baseline is loaded), `events` (the event stream is live).
    checks: BTreeMap<String, CheckBody>,
}

#[derive(Debug, ApiResponse)]
enum RootAnswer {
    /// The API is described at `/docs`.
    #[oai(status = 303)]
    SeeDocs(#[oai(header = "Location")] String),
}

#[derive(Debug, ApiResponse)]
enum StatusAnswer {
    /// The containers, sorted by name.
    #[oai(status = 200)]
    Ok(JsonBytes<StatusResponse>),
    /// A parameter is malformed; the message says which and how to fix it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum ContainerAnswer {
    /// The container.
    #[oai(status = 200)]
    Ok(JsonBytes<ContainerStatus>),
    /// An id prefix matches several containers.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No container in scope has that name, id or id prefix.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum SnapshotAnswer {
    /// The baseline.
    #[oai(status = 200)]
    Ok(JsonBytes<SnapshotSummary>),
    /// No snapshot yet: it is taken as soon as Docker answers.
    #[oai(status = 503)]
    NotYet(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum RebaselineAnswer {
    /// The new baseline, now in force.
    #[oai(status = 201)]
    Created(JsonBytes<SnapshotSummary>),
    /// The token is missing or wrong.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The server has no token configured (`--token-file`), so re-baselining over HTTP is off.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The snapshot could not be written to the state directory.
    #[oai(status = 500)]
    WriteFailed(Json<ErrorBody>),
    /// The Docker engine did not answer; nothing changed.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum SpecAnswer {
    /// The recreation spec, in the engine's own field names. Contains the environment.
    #[oai(status = 200)]
    Ok(JsonBytes<ContainerSpec>),
    /// The token is missing or wrong.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The server has no token configured, so specs are not served.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No member of the snapshot has that name.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// No snapshot yet.
    #[oai(status = 503)]
    NotYet(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum DriftAnswer {
    /// The drift of the current revision.
    #[oai(status = 200)]
    Ok(JsonBytes<DriftResponse>),
    /// No snapshot yet, so nothing to compare with.
    #[oai(status = 503)]
    NotYet(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum ReadyAnswer {
    /// Docker answers, the snapshot is loaded and the event stream is live.
    #[oai(status = 200)]
    Ready(Json<ReadyBody>),
    /// At least one check is down; `checks` says which and why.
    #[oai(status = 503)]
    NotReady(Json<ReadyBody>),
}

fn error(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: code.to_owned(),
        message: message.into(),
    })
}

#[OpenApi]
impl StatusApi {
    /// A person who opens the bare address lands on the docs.
    #[oai(path = "/", method = "get", hidden)]
    async fn root(&self) -> RootAnswer {
        RootAnswer::SeeDocs("/docs".to_owned())
    }

    /// Live status of the containers
    ///
    /// Served from memory that the engine's event stream keeps current. Without filters it lists the running
    /// containers, like `docker ps`. Long poll: with `since=R` it answers at once if the revision is already
    /// above `R` (or below it: status-api restarted), else as soon as anything changes or after `wait`
    /// seconds — a client reacts to a change within milliseconds without hammering the server.
    #[oai(
        path = "/status",
        method = "get",
        tag = "Tag::Status",
        operation_id = "getStatus"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn status(
        &self,
        /// Include containers in every state, not only running ones.
        all: Query<Option<bool>>,
        /// Only containers in this state (implies `all=true`).
        state: Query<Option<ContainerState>>,
        /// Only containers carrying this label: `KEY` or `KEY=VALUE`. Repeat it to require several.
        label: Query<Vec<String>>,
        /// Only containers whose name contains this text.
        name: Query<Option<String>>,
        /// Long poll: the revision of the last answer you have.
        since: Query<Option<u64>>,
        /// Long poll: how many seconds to wait for a change, 0 to 60 (default 30 when `since` is given).
        wait: Query<Option<u64>>,
    ) -> StatusAnswer {
        let selectors = match label
            .0
            .iter()
            .map(|raw| raw.parse::<LabelSelector>())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(selectors) => selectors,
            Err(err) => {
                return StatusAnswer::BadRequest(error(
                    "bad_request",
                    format!("query parameter `label`: {err}"),
                ))
            }
        };
        let wait_seconds = wait.0.unwrap_or(DEFAULT_WAIT_SECONDS);
        if wait_seconds > MAX_WAIT_SECONDS {
            return StatusAnswer::BadRequest(error(
                "bad_request",
                format!("query parameter `wait` is {wait_seconds}: use a whole number of seconds from 0 to {MAX_WAIT_SECONDS}"),
            ));
        }
        if let Some(since) = since.0 {
            self.wait_for_change(since, Duration::from_secs(wait_seconds))
                .await;
        }

        let view = self.0.inventory.view();
        let all = all.0.unwrap_or(false) || state.0.is_some();
        let filtered = state.0.is_some() || !selectors.is_empty() || name.0.is_some();
        if !filtered {
            return StatusAnswer::Ok(JsonBytes::from_bytes(view.cached_body(all, |view| {
                render_status(view, |c| all || c.state == ContainerState::Running)
            })));
        }
        let body = render_status(&view, |container| {
            (all || container.state == ContainerState::Running)
                && state.0.is_none_or(|wanted| container.state == wanted)
                && selectors
                    .iter()
                    .all(|selector| selector.matches(&container.labels))
                && name
                    .0
                    .as_deref()
                    .is_none_or(|part| container.name.contains(part))
        });
        StatusAnswer::Ok(JsonBytes::from_bytes(body))
    }

    /// One container
    ///
    /// By exact name, full id, or a unique id prefix. Any state.
    #[oai(
        path = "/status/:name_or_id",
        method = "get",
        tag = "Tag::Status",
        operation_id = "getContainerStatus"
    )]
    async fn container(
        &self,
        /// The container's name, its id, or an unambiguous prefix of its id.
        name_or_id: Path<String>,
    ) -> ContainerAnswer {
        let view = self.0.inventory.view();
        let wanted = name_or_id.0.as_str();
        if let Some(found) = view
            .containers
            .iter()
            .find(|c| c.name == wanted || c.id == wanted)
        {
            return ContainerAnswer::Ok(JsonBytes::of(found));
        }
        let by_prefix: Vec<&ContainerStatus> = view
            .containers
            .iter()
            .filter(|c| !wanted.is_empty() && c.id.starts_with(wanted))
            .collect();
        match by_prefix.as_slice() {
            [one] => ContainerAnswer::Ok(JsonBytes::of(*one)),
            [] => ContainerAnswer::NotFound(error(
                "not_found",
                format!("no container in scope is named `{wanted}` or has an id starting with it; GET /status?all=true lists them"),
            )),
            many => ContainerAnswer::BadRequest(error(
                "ambiguous",
                format!("id prefix `{wanted}` matches {} containers: give more characters of the id", many.len()),
            )),
        }
    }

    /// The baseline snapshot
    ///
    /// The containers that were running when the baseline was taken: names, ids, images and labels — never
    /// their environment.
    #[oai(
        path = "/snapshot",
        method = "get",
        tag = "Tag::Snapshot",
        operation_id = "getSnapshot"
    )]
    async fn snapshot(&self) -> SnapshotAnswer {
        match self.0.inventory.snapshot() {
            Some(snapshot) => SnapshotAnswer::Ok(JsonBytes::of(&snapshot.summary())),
            None => SnapshotAnswer::NotYet(no_snapshot()),
        }
    }

    /// Re-baseline
    ///
    /// Replaces the snapshot with the containers running now (in scope), writes it to disk, then serves it.
    /// Needs `Authorization: Bearer <token>` with the token from `--token-file`.
    #[oai(
        path = "/snapshot",
        method = "post",
        tag = "Tag::Snapshot",
        operation_id = "retakeSnapshot"
    )]
    async fn retake(&self, auth: TokenAuth) -> RebaselineAnswer {
        if let Err(denied) = self.authorize(&auth) {
            return match denied {
                Denied::NoTokenConfigured(body) => RebaselineAnswer::Forbidden(body),
                Denied::BadToken(body) => RebaselineAnswer::Unauthorized(body),
            };
        }
        match self.0.baseline.retake().await {
            Ok(snapshot) => RebaselineAnswer::Created(JsonBytes::of(&snapshot.summary())),
            Err(err @ SnapshotError::Docker(_)) => RebaselineAnswer::Unavailable(error(
                "docker_unavailable",
                format!(
                    "{}; the previous snapshot is still in force",
                    error_chain(&err)
                ),
            )),
            Err(err) => RebaselineAnswer::WriteFailed(error(
                "write_failed",
                format!(
                    "{}; the previous snapshot is still in force",
                    error_chain(&err)
                ),
            )),
        }
    }

    /// Recreation spec of a snapshot member
    ///
    /// Everything needed to recreate the container: the engine's `Config` (with the environment),
    /// `HostConfig` and networks as they were when the snapshot was taken. Needs the bearer token.
    #[oai(
        path = "/snapshot/containers/:name/spec",
        method = "get",
        tag = "Tag::Snapshot",
        operation_id = "getContainerSpec"
    )]
    async fn spec(
        &self,
        auth: TokenAuth,
        /// The member's container name.
        name: Path<String>,
    ) -> SpecAnswer {
        if let Err(denied) = self.authorize(&auth) {
            return match denied {
                Denied::NoTokenConfigured(body) => SpecAnswer::Forbidden(body),
                Denied::BadToken(body) => SpecAnswer::Unauthorized(body),
            };
        }
        let Some(snapshot) = self.0.inventory.snapshot() else {
            return SpecAnswer::NotYet(no_snapshot());
        };
        match snapshot.spec(&name.0) {
            Some(spec) => SpecAnswer::Ok(JsonBytes::of(spec)),
            None => SpecAnswer::NotFound(error(
                "not_found",
                format!(
                    "the snapshot has no container named `{}`; GET /snapshot lists its members",
                    name.0
                ),
            )),
        }
    }

    /// Drift from the snapshot
    ///
    /// How the host differs from the baseline, computed from the same view `/status` serves, at the same
    /// revision.
    #[oai(
        path = "/drift",
        method = "get",
        tag = "Tag::Drift",
        operation_id = "getDrift"
    )]
    async fn drift(&self) -> DriftAnswer {
        let view = self.0.inventory.view();
        if view.snapshot.is_none() {
            return DriftAnswer::NotYet(no_snapshot());
        }
        let items = view.drift().to_vec();
        DriftAnswer::Ok(JsonBytes::of(&DriftResponse {
            revision: view.revision,
            in_sync: items.is_empty(),
            items,
        }))
    }

    /// Liveness
    ///
    /// 200 while the process serves.
    #[oai(
        path = "/health",
        method = "get",
        tag = "Tag::Operations",
        operation_id = "getHealth"
    )]
    async fn health(&self) -> Json<HealthBody> {
        Json(HealthBody {
            status: "UP".into(),
        })
    }

    /// Readiness
    ///
    /// 200 when Docker answers, the snapshot is loaded and the event stream is live; else 503, and `checks`
    /// says what is missing.
    #[oai(
        path = "/ready",
        method = "get",
        tag = "Tag::Operations",
        operation_id = "getReady"
    )]
    async fn ready(&self) -> ReadyAnswer {
        let checks = self.0.inventory.checks();
        let ready = checks.values().all(|check| check.ok);
        let body = ReadyBody {
            status: if ready { "READY" } else { "NOT_READY" }.into(),
            checks: checks
                .into_iter()
                .map(|(name, check)| {
                    (
                        name.to_owned(),
                        CheckBody {
                            status: if check.ok { "UP" } else { "DOWN" }.into(),
                            detail: check.detail,
                        },
                    )
                })
                .collect(),
        };
        if ready {
            ReadyAnswer::Ready(Json(body))
        } else {
            ReadyAnswer::NotReady(Json(body))
        }
    }

    /// Prometheus metrics
    ///
    /// Text exposition format: requests, container and drift gauges, engine events, revision, process.
    #[oai(
        path = "/metrics",
        method = "get",
        tag = "Tag::Operations",
        operation_id = "getMetrics"
    )]
    async fn metrics(&self) -> PlainText<String> {
        PlainText(self.0.metrics.render(&self.0.inventory))
    }
}

enum Denied {
    NoTokenConfigured(Json<ErrorBody>),
    BadToken(Json<ErrorBody>),
}

impl StatusApi {
    /// Constant-time comparison, so the answer time tells nothing about how much of a guess was right.
    fn authorize(&self, auth: &TokenAuth) -> Result<(), Denied> {
        let Some(expected) = &self.0.token else {
            return Err(Denied::NoTokenConfigured(error(
                "forbidden",
                "this server has no token configured: start status-api with --token-file to enable it",
            )));
        };
        match auth {
            TokenAuth::Bearer(BearerToken(bearer))
                if bool::from(bearer.token.as_bytes().ct_eq(expected.as_bytes())) =>
            {
                Ok(())
            }
            TokenAuth::Bearer(_) => Err(Denied::BadToken(error(
                "unauthorized",
                "the bearer token is wrong: send the token from status-api's --token-file",
            ))),
            TokenAuth::Missing => Err(Denied::BadToken(error(
                "unauthorized",
                "this endpoint needs a token: send `Authorization: Bearer <token>` with the token from --token-file",
            ))),
        }
    }

    async fn wait_for_change(&self, since: u64, wait: Duration) {
        let mut revisions = self.0.inventory.subscribe();
        let mut shutdown = self.0.shutdown.clone();
        // A `since` above the current revision comes from before a restart: answer at once.
        let current = *revisions.borrow_and_update();
        if current != since {
            return;
        }
        tokio::select! {
            _ = revisions.wait_for(|revision| *revision != since) => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

fn no_snapshot() -> Json<ErrorBody> {
    error(
        "no_snapshot",
        "no snapshot yet: it is taken as soon as the Docker engine answers; GET /ready shows what is missing",
    )
}

/// `StatusResponse` by reference, so a view is serialised without cloning its containers. A test keeps the
/// two in step.
#[derive(Serialize)]
struct StatusBody<'a> {
    revision: u64,
    observed_at: DateTime<Utc>,
    snapshot_taken_at: Option<DateTime<Utc>>,
    scope: Option<String>,
    events_live: bool,
    resync_interval_seconds: u64,
    server_container_id: Option<&'a str>,
    containers: Vec<&'a ContainerStatus>,
}

fn render_status(view: &View, keep: impl Fn(&ContainerStatus) -> bool) -> Bytes {
    to_json(&StatusBody {
        revision: view.revision,
        observed_at: view.observed_at,
        snapshot_taken_at: view.snapshot.as_ref().map(|snapshot| snapshot.taken_at),
        scope: view.scope.as_ref().map(ToString::to_string),
        events_live: view.events_live,
        resync_interval_seconds: view.resync_interval.as_secs(),
        server_container_id: view.own_container_id.as_deref(),
        containers: view.containers.iter().filter(|c| keep(c)).collect(),
    })
}

/// An error answer for use outside the operations (e.g. the edge), in the same shape.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> poem::Response {
    http::error_json(status, code, message)
}

#[cfg(test)]
mod tests {
    use poem::test::TestClient;

    use super::*;
    use crate::docker::DockerReader;
    use crate::snapshot::{Snapshot, SnapshotFile};

    /// The app over an inventory nobody feeds: what a client sees before Docker has answered.
    fn cold_app(token: Option<&str>) -> (impl poem::Endpoint, Inventory, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = Inventory::new(
            Some("team=a".parse().expect("selector")),
            Duration::from_secs(30),
        );
        let docker = DockerReader::connect(Some("tcp://127.0.0.1:9")).expect("lazy client");
        let baseline = Arc::new(Baseline::new(
            SnapshotFile::new(dir.path()),
            docker,
            inventory.clone(),
        ));
        let (_, shutdown) = watch::channel(false);
        let state = ApiState {
            inventory: inventory.clone(),
            baseline,
            metrics: Metrics::new(),
            token: token.map(Arc::from),
            shutdown,
        };
        (app(state), inventory, dir)
    }

    #[tokio::test]
    async fn before_docker_answers_everything_says_what_is_missing() {
        let (app, _inventory, _dir) = cold_app(None);
        let client = TestClient::new(app);

        let ready = client.get("/ready").send().await;
        ready.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value =
            serde_json::from_str(&ready.0.into_body().into_string().await.expect("body"))
                .expect("json");
        assert_eq!(body["status"], "NOT_READY");
        assert_eq!(body["checks"]["docker"]["status"], "DOWN");
        assert_eq!(body["checks"]["snapshot"]["status"], "DOWN");
        assert_eq!(body["checks"]["events"]["status"], "DOWN");

        for path in ["/snapshot", "/drift"] {
            let response = client.get(path).send().await;
            response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
            response.assert_json(serde_json::json!({
                "error": "no_snapshot",
                "message": "no snapshot yet: it is taken as soon as the Docker engine answers; GET /ready shows what is missing",
            })).await;
        }
        client.get("/health").send().await.assert_status_is_ok();
        let status = client.get("/status").send().await;
        status.assert_status_is_ok();
        let body: StatusResponse =
            serde_json::from_str(&status.0.into_body().into_string().await.expect("body"))
                .expect("a StatusResponse");
        assert_eq!(body.scope.as_deref(), Some("team=a"));
        assert!(!body.events_live);
    }

    #[tokio::test]
    async fn the_cached_status_body_is_a_status_response() {
        let (app, inventory, _dir) = cold_app(Some("t"));
        inventory.set_snapshot(Snapshot {
            format: crate::snapshot::FORMAT,
            taken_at: Utc::now(),
            scope: Some("team=a".into()),
            containers: vec![],
        });
        let client = TestClient::new(app);
        for path in ["/status", "/status?all=true", "/status?state=running"] {
            let response = client.get(path).send().await;
            response.assert_status_is_ok();
            response.assert_content_type("application/json; charset=utf-8");
            let text = response.0.into_body().into_string().await.expect("body");
            let parsed: StatusResponse =
                serde_json::from_str(&text).expect("every field of StatusResponse");
            assert_eq!(parsed.revision, inventory.revision());
            assert!(parsed.snapshot_taken_at.is_some());
        }
        let drift = client.get("/drift").send().await;
        drift.assert_status_is_ok();
        let text = drift.0.into_body().into_string().await.expect("body");
        let parsed: DriftResponse = serde_json::from_str(&text).expect("a DriftResponse");
        assert!(parsed.in_sync);
    }
}
