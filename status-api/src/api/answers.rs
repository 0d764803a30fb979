//! What the operations answer: one `ApiResponse` enum per operation with its documented statuses, the bodies
//! of `/health` and `/ready`, the `{error, message}` shape, and the `/status` body rendered from a view.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object};
use serde::Serialize;
use shared::{
    ContainerSpec, ContainerStatus, DriftResponse, Engine, ErrorBody, SnapshotSummary,
    StatusResponse,
};

use super::payload::{to_json, JsonBytes};
use crate::view::View;

/// `{"status": "UP"}`.
#[derive(Debug, Object)]
#[oai(example)]
pub(super) struct HealthBody {
    /// Always `UP` while the process serves.
    pub(super) status: String,
}

/// One readiness check.
#[derive(Debug, Object, Serialize)]
#[oai(example)]
pub(super) struct CheckBody {
    /// `UP` or `DOWN`.
    pub(super) status: String,
    /// Why.
    pub(super) detail: String,
}

/// Readiness: every check must be `UP`.
#[derive(Debug, Object, Serialize)]
#[oai(example)]
pub(super) struct ReadyBody {
    /// `READY` or `NOT_READY`.
    pub(super) status: String,
    /// `docker` (the engine answers), `snapshot` (the baseline is loaded), `events` (the event stream is live),
    /// `scope` (the baseline was taken in status-api's scope), `state_dir` (no other status-api holds the
    /// state directory's lock; names the lock and the pid holding it when one does).
    pub(super) checks: BTreeMap<String, CheckBody>,
    /// The engine watched (Docker or Podman); null until it has answered `GET /version`.
    #[oai(nullable)]
    pub(super) engine: Option<Engine>,
}

impl Example for HealthBody {
    fn example() -> Self {
        Self {
            status: "UP".into(),
        }
    }
}

impl Example for CheckBody {
    fn example() -> Self {
        Self {
            status: "UP".into(),
            detail: "the Docker engine answers".into(),
        }
    }
}

impl Example for ReadyBody {
    fn example() -> Self {
        let up = |detail: &str| CheckBody {
            status: "UP".into(),
            detail: detail.into(),
        };
        Self {
            status: "READY".into(),
            checks: BTreeMap::from([
                ("docker".to_owned(), up("the Docker engine answers")),
                ("events".to_owned(), up("the event stream is live")),
                (
                    "snapshot".to_owned(),
                    up("1 container, taken 2026-11-30T09:05:00Z"),
                ),
            ]),
            engine: Some(Engine::example()),
        }
    }
}

#[derive(Debug, ApiResponse)]
pub(super) enum StatusAnswer {
    /// The containers, sorted by name.
    #[oai(status = 200)]
    Ok(JsonBytes<StatusResponse>),
    /// A parameter is malformed, repeated more than 8 times, or a `name` pattern compiles to more than 32 KiB;
    /// the message says which and how to fix it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// A filtered answer's job failed (`internal`); the message says why.
    #[oai(status = 500)]
    Failed(Json<ErrorBody>),
    /// `busy`: the workers that make filtered answers (`name`, `label`, `state`) and their queue are full, and
    /// no place came free within a second. Retry after the seconds given; answers without filters are never
    /// refused.
    #[oai(status = 503)]
    Busy(
        Json<ErrorBody>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u32,
    ),
}

#[derive(Debug, ApiResponse)]
pub(super) enum ContainerAnswer {
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
pub(super) enum SnapshotAnswer {
    /// The baseline.
    #[oai(status = 200)]
    Ok(JsonBytes<SnapshotSummary>),
    /// No snapshot yet: it is taken as soon as Docker answers.
    #[oai(status = 503)]
    NotYet(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
pub(super) enum RebaselineAnswer {
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
    /// Nothing changed: the Docker engine did not answer (`docker_unavailable`), the state directory is
    /// read-only for status-api (`state_read_only`), or another status-api holds its lock (`state_locked`).
    /// The message says which and how to fix it.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
pub(super) enum MemberEditAnswer {
    /// The edited baseline, now in force (with a new `taken_at`).
    #[oai(status = 200)]
    Ok(JsonBytes<SnapshotSummary>),
    /// The token is missing or wrong.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The server has no token configured (`--token-file`), so editing the baseline over HTTP is off.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `DELETE`: the snapshot has no such member (`not_found`). `PUT`: no container has that name
    /// (`not_found`).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// `PUT`: the container is not running (`not_running`), outside status-api's scope (`out_of_scope`) or
    /// started with `--rm` (`removes_itself`); either: the snapshot was taken in another scope
    /// (`scope_mismatch`). Nothing changed.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The snapshot could not be written to the state directory; the previous one stays in force.
    #[oai(status = 500)]
    WriteFailed(Json<ErrorBody>),
    /// Nothing changed: no snapshot yet (`no_snapshot`), the engine did not answer (`docker_unavailable`),
    /// the state directory is read-only (`state_read_only`) or locked by another status-api (`state_locked`).
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
pub(super) enum SpecAnswer {
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
pub(super) enum DriftAnswer {
    /// The drift of the current revision.
    #[oai(status = 200)]
    Ok(JsonBytes<DriftResponse>),
    /// The snapshot was taken in another scope than status-api's (`scope_mismatch`): comparing the two would
    /// call every container of the new scope unexpected. The message names both scopes and the two ways
    /// out: start status-api with the snapshot's scope, or re-baseline with `POST /snapshot`.
    #[oai(status = 409)]
    ScopeMismatch(Json<ErrorBody>),
    /// No snapshot yet, so nothing to compare with.
    #[oai(status = 503)]
    NotYet(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
pub(super) enum ReadyAnswer {
    /// Docker answers, the snapshot is loaded and the event stream is live.
    #[oai(status = 200)]
    Ready(Json<ReadyBody>),
    /// At least one check is down; `checks` says which and why.
    #[oai(status = 503)]
    NotReady(Json<ReadyBody>),
}

pub(super) fn error(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: code.to_owned(),
        message: message.into(),
    })
}

pub(super) fn no_snapshot() -> Json<ErrorBody> {
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
    engine: Option<&'a Engine>,
    resync_interval_seconds: u64,
    server_container_id: Option<&'a str>,
    engine_reachable: bool,
    ready: bool,
    not_ready_reason: Option<&'a str>,
    event_backlog: u64,
    event_lag_seconds: f64,
    containers: Vec<&'a ContainerStatus>,
}

pub(super) fn render_status(view: &View, keep: impl Fn(&ContainerStatus) -> bool) -> Bytes {
    to_json(&StatusBody {
        revision: view.revision,
        observed_at: view.observed_at,
        snapshot_taken_at: view.baseline.as_ref().map(|baseline| baseline.taken_at()),
        scope: view.scope.as_ref().map(ToString::to_string),
        events_live: view.events_live,
        engine: view.engine.as_ref(),
        resync_interval_seconds: view.resync_interval.as_secs(),
        server_container_id: view.own_container_id.as_deref(),
        engine_reachable: view.readiness.engine_reachable(),
        ready: view.readiness.ready,
        not_ready_reason: view.readiness.reason.as_deref(),
        event_backlog: u64::try_from(view.event_backlog).unwrap_or(u64::MAX),
        event_lag_seconds: view.event_lag.as_secs_f64(),
        containers: view
            .containers
            .iter()
            .map(AsRef::as_ref)
            .filter(|c| keep(c))
            .collect(),
    })
}
