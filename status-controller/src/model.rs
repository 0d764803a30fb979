//! The controller's vocabulary: what it can do to a container ([`ActionKind`], [`Action`]), how that went
//! ([`ActionResult`], [`Outcome`]), why it held back ([`HoldReason`], [`Hold`]), the `--unexpected` policy, and
//! what an action may rely on ([`ActionContext`]), what status-api showed ([`Observed`]), and what the loop
//! asks of whoever carries actions out ([`ActionRunner`]). Every other module speaks it; it imports nothing of
//! the crate.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shared::{
    ContainerState, ContainerStatus, DriftKind, LabelSelector, Policy, Scope, SelectorError,
    StatusResponse,
};
use tokio::sync::Notify;

/// What the controller does about one container.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ActionKind {
    /// `docker start`: a snapshotted container is stopped.
    Start,
    /// `docker unpause`: a snapshotted container is paused.
    Unpause,
    /// `docker restart`: a snapshotted container runs but its healthcheck fails, or it shares the namespace
    /// of a container that started again after it (orphaned).
    Restart,
    /// Create the container again from its snapshot spec, then start it: it was removed.
    Recreate,
    /// `docker stop` and `docker rm`, then create it again from its snapshot spec and start it: it shares
    /// the namespace of a container that was recreated, and the engine holds the old one's id, or it is
    /// `dead` (a removal failed); either way it can never start or restart again as it is.
    Replace,
    /// `docker stop`: a container that is not in the snapshot runs (`--unexpected stop`).
    Stop,
    /// `docker stop` then `docker rm`: a container that is not in the snapshot runs (`--unexpected remove`).
    Remove,
    /// Nothing on the host: the drift is reported (policy `observe`, `changed`, no token, …).
    Report,
    /// Nothing yet: the engine is already moving the container (restarting, being removed), a namespace
    /// owner must run first, or compose is replacing it.
    Wait,
}

impl ActionKind {
    /// The name, as metrics labels, logs and `/actions` show it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether carrying it out changes the host.
    pub fn changes_host(self) -> bool {
        !matches!(self, Self::Report | Self::Wait)
    }

    /// Whether it brings a snapshotted container back (as opposed to clearing an unexpected one away).
    pub fn heals(self) -> bool {
        matches!(
            self,
            Self::Start | Self::Unpause | Self::Restart | Self::Recreate | Self::Replace
        )
    }
}

/// How an action went.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ActionResult {
    /// Done.
    Ok,
    /// Nothing to do after all: the engine showed it already so right before acting (already running, not
    /// paused, already stopped) or answered 304. Never counted as a heal.
    Noop,
    /// The container no longer exists (404): the next change decides.
    Gone,
    /// The engine refused because of the container's state (409: being removed, paused, a name taken): the
    /// next change decides. Retried with backoff.
    Conflict,
    /// Refused by the re-check right before acting (out of scope, policy changed, the pair's own, recovered,
    /// name taken), or shutting down.
    Skipped,
    /// The engine or status-api refused or failed; `detail` says why. Retried with backoff.
    Failed,
    /// `--dry-run`: planned, not carried out.
    DryRun,
    /// Drift reported, nothing done (policy observe, changed, no token, `--unexpected ignore`).
    Reported,
    /// Failed too often: left alone until the quarantine ends.
    Quarantined,
    /// A quarantine ended before its time because the container is not the one that kept failing: a new
    /// container id under the name, or a run that stayed up past the backoff's quiet period. `detail` says
    /// which.
    QuarantineEnded,
}

impl ActionResult {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What to do with a running container that is not in the snapshot (policy `heal`): `--unexpected`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    clap::ValueEnum,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum Unexpected {
    /// Stop it (gracefully, with its own stop timeout); it stays on the host.
    Stop,
    /// Stop it, then remove it (its volumes are kept).
    Remove,
    /// Report it, never touch it.
    Ignore,
}

impl Unexpected {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a pass held back instead of acting.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum HoldReason {
    /// status-api did not answer.
    ApiUnreachable,
    /// status-api says it is not ready (`ready: false` in `/status`).
    ApiNotReady,
    /// status-api's Docker event stream is down, so its view is not live.
    EventsDown,
    /// status-api's view is older than twice its resync interval.
    Stale,
    /// status-api has no snapshot, or it changed while being read.
    NoSnapshot,
    /// status-api answered something the controller does not understand.
    BadAnswer,
    /// status-api watches another scope than the controller's `--scope`, or its snapshot was taken in
    /// another scope than it watches.
    ScopeMismatch,
    /// status-api's view is behind the engine: too many events not yet applied, or the oldest of them too
    /// old (`event_backlog`, `event_lag_seconds` in `/status`).
    ViewBehind,
    /// An operator's maintenance hold (`POST /hold`): counted once when it is set. Never a hold of the view:
    /// the controller stays ready while it lasts.
    Maintenance,
}

impl HoldReason {
    /// The `reason` label of `dockstate_controller_holds_total`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How the delivery of a notification went: the `result` label of
/// `dockstate_controller_notifications_total`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum NotificationResult {
    /// The receiver accepted it (2xx).
    Sent,
    /// Given up after the retries (or refused with a 4xx that retrying cannot mend).
    Failed,
    /// Never sent: the queue to that receiver was full.
    Dropped,
}

impl NotificationResult {
    /// The `result` label.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What went wrong with the action journal's file: the `problem` label of
/// `dockstate_controller_journal_problems_total`. None of them stops an action; `/health` says the latest.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JournalProblem {
    /// A line read back at start was torn (a crash mid-write) or damaged, and was skipped.
    SkippedLine,
    /// The file cannot be used at all (a symbolic link, another owner, unreadable): the journal is kept in
    /// memory only until the next start.
    Unusable,
    /// An action could not be appended (disk full, I/O error): it is in memory, not in the file.
    WriteFailed,
}

impl JournalProblem {
    /// The `problem` label.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A hold: its reason and a sentence about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub reason: HoldReason,
    pub detail: String,
}

impl Hold {
    pub fn new(reason: HoldReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// One decision: a container, what to do with it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The container's name: its identity.
    pub container: String,
    /// Its id now; for a removed container, the id it had in the snapshot.
    pub id: String,
    pub kind: ActionKind,
    /// The difference this answers; `None` for [`ActionKind::Wait`].
    pub drift: Option<DriftKind>,
    /// The policy its labels ask for.
    pub policy: Policy,
    /// Its state now; `None` when it no longer exists.
    pub state: Option<ContainerState>,
    /// A sentence for people.
    pub reason: String,
    /// For a [`ActionKind::Wait`] of a dependant: the owner of a namespace it joins, which must run before
    /// anything can be done for it. Such a wait is drift; a wait for the engine (`None`) is not.
    pub waits_for: Option<String>,
    /// For a [`ActionKind::Wait`] that ends by itself (compose replacing a container of its own): when the
    /// plan should look again, even if nothing changes meanwhile.
    pub retry_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What an action may rely on, from the pass that planned it.
#[derive(Debug, Clone, Default)]
pub struct ActionContext {
    /// The scope status-api reports. Nothing outside it is touched.
    pub scope: Scope,
    /// The pair's own container ids: never touched.
    pub protected: Vec<String>,
    /// The names in the snapshot: an unexpected container is never one of them.
    pub members: HashSet<String>,
}

/// How an action went, and what there is to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: ActionResult,
    pub detail: Option<String>,
    /// The id the container has now, when the action gave it a new one (a recreate).
    pub new_id: Option<String>,
}

impl Outcome {
    pub fn ok(detail: Option<String>) -> Self {
        Self {
            result: ActionResult::Ok,
            detail,
            new_id: None,
        }
    }

    /// Recreated: done, under the new id `id`; `notes` say what could not be as it was (an image found only
    /// by its id, a volume made afresh).
    pub fn recreated(id: &str, notes: &[String]) -> Self {
        let mut detail = format!("recreated as {}", shared::short_id(id));
        for note in notes {
            detail.push_str("; ");
            detail.push_str(note);
        }
        Self {
            result: ActionResult::Ok,
            detail: Some(detail),
            new_id: Some(id.to_owned()),
        }
    }

    pub fn noop(detail: impl Into<String>) -> Self {
        Self {
            result: ActionResult::Noop,
            detail: Some(detail.into()),
            new_id: None,
        }
    }

    pub fn gone() -> Self {
        Self {
            result: ActionResult::Gone,
            detail: Some("no such container any more: the next change decides".into()),
            new_id: None,
        }
    }

    /// 409: the engine refused because of the container's state; `message` is the engine's own.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            result: ActionResult::Conflict,
            detail: Some(message.into()),
            new_id: None,
        }
    }

    pub fn skipped(detail: impl Into<String>) -> Self {
        Self {
            result: ActionResult::Skipped,
            detail: Some(detail.into()),
            new_id: None,
        }
    }

    /// A failure, with the whole error chain as the detail.
    pub fn failed(err: &dyn std::error::Error) -> Self {
        Self {
            result: ActionResult::Failed,
            detail: Some(shared::error_chain(err)),
            new_id: None,
        }
    }
}

/// What status-api showed at one revision, with its scope parsed: everything the plan looks at
/// besides the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub revision: u64,
    /// The scope status-api reports. Nothing outside it is ever acted on.
    pub scope: Scope,
    /// The container status-api runs in, if it runs in one: never touched.
    pub server_container_id: Option<String>,
    /// Every container in scope, in every state, each shared with the answer it came in.
    pub containers: Vec<Arc<ContainerStatus>>,
}

/// One answer of `GET /status?all=true` as the controller holds it: the answer's own fields (`status`, whose
/// `containers` stay empty) and its containers, each behind an `Arc`, so that a container unchanged since the
/// last answer is shared with it rather than decoded again (the status client's `ReadStatus`).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusAnswer {
    pub status: StatusResponse,
    pub containers: Vec<Arc<ContainerStatus>>,
}

impl From<StatusResponse> for StatusAnswer {
    fn from(mut status: StatusResponse) -> Self {
        let containers = std::mem::take(&mut status.containers)
            .into_iter()
            .map(Arc::new)
            .collect();
        Self { status, containers }
    }
}

impl TryFrom<StatusAnswer> for Observed {
    type Error = SelectorError;

    fn try_from(StatusAnswer { status, containers }: StatusAnswer) -> Result<Self, Self::Error> {
        let scope = status
            .scope
            .as_deref()
            .filter(|scope| !scope.is_empty())
            .map(str::parse::<LabelSelector>)
            .transpose()?;
        Ok(Self {
            revision: status.revision,
            scope,
            server_container_id: status.server_container_id,
            containers,
        })
    }
}

/// An action that ended, as the loop learns of it ([`ActionRunner::take_ended`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub container: String,
    pub kind: ActionKind,
    pub result: ActionResult,
    /// The id the container has after the action, when the action gave it a new one (a recreate).
    pub new_id: Option<String>,
    /// Why it was planned (the action's reason), for notifications.
    pub reason: String,
    /// The drift it answered, if any.
    pub drift: Option<shared::DriftKind>,
    /// What happened, when there is more to say than the result: for a failure, the error.
    pub detail: Option<String>,
    /// When it started.
    pub time: chrono::DateTime<chrono::Utc>,
}

impl Ended {
    /// Whether the engine changed the container: the loop must then see that change in status-api's view
    /// before it plans for the container again.
    pub fn changed_the_host(&self) -> bool {
        self.result == ActionResult::Ok
    }
}

/// How long a long poll asks status-api to wait for a change.
pub const LONG_POLL_WAIT: Duration = Duration::from_secs(30);

/// What the loop needs from whatever carries actions out (the executor): at most one action per container at
/// a time, word when one ends, and a drain on shutdown. A trait, so the loop is tested with a fake and does
/// not depend on how actions reach the engine.
pub trait ActionRunner: Send + Sync + 'static {
    /// Whether an action on `container` is under way.
    fn is_busy(&self, container: &str) -> bool;
    /// Starts carrying out `action`; false when the container already has one under way. `seen_at` is when
    /// its drift was first seen, for the heal-time metric.
    fn dispatch(&self, action: Action, context: Arc<ActionContext>, seen_at: Instant) -> bool;
    /// Notified whenever an action ends.
    fn finished(&self) -> Arc<Notify>;
    /// The actions that ended since the last call, oldest first.
    fn take_ended(&self) -> Vec<Ended>;
    /// Starts no queued action and waits up to `timeout` for those under way; false if some still ran.
    fn drain(&self, timeout: Duration) -> impl Future<Output = bool> + Send;
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    #[test]
    fn names_are_snake_case_and_match_serde() {
        assert_eq!(ActionResult::DryRun.as_str(), "dry_run");
        assert_eq!(ActionKind::Recreate.to_string(), "recreate");
        assert_eq!(HoldReason::ApiNotReady.as_str(), "api_not_ready");
        for result in ActionResult::VARIANTS {
            assert_eq!(
                serde_json::to_value(result).expect("serialises"),
                result.as_str()
            );
        }
        for kind in ActionKind::VARIANTS {
            assert_eq!(
                serde_json::to_value(kind).expect("serialises"),
                kind.as_str()
            );
        }
        for reason in HoldReason::VARIANTS {
            assert_eq!(
                serde_json::to_value(reason).expect("serialises"),
                reason.as_str()
            );
        }
        for problem in JournalProblem::VARIANTS {
            assert_eq!(
                serde_json::to_value(problem).expect("serialises"),
                problem.as_str()
            );
        }
    }

    #[test]
    fn the_observed_scope_comes_from_status_api() {
        let status = StatusResponse {
            revision: 3,
            observed_at: chrono::Utc::now(),
            snapshot_taken_at: None,
            scope: Some("team=a".into()),
            events_live: true,
            engine: None,
            resync_interval_seconds: 30,
            server_container_id: Some("f".repeat(64)),
            engine_reachable: true,
            ready: true,
            not_ready_reason: None,
            event_backlog: 0,
            event_lag_seconds: 0.0,
            containers: vec![],
        };
        let observed = Observed::try_from(StatusAnswer::from(status.clone())).expect("valid scope");
        assert_eq!(
            observed.scope.map(|s| s.to_string()).as_deref(),
            Some("team=a")
        );
        assert_eq!(observed.server_container_id, Some("f".repeat(64)));
        let whole_host = Observed::try_from(StatusAnswer::from(StatusResponse {
            scope: None,
            ..status.clone()
        }))
        .expect("no scope");
        assert_eq!(whole_host.scope, None);
        assert!(Observed::try_from(StatusAnswer::from(StatusResponse {
            scope: Some("=broken".into()),
            ..status
        }))
        .is_err());
    }
}
