//! The operations (SPEC "Endpoints"), as poem-openapi describes them in `/docs`.

use std::time::Duration;

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::OpenApi;
use shared::{error_chain, ContainerState, ContainerStatus, DriftResponse, LabelSelector};

use super::answers::{
    error, no_snapshot, render_status, CheckBody, ContainerAnswer, DriftAnswer, HealthBody,
    ReadyAnswer, ReadyBody, RebaselineAnswer, RootAnswer, SnapshotAnswer, SpecAnswer, StatusAnswer,
};
use super::auth::{authorize, Denied, TokenAuth};
use super::payload::JsonBytes;
use super::{ApiState, Tag, DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS};
use crate::baseline::SnapshotError;
use crate::state_dir::StateDirError;

/// The operations, over the state they share.
#[derive(Debug)]
pub(super) struct StatusApi(pub(super) ApiState);

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
    ///
    /// Each answer also says whether it may be acted on, without a second request to `/ready`:
    /// `engine_reachable` (the `docker` check), `ready` (what `/ready` would answer at this revision) and
    /// `not_ready_reason` (the failing checks in words, null when ready). A change of readiness is a new
    /// revision, so a long poll is told of it.
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

        let view = self.0.store.view();
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
        let view = self.0.store.view();
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
        match self.0.keeper.current() {
            Some(baseline) => SnapshotAnswer::Ok(JsonBytes::from_bytes(baseline.summary_json())),
            None => SnapshotAnswer::NotYet(no_snapshot()),
        }
    }

    /// Re-baseline
    ///
    /// Replaces the snapshot with the containers running now (in scope), writes it to disk, then serves it.
    /// The new baseline is taken in status-api's scope, so this also ends a scope mismatch. Containers
    /// started with `--rm` are never recorded. Needs `Authorization: Bearer <token>` with the token from
    /// `--token-file`. Refused with 503 when the state directory is read-only for status-api
    /// (`state_read_only`) or another status-api holds its lock (`state_locked`).
    #[oai(
        path = "/snapshot",
        method = "post",
        tag = "Tag::Snapshot",
        operation_id = "retakeSnapshot"
    )]
    async fn retake(&self, auth: TokenAuth) -> RebaselineAnswer {
        if let Err(denied) = authorize(self.0.token.as_deref(), &auth) {
            return match denied {
                Denied::NoTokenConfigured(body) => RebaselineAnswer::Forbidden(body),
                Denied::BadToken(body) => RebaselineAnswer::Unauthorized(body),
            };
        }
        match self.0.keeper.retake().await {
            Ok(baseline) => {
                RebaselineAnswer::Created(JsonBytes::from_bytes(baseline.summary_json()))
            }
            Err(err @ SnapshotError::StateDir(StateDirError::ReadOnly { .. })) => {
                RebaselineAnswer::Unavailable(error(
                    "state_read_only",
                    format!(
                        "{}; the previous snapshot is still in force",
                        error_chain(&err)
                    ),
                ))
            }
            Err(err @ SnapshotError::StateDir(StateDirError::Locked { .. })) => {
                RebaselineAnswer::Unavailable(error(
                    "state_locked",
                    format!("{}; nothing was written", error_chain(&err)),
                ))
            }
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
        if let Err(denied) = authorize(self.0.token.as_deref(), &auth) {
            return match denied {
                Denied::NoTokenConfigured(body) => SpecAnswer::Forbidden(body),
                Denied::BadToken(body) => SpecAnswer::Unauthorized(body),
            };
        }
        let Some(baseline) = self.0.keeper.current() else {
            return SpecAnswer::NotYet(no_snapshot());
        };
        match baseline.spec(&name.0) {
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
    /// revision. The scope belongs to the baseline: when status-api runs with another scope than its snapshot
    /// was taken in, this answers 409 `scope_mismatch` instead of drift.
    #[oai(
        path = "/drift",
        method = "get",
        tag = "Tag::Drift",
        operation_id = "getDrift"
    )]
    async fn drift(&self) -> DriftAnswer {
        let view = self.0.store.view();
        if view.baseline.is_none() {
            return DriftAnswer::NotYet(no_snapshot());
        }
        if let Some(mismatch) = view.scope_mismatch() {
            return DriftAnswer::ScopeMismatch(error("scope_mismatch", mismatch));
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
    /// 200 when Docker answers, the snapshot is loaded, the event stream is live, the snapshot was taken in
    /// status-api's scope and no other status-api holds the state directory; else 503, and `checks` says what
    /// is missing (`docker`, `snapshot`, `events`, `scope`, `state_dir`). `GET /status` carries the same verdict (`ready`, `not_ready_reason`) at the same
    /// revision.
    #[oai(
        path = "/ready",
        method = "get",
        tag = "Tag::Operations",
        operation_id = "getReady"
    )]
    async fn ready(&self) -> ReadyAnswer {
        let view = self.0.store.view();
        let readiness = &view.readiness;
        let body = ReadyBody {
            status: if readiness.ready {
                "READY"
            } else {
                "NOT_READY"
            }
            .into(),
            checks: readiness
                .checks
                .iter()
                .map(|(name, check)| {
                    (
                        (*name).to_owned(),
                        CheckBody {
                            status: if check.ok { "UP" } else { "DOWN" }.into(),
                            detail: check.detail.clone(),
                        },
                    )
                })
                .collect(),
        };
        if readiness.ready {
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
        PlainText(self.0.metrics.render(&self.0.store))
    }
}

impl StatusApi {
    /// Until the revision is past `since`, `wait` is over or the server stops. A `since` above the current
    /// revision comes from before a restart: that answers at once.
    async fn wait_for_change(&self, since: u64, wait: Duration) {
        let mut shutdown = self.0.shutdown.clone();
        tokio::select! {
            () = self.0.store.wait_past(since) => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}
