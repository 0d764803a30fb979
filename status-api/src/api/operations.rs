//! The operations (SPEC "Endpoints"), as poem-openapi describes them in `/docs`.

use std::time::Duration;

use poem::http::HeaderMap;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::OpenApi;
use shared::{error_chain, ContainerState, ContainerStatus, DriftItem, DriftResponse};

use super::answers::{
    error, no_snapshot, render_status, CheckBody, ContainerAnswer, DriftAnswer, HealthBody,
    MemberEditAnswer, ReadyAnswer, ReadyBody, RebaselineAnswer, SnapshotAnswer, SpecAnswer,
    StatusAnswer,
};
use super::auth::{authorize, BearerToken, Denied};
use super::filter::{listed_by_default, FilterError, StatusQuery};
use super::params::{texts, ContainerName, FilterText, LabelRule, NameRule};
use super::payload::JsonBytes;
use super::workers::JobError;
use super::{ApiState, Tag, DEFAULT_WAIT_SECONDS};
use crate::baseline::{EditError, SnapshotError};
use crate::prepared::{accepts_gzip, Prepared};
use crate::state_dir::StateDirError;

/// The operations, over the state they share.
#[derive(Debug)]
pub(super) struct StatusApi(pub(super) ApiState);

#[OpenApi]
impl StatusApi {
    /// The answer to a request for a member edit without the right token.
    fn deny(&self, auth: &BearerToken) -> Option<MemberEditAnswer> {
        authorize(self.0.token.as_ref(), auth)
            .err()
            .map(|denied| match denied {
                Denied::NoTokenConfigured(body) => MemberEditAnswer::Forbidden(body),
                Denied::BadToken(body) => MemberEditAnswer::Unauthorized(body),
            })
    }

    /// Live status of the containers
    ///
    /// Served from memory that the engine's event stream keeps current. Without filters it lists what
    /// `docker ps` lists (running, paused and restarting containers); `all=true` every state, like
    /// `docker ps -a`. The filters read as `docker ps --filter` reads them: `state` and `name` may be repeated
    /// and any value may match, `label` may be repeated and all must match, `name` is a regular expression.
    ///
    /// Long poll: with `since=R` it answers at once if the revision is already above `R` (or below it:
    /// status-api restarted), else as soon as anything changes or after `wait` seconds — a client reacts to a
    /// change within milliseconds without hammering the server.
    ///
    /// Each answer also says whether it may be acted on, without a second request to `/ready`:
    /// `engine_reachable` (the `docker` check), `ready` (what `/ready` would answer at this revision) and
    /// `not_ready_reason` (the failing checks in words, null when ready). A change of readiness is a new
    /// revision, so a long poll is told of it.
    ///
    /// Bounded work: at most 7 `state`, 8 `label` (each 1 to 100 characters) and 8 `name` values (each 1
    /// to 64 characters), so that every query within these bounds fits the 16 KiB request line; each `name`
    /// pattern must compile to at most 32 KiB (`\w`, `\d`, `\s` and case folding are ASCII, as in Docker; `(?u)` and Unicode classes are
    /// large). A filtered answer is made on a few worker threads; when they and their short queue are full and
    /// no place comes free within a second, it is 503 `busy` with `Retry-After` — answers without filters are
    /// never refused.
    #[oai(
        path = "/status",
        method = "get",
        tag = "Tag::Status",
        operation_id = "getStatus"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn status(
        &self,
        headers: &HeaderMap,
        /// Include containers in every state, like `docker ps -a`.
        all: Query<Option<bool>>,
        /// Only containers in one of these states (repeat it for several, at most 7 times; implies `all=true`).
        #[oai(validator(max_items = 7))]
        state: Query<Option<Vec<ContainerState>>>,
        /// Only containers carrying this label: `KEY` or `KEY=VALUE`. Repeat it to require several (at most 8).
        #[oai(validator(max_items = 8))]
        label: Query<Option<Vec<FilterText<LabelRule>>>>,
        /// Only containers whose name matches this regular expression, in RE2 syntax (as Docker's Go regexp and
        /// `docker ps --filter name=`: `web` matches names containing web, `^web-1$` exactly that name; no
        /// look-around or back-references). Repeat it: any may match (at most 8).
        #[oai(validator(max_items = 8))]
        name: Query<Option<Vec<FilterText<NameRule>>>>,
        /// Long poll: the revision of the last answer you have.
        #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000000")))]
        since: Query<Option<u64>>,
        /// Long poll: how many seconds to wait for a change, 0 to 60 (default 30 when `since` is given).
        #[oai(validator(minimum(value = "0"), maximum(value = "60")))]
        wait: Query<Option<u64>>,
    ) -> StatusAnswer {
        let query = match StatusQuery::parse(
            all.0.unwrap_or(false),
            state.0.unwrap_or_default(),
            &texts(label.0),
            texts(name.0),
        ) {
            Ok(query) => query,
            Err(err) => return StatusAnswer::BadRequest(error("bad_request", err.to_string())),
        };
        let gzip = accepts_gzip(headers);
        if let Some(since) = since.0 {
            // A poll that will park has its patterns checked now, so a bad one is refused at once, not after
            // the wait; they are not kept while it is parked (a thousand parked polls would hold them all),
            // but compiled again when it answers.
            if query.has_names() && self.0.store.revision() == since {
                let checked = query.clone();
                if let Err(answer) = self.filtered(move || checked.compile().map(drop)).await {
                    return answer;
                }
            }
            let wait_seconds = wait.0.unwrap_or(DEFAULT_WAIT_SECONDS);
            self.wait_for_change(since, Duration::from_secs(wait_seconds))
                .await;
        }

        let view = self.0.store.view();
        if query.is_plain() {
            let all = query.all_states();
            return StatusAnswer::Ok(JsonBytes::encoded(view.cached_body(all, gzip, |view| {
                render_status(view, |c| all || listed_by_default(c.state))
            })));
        }
        let answer = self
            .filtered(move || {
                let filter = query.compile()?;
                let body = render_status(&view, |container| filter.matches(container));
                Ok(Prepared::default().get(gzip, || body))
            })
            .await;
        match answer {
            Ok(encoded) => StatusAnswer::Ok(JsonBytes::encoded(encoded)),
            Err(answer) => answer,
        }
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
        name_or_id: Path<ContainerName>,
    ) -> ContainerAnswer {
        let view = self.0.store.view();
        let wanted = name_or_id.0 .0.as_str();
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
            .map(AsRef::as_ref)
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
    async fn retake(&self, auth: BearerToken) -> RebaselineAnswer {
        if let Err(denied) = authorize(self.0.token.as_ref(), &auth) {
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
        auth: BearerToken,
        /// The member's container name.
        name: Path<ContainerName>,
    ) -> SpecAnswer {
        if let Err(denied) = authorize(self.0.token.as_ref(), &auth) {
            return match denied {
                Denied::NoTokenConfigured(body) => SpecAnswer::Forbidden(body),
                Denied::BadToken(body) => SpecAnswer::Unauthorized(body),
            };
        }
        let Some(baseline) = self.0.keeper.current() else {
            return SpecAnswer::NotYet(no_snapshot());
        };
        match baseline.spec_json(&name.0 .0) {
            Some(spec) => SpecAnswer::Ok(JsonBytes::from_bytes(spec)),
            None => SpecAnswer::NotFound(error(
                "not_found",
                format!(
                    "the snapshot has no container named `{}`; GET /snapshot lists its members",
                    name.0 .0
                ),
            )),
        }
    }

    /// Adopt a container into the baseline
    ///
    /// Records the container now running under `name` as a member: a container that was not in the
    /// snapshot, or a member changed on purpose (a new image or option), whose spec this refreshes — which
    /// clears its `changed` drift. The edited baseline is written like a re-baseline and gets a new
    /// `taken_at`, so the controller follows within its long poll. Needs the bearer token.
    #[oai(
        path = "/snapshot/containers/:name",
        method = "put",
        tag = "Tag::Snapshot",
        operation_id = "adoptMember"
    )]
    async fn adopt(
        &self,
        auth: BearerToken,
        /// The container's name.
        name: Path<ContainerName>,
    ) -> MemberEditAnswer {
        if let Some(denied) = self.deny(&auth) {
            return denied;
        }
        member_edit(self.0.keeper.adopt(&name.0 .0).await)
    }

    /// Forget a member of the baseline
    ///
    /// "Stopped on purpose": the member leaves the baseline, so the controller no longer starts or recreates
    /// it; should it run again, it is reported as unexpected. Written like a re-baseline, with a new
    /// `taken_at`. Needs the bearer token.
    #[oai(
        path = "/snapshot/containers/:name",
        method = "delete",
        tag = "Tag::Snapshot",
        operation_id = "forgetMember"
    )]
    async fn forget(
        &self,
        auth: BearerToken,
        /// The member's name.
        name: Path<ContainerName>,
    ) -> MemberEditAnswer {
        if let Some(denied) = self.deny(&auth) {
            return denied;
        }
        member_edit(self.0.keeper.forget(&name.0 .0).await)
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
        let onsets = view.onsets();
        let items: Vec<DriftItem> = view
            .drift()
            .iter()
            .map(|item| DriftItem {
                since: onsets.since(&item.name, item.kind),
                ..DriftItem::clone(item)
            })
            .collect();
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
            engine: view.engine.clone(),
        };
        if readiness.ready {
            ReadyAnswer::Ready(Json(body))
        } else {
            ReadyAnswer::NotReady(Json(body))
        }
    }

    /// Prometheus metrics
    ///
    /// Text exposition format: requests, the counts by container state and drift kind, a series per container
    /// and per drift (unless `--container-metrics off`), readiness, the snapshot, engine events, revision, process.
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
    /// Runs `job` on the filter workers: a filter it cannot read is 400, a full queue 503 `busy`.
    async fn filtered<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, FilterError> + Send + 'static,
    ) -> Result<T, StatusAnswer> {
        match self.0.workers.run(job).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(err)) => Err(StatusAnswer::BadRequest(error(
                "bad_request",
                err.to_string(),
            ))),
            Err(err @ JobError::Busy { .. }) => {
                Err(StatusAnswer::Busy(error("busy", err.to_string()), 1))
            }
            Err(err @ JobError::Failed) => {
                Err(StatusAnswer::Failed(error("internal", err.to_string())))
            }
        }
    }

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

/// What a member edit answers.
fn member_edit(
    result: Result<std::sync::Arc<crate::baseline::Baseline>, EditError>,
) -> MemberEditAnswer {
    let message = |err: &EditError| error_chain(err);
    match result {
        Ok(baseline) => MemberEditAnswer::Ok(JsonBytes::from_bytes(baseline.summary_json())),
        Err(err @ (EditError::NotAMember(_) | EditError::NoSuchContainer(_))) => {
            MemberEditAnswer::NotFound(error("not_found", message(&err)))
        }
        Err(err @ EditError::NotRunning { .. }) => {
            MemberEditAnswer::Conflict(error("not_running", message(&err)))
        }
        Err(err @ EditError::OutOfScope { .. }) => {
            MemberEditAnswer::Conflict(error("out_of_scope", message(&err)))
        }
        Err(err @ EditError::RemovesItself(_)) => {
            MemberEditAnswer::Conflict(error("removes_itself", message(&err)))
        }
        Err(err @ EditError::ScopeMismatch { .. }) => {
            MemberEditAnswer::Conflict(error("scope_mismatch", message(&err)))
        }
        Err(err @ EditError::NoSnapshot) => {
            MemberEditAnswer::Unavailable(error("no_snapshot", message(&err)))
        }
        Err(EditError::Snapshot(err)) => match err {
            SnapshotError::StateDir(StateDirError::ReadOnly { .. }) => {
                MemberEditAnswer::Unavailable(error(
                    "state_read_only",
                    format!("{}; nothing changed", error_chain(&err)),
                ))
            }
            SnapshotError::StateDir(StateDirError::Locked { .. }) => {
                MemberEditAnswer::Unavailable(error(
                    "state_locked",
                    format!("{}; nothing changed", error_chain(&err)),
                ))
            }
            SnapshotError::Docker(_) => MemberEditAnswer::Unavailable(error(
                "docker_unavailable",
                format!("{}; nothing changed", error_chain(&err)),
            )),
            _ => MemberEditAnswer::WriteFailed(error(
                "write_failed",
                format!(
                    "{}; the previous snapshot is still in force",
                    error_chain(&err)
                ),
            )),
        },
    }
}
