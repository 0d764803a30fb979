//! The API types. They serialise with serde (snake_case fields, RFC 3339 UTC times); with the `openapi`
//! feature they also describe themselves to poem-openapi, so `/docs` documents exactly what is sent.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::namespace_modes::SharedNamespaces;
use crate::ports::PortMapping;
use crate::spec_summary::{SpecChange, SpecSummary};

/// The label that sets a container's policy: `heal` (default), `observe` or `ignore`.
pub const POLICY_LABEL: &str = "dockstate.policy";

/// The label that opts a member in to being put back to its snapshot spec when it is `changed`: value
/// [`CHANGED_RECREATE`], read from the member's snapshot spec. Without it a change is only reported.
pub const CHANGED_LABEL: &str = "dockstate.changed";

/// The value of [`CHANGED_LABEL`] that asks for the recreate.
pub const CHANGED_RECREATE: &str = "recreate";

/// A container's lifecycle state, as the Docker engine names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl ContainerState {
    /// Every state, in the order Docker documents them.
    pub const ALL: [ContainerState; 7] = [
        Self::Created,
        Self::Running,
        Self::Paused,
        Self::Restarting,
        Self::Removing,
        Self::Exited,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A state name that Docker does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown container state `{0}`: use one of created, running, paused, restarting, removing, exited, dead")]
pub struct UnknownState(pub String);

impl FromStr for ContainerState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// The result of a container's HEALTHCHECK; `none` when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Health {
    #[default]
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A container's own restart policy (`--restart`), as the engine names it: what the engine does when the
/// container's process exits. An empty name is the engine's default, `no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "kebab-case"))]
#[serde(rename_all = "kebab-case")]
#[derive(strum::IntoStaticStr, strum::Display, strum::EnumString)]
#[strum(serialize_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restarted by the engine.
    No,
    /// Restarted whenever it exits.
    Always,
    /// Restarted whenever it exits, unless it was stopped on request.
    UnlessStopped,
    /// Restarted when it exits with a non-zero code.
    OnFailure,
}

impl RestartPolicy {
    /// The policy the engine names `name` (`""` is `no`); `None` for a name dockstate does not know.
    pub fn from_engine(name: &str) -> Option<Self> {
        match name.trim() {
            "" => Some(Self::No),
            other => other.parse().ok(),
        }
    }

    /// Whether the engine restarts a container with this policy after its process exited with `exit_code`
    /// by itself.
    pub fn restarts_after(self, exit_code: i64) -> bool {
        match self {
            Self::No => false,
            Self::Always | Self::UnlessStopped => true,
            Self::OnFailure => exit_code != 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How a container's last exit came about, as status-api read it from the engine's events: a stop or kill
/// shows as a `kill` (and `stop`) event before the `die`, the kernel's OOM killer as an `oom` event, a process
/// that ended by itself as a bare `die`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum ExitCause {
    /// The process ended by itself: a `die` event with no `kill`, `stop` or `oom` before it.
    Natural,
    /// Someone asked for it (`docker stop`, `docker kill`, compose, the controller): a `kill` or `stop` event
    /// came first.
    Requested,
    /// The kernel's OOM killer ended it (an `oom` event, or `State.OOMKilled`).
    Oom,
    /// status-api did not see the exit: it happened before status-api started, or while its event stream
    /// was down.
    Unseen,
}

impl ExitCause {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Which engine status-api watches, from the component its `GET /version` names: Podman's Docker-compatible
/// service calls itself `Podman Engine`; anything else is Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum EngineKind {
    #[default]
    Docker,
    Podman,
}

/// The engine being watched, as it describes itself in `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct Engine {
    /// `docker` or `podman`.
    pub kind: EngineKind,
    /// The engine's own version (`27.3.1`, `4.3.1`).
    pub version: String,
    /// The Docker API version it speaks (`1.47`; Podman 4.3 says `1.41`).
    pub api_version: String,
}

impl Engine {
    /// The engine in words, for logs and readiness details: `Podman 4.3.1 (API 1.41)`.
    pub fn describe(&self) -> String {
        let name = match self.kind {
            EngineKind::Docker => "Docker",
            EngineKind::Podman => "Podman",
        };
        format!("{name} {} (API {})", self.version, self.api_version)
    }
}

/// What dockstate may do with a container, from its `dockstate.policy` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Policy {
    /// Report drift and heal it (the default).
    #[default]
    Heal,
    /// Report drift, never act on it.
    Observe,
    /// Never report the container as unexpected and never touch it.
    Ignore,
}

impl Policy {
    /// A container's effective policy, from its labels, in this order:
    ///
    /// 1. another orchestrator manages it — `ignore`, whatever `dockstate.policy` says, because that
    ///    orchestrator already keeps it the way it should be and fighting it would stop its work:
    ///    - a Swarm task or service container: any label starting `com.docker.swarm.`;
    ///    - a Kubernetes pod on a cri-dockerd node: any label starting `io.kubernetes.`;
    ///    - a `docker compose run` one-off: `com.docker.compose.oneoff=True`;
    /// 2. `dockstate.policy`: no label or `heal` → `heal`; `ignore` → `ignore`; `observe`, or any value
    ///    dockstate does not understand → `observe` (a typo must never give a tool licence to stop things).
    ///
    /// Drift, the controller's plan and its re-check before a stop all read the policy here.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        if managed_elsewhere(labels) {
            return Self::Ignore;
        }
        match labels.get(POLICY_LABEL).map(|value| value.trim()) {
            None | Some("heal") => Self::Heal,
            Some("ignore") => Self::Ignore,
            Some(_) => Self::Observe,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Label prefixes that mark a container another orchestrator manages: Swarm, and Kubernetes through
/// cri-dockerd.
pub const ORCHESTRATOR_LABEL_PREFIXES: [&str; 2] = ["com.docker.swarm.", "io.kubernetes."];

/// The label docker compose puts on the containers of `docker compose run` (value `True`).
pub const COMPOSE_ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// Whether another orchestrator manages a container with these labels (see [`Policy::from_labels`]).
fn managed_elsewhere(labels: &BTreeMap<String, String>) -> bool {
    labels.keys().any(|key| {
        ORCHESTRATOR_LABEL_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
    }) || labels
        .get(COMPOSE_ONEOFF_LABEL)
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// A label selector: `KEY` (the label is present, any value) or `KEY=VALUE` (present with that value).
/// Used for `--scope` and the `label` filter of `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    pub key: String,
    pub value: Option<String>,
}

/// Why a label selector could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "label selector `{0}` has an empty key: write KEY or KEY=VALUE, e.g. `app` or `app=web`"
    )]
    EmptyKey(String),
    #[error("label selector `{0}` contains whitespace or control characters in its key: write KEY or KEY=VALUE")]
    BadKey(String),
}

impl LabelSelector {
    /// Whether a container with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match (&self.value, labels.get(&self.key)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(wanted), Some(actual)) => wanted == actual,
        }
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = match s.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (s, None),
        };
        if key.is_empty() {
            return Err(SelectorError::EmptyKey(s.to_owned()));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SelectorError::BadKey(s.to_owned()));
        }
        Ok(Self {
            key: key.to_owned(),
            value,
        })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={}", self.key, value),
            None => f.write_str(&self.key),
        }
    }
}

/// The scope every view and action is limited to: `None` is the whole host.
pub type Scope = Option<LabelSelector>;

/// A scope as text, normalised so that two spellings of one scope compare equal: the selector parsed and
/// written back, `None` for the whole host (no scope, or an empty one). Text that does not parse is kept as
/// it is, trimmed, so it equals only itself.
pub fn normalized_scope(text: Option<&str>) -> Option<String> {
    let text = text?.trim();
    if text.is_empty() {
        return None;
    }
    Some(
        text.parse::<LabelSelector>()
            .map_or_else(|_| text.to_owned(), |selector| selector.to_string()),
    )
}

/// A (normalised) scope named for people: `` `team=web` `` or `no scope (the whole host)`.
pub fn scope_in_words(scope: Option<&str>) -> String {
    match scope {
        Some(scope) => format!("`{scope}`"),
        None => "no scope (the whole host)".to_owned(),
    }
}

/// Whether a container with these labels is inside the scope.
pub fn in_scope(scope: &Scope, labels: &BTreeMap<String, String>) -> bool {
    scope
        .as_ref()
        .is_none_or(|selector| selector.matches(labels))
}

/// One container as status-api sees it. Never holds the environment or anything else that may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct ContainerStatus {
    /// The full container id (64 hex characters).
    pub id: String,
    /// The container's name, without the leading `/`. Identity in the snapshot is by name.
    pub name: String,
    /// The image reference the container was created from, e.g. `nginx:1.27`.
    pub image: String,
    /// The id (`sha256:…`) of that image.
    pub image_id: String,
    /// The lifecycle state.
    pub state: ContainerState,
    /// The HEALTHCHECK result; `none` when the container has no healthcheck.
    pub health: Health,
    /// The exit code of the last run; null while the container is running or paused, or has never run. A
    /// restarting container has the exit code it is restarting from, as `docker ps` shows it.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub exit_code: Option<i64>,
    /// How many times the engine restarted the container under its restart policy.
    pub restart_count: i64,
    /// When the container was created.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub created_at: Option<DateTime<Utc>>,
    /// When the container last started; null if it never has.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub started_at: Option<DateTime<Utc>>,
    /// When the container last stopped; null if it never has.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub finished_at: Option<DateTime<Utc>>,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// Its ports as `docker ps` shows them: each port published on a host address, and each one only
    /// exposed (no `host_ip`, no `host_port`); sorted by container port, protocol, host address and host
    /// port. Empty while it does not run: the engine binds ports when it starts a container.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// Whether a container of this name is in the snapshot.
    pub in_snapshot: bool,
    /// The effective policy, from the labels: `ignore` for containers another orchestrator manages (any
    /// `com.docker.swarm.*` or `io.kubernetes.*` label, or `com.docker.compose.oneoff=True`), else what
    /// `dockstate.policy` says (`heal` when absent, `observe` for a value dockstate does not know).
    #[serde(default)]
    pub policy: Policy,
    /// The containers whose network, IPC or PID namespace it joined (`--network container:X`, …), by the
    /// id the engine holds; empty when it joined none.
    #[serde(default)]
    pub shares: SharedNamespaces,
    /// True while the state shown comes from an engine event that status-api has not yet confirmed with an
    /// inspect. A `die` shows the container exited at once, but it may be on its way out (`docker rm -f`
    /// sends `die`, then `destroy`), so the controller waits for it to settle before it acts on it.
    #[serde(default)]
    pub settling: bool,
    /// The container's own restart policy (`no`, `always`, `unless-stopped`, `on-failure`); null when the
    /// engine names one dockstate does not know.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub restart_policy: Option<RestartPolicy>,
    /// How the last exit came about: `natural` (the process ended by itself), `requested` (a stop or kill),
    /// `oom`, or `unseen` (status-api was not watching when it happened). Null while the container runs or is
    /// paused, and when it never ran.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub exit_cause: Option<ExitCause>,
    /// For a member of the snapshot, every field in which its spec differs from the snapshot's, beside the
    /// image (which drift compares by reference): what makes it `changed`. Empty when it is the same, when it
    /// is not a member, and until status-api has inspected it. Never an environment value.
    #[serde(default)]
    pub spec_changes: Vec<SpecChange>,
    /// The id of the image its image reference (`image`) names on the host now; null when status-api has not
    /// asked yet, the reference is an image id, or it names no image any more. Another id than `image_id`:
    /// the tag was pulled or built again since the container was created (`stale_image` drift).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub tag_image_id: Option<String>,
    /// What of its spec drift compares, environment values only as digests. In status-api's memory only:
    /// never serialised, so no answer carries it.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", oai(skip))]
    pub spec: Option<std::sync::Arc<SpecSummary>>,
}

impl ContainerStatus {
    /// The effective policy, computed from the labels (so an answer without the `policy` field is judged
    /// the same way).
    pub fn policy(&self) -> Policy {
        Policy::from_labels(&self.labels)
    }
}

/// The answer of `GET /status`. Not `Eq`: the event lag is a float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct StatusResponse {
    /// Rises by at least one on every change status-api sees. Pass it back as `since` to long-poll.
    pub revision: u64,
    /// When status-api last confirmed its whole view against the engine (a full list). Between two such
    /// moments the event stream keeps the view current.
    pub observed_at: DateTime<Utc>,
    /// When the snapshot this view is compared with was taken.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub snapshot_taken_at: Option<DateTime<Utc>>,
    /// The label selector limiting what status-api sees; null for the whole host.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub scope: Option<String>,
    /// Whether the engine's event stream is connected, so that the view is live.
    pub events_live: bool,
    /// The engine being watched (Docker or Podman); null until it has answered `GET /version`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub engine: Option<Engine>,
    /// status-api's full-resync interval, in seconds. A view older than twice this is stale.
    pub resync_interval_seconds: u64,
    /// The id of the container status-api runs in, when it runs in one. Nothing ever acts on it.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub server_container_id: Option<String>,
    /// Whether the engine answered status-api's last request to it (the `docker` check of `/ready`).
    #[serde(default)]
    pub engine_reachable: bool,
    /// Whether `/ready` would answer 200 at this revision: the engine answers, the snapshot is loaded and
    /// the event stream is live. With `events_live` and `observed_at` it is all a client needs to judge
    /// whether this answer may be acted on, without a second request.
    #[serde(default)]
    pub ready: bool,
    /// When not ready, the failing checks in words, as `/ready` states them (`events: event stream not
    /// connected`); null when ready.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub not_ready_reason: Option<String>,
    /// Engine events status-api has received but not yet applied to this view. A client should not act on
    /// a view with a long backlog: what it shows is behind the engine.
    #[serde(default)]
    pub event_backlog: u64,
    /// How far behind the engine this view is, in seconds: the age (engine event time → when this revision
    /// was served) of the oldest event received but not yet applied; 0 when the backlog is empty.
    #[serde(default)]
    pub event_lag_seconds: f64,
    /// The containers, sorted by name.
    pub containers: Vec<ContainerStatus>,
}

/// A member of the snapshot, as `GET /snapshot` shows it: no environment, no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct SnapshotMember {
    /// The container's name: its identity.
    pub name: String,
    /// The id it had when the snapshot was taken.
    pub id: String,
    /// The image reference it was created from.
    pub image: String,
    /// The id (`sha256:…`) of the image it ran. Empty in snapshots written before dockstate recorded it.
    #[serde(default)]
    pub image_id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The containers whose network, IPC or PID namespace it joined, by name (an id only when status-api
    /// could not name the owner); empty when it joined none.
    #[serde(default)]
    pub shares: SharedNamespaces,
}

/// The answer of `GET /snapshot` and `POST /snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct SnapshotSummary {
    /// When the baseline was taken.
    pub taken_at: DateTime<Utc>,
    /// The scope it was taken in; null for the whole host.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub scope: Option<String>,
    /// The containers that were running then, sorted by name.
    pub containers: Vec<SnapshotMember>,
}

/// Everything needed to recreate a snapshotted container. Holds its environment: served only with the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct ContainerSpec {
    /// The container's name.
    pub name: String,
    /// The id it had when the snapshot was taken.
    pub id: String,
    /// The image reference.
    pub image: String,
    /// The image id it ran.
    pub image_id: String,
    /// The engine's `Config` object from inspect (Docker's own field names): command, entrypoint,
    /// environment, labels, exposed ports, healthcheck, user, working directory.
    pub config: serde_json::Value,
    /// The engine's `HostConfig` object: mounts, binds, port bindings, restart policy, network mode, limits.
    pub host_config: serde_json::Value,
    /// The engine's `NetworkSettings.Networks` object: the networks it was attached to, with aliases.
    pub networks: serde_json::Value,
    /// The engine's `Mounts` array: every volume and bind as mounted, with the names the engine gave the
    /// anonymous volumes, so that a recreate re-attaches them and their data. Null in snapshots written
    /// before dockstate recorded it (format 1 either way: older files read as they are).
    #[serde(default)]
    pub mounts: serde_json::Value,
}

impl ContainerSpec {
    pub fn member(&self) -> SnapshotMember {
        SnapshotMember {
            name: self.name.clone(),
            id: self.id.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            labels: labels_of_config(&self.config),
            shares: SharedNamespaces::from_host_config(&self.host_config),
        }
    }
}

/// The labels in a Docker `Config` object.
pub fn labels_of_config(config: &serde_json::Value) -> BTreeMap<String, String> {
    config
        .get("Labels")
        .and_then(|labels| labels.as_object())
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The ways a host can differ from its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum DriftKind {
    /// In the snapshot, exists, not running (created, exited or dead), and not `completed`.
    Stopped,
    /// In the snapshot, paused.
    Paused,
    /// In the snapshot, no container of that name exists.
    Removed,
    /// In the snapshot, running, and its healthcheck reports unhealthy.
    Unhealthy,
    /// Running, not in the snapshot, and its policy is not `ignore`.
    Unexpected,
    /// In the snapshot by name, but its spec differs from the snapshot's: another image reference (compared
    /// normalised: `nginx` is `docker.io/library/nginx:latest`), or any other field (`changes` names each).
    /// Reported, never acted on, unless the member is labelled `dockstate.changed=recreate`.
    Changed,
    /// In the snapshot, running, and it shares the network, IPC or PID namespace of a container that is
    /// gone, not running, replaced under its name, or started again since: it has lost that namespace.
    Orphaned,
    /// In the snapshot, and its process exited with code 0 by itself (or while status-api was not watching)
    /// and its own restart policy (`no`, `on-failure`) would not restart it: a job that finished. Reported,
    /// never acted on.
    Completed,
    /// In the snapshot, otherwise in sync, and the image reference it was created from now names another
    /// image on the host (pulled or built again, not recreated): reported, never acted on.
    StaleImage,
}

impl DriftKind {
    pub const ALL: [DriftKind; 9] = [
        Self::Stopped,
        Self::Paused,
        Self::Removed,
        Self::Unhealthy,
        Self::Unexpected,
        Self::Changed,
        Self::Orphaned,
        Self::Completed,
        Self::StaleImage,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One difference between the host and its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct DriftItem {
    /// What kind of difference.
    pub kind: DriftKind,
    /// The container's name.
    pub name: String,
    /// The id of the container as it is now; for `removed`, the id it had in the snapshot.
    pub id: String,
    /// Its state now; null when it no longer exists.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub state: Option<ContainerState>,
    /// The policy its labels ask for (for `removed`, the labels it had in the snapshot).
    pub policy: Policy,
    /// A sentence for people: what differs.
    pub detail: String,
    /// For `changed`, each field that differs, the image among them; empty for every other kind.
    #[serde(default)]
    pub changes: Vec<SpecChange>,
    /// Since when status-api has seen this drift: the change that began it, or, for a drift that was there
    /// when status-api started, its start. Null where no view follows drift over time (the pure drift rules).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub since: Option<DateTime<Utc>>,
}

/// The answer of `GET /drift`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct DriftResponse {
    /// The revision of the view this drift was computed from.
    pub revision: u64,
    /// True when there is no drift at all.
    pub in_sync: bool,
    /// The differences, sorted by name then kind.
    pub items: Vec<DriftItem>,
}

/// The JSON body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct ErrorBody {
    /// A short machine-readable code, e.g. `bad_request`, `not_found`, `unauthorized`.
    pub error: String,
    /// What was wrong, and how to fix it.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in ContainerState::ALL {
            assert_eq!(state.as_str().parse::<ContainerState>(), Ok(state));
            assert_eq!(
                serde_json::to_string(&state).expect("serialises"),
                format!("\"{state}\"")
            );
        }
        let err = "runing"
            .parse::<ContainerState>()
            .expect_err("typo rejected");
        assert!(err.to_string().contains("runing"));
        assert!(err.to_string().contains("exited"));
    }

    #[test]
    fn restart_policies_read_as_the_engine_names_them() {
        assert_eq!(RestartPolicy::from_engine(""), Some(RestartPolicy::No));
        assert_eq!(RestartPolicy::from_engine("no"), Some(RestartPolicy::No));
        assert_eq!(
            RestartPolicy::from_engine("unless-stopped"),
            Some(RestartPolicy::UnlessStopped)
        );
        assert_eq!(
            RestartPolicy::from_engine("on-failure"),
            Some(RestartPolicy::OnFailure)
        );
        assert_eq!(
            RestartPolicy::from_engine("always"),
            Some(RestartPolicy::Always)
        );
        assert_eq!(RestartPolicy::from_engine("sometimes"), None);
        assert_eq!(
            serde_json::to_value(RestartPolicy::UnlessStopped).expect("serialises"),
            "unless-stopped"
        );
        assert_eq!(RestartPolicy::OnFailure.to_string(), "on-failure");
        assert!(!RestartPolicy::OnFailure.restarts_after(0));
        assert!(RestartPolicy::OnFailure.restarts_after(3));
        assert!(!RestartPolicy::No.restarts_after(3));
        assert!(RestartPolicy::UnlessStopped.restarts_after(0));
        assert_eq!(
            serde_json::to_value(ExitCause::Requested).expect("serialises"),
            "requested"
        );
    }

    #[test]
    fn selectors_parse_key_and_key_value() {
        let key: LabelSelector = "app".parse().expect("key parses");
        assert_eq!(key.value, None);
        assert!(key.matches(&labels(&[("app", "anything")])));
        assert!(!key.matches(&labels(&[("other", "x")])));

        let pair: LabelSelector = "dockstate.test=abc=def".parse().expect("pair parses");
        assert_eq!(pair.key, "dockstate.test");
        assert_eq!(pair.value.as_deref(), Some("abc=def"));
        assert!(pair.matches(&labels(&[("dockstate.test", "abc=def")])));
        assert!(!pair.matches(&labels(&[("dockstate.test", "abc")])));
        assert_eq!(pair.to_string(), "dockstate.test=abc=def");

        let empty_value: LabelSelector = "k=".parse().expect("empty value is a value");
        assert!(empty_value.matches(&labels(&[("k", "")])));
        assert!(!empty_value.matches(&labels(&[("k", "x")])));
    }

    #[test]
    fn malformed_selectors_say_how_to_fix_them() {
        for bad in ["", "=value", "bad key=1", "tab\tkey"] {
            let err = bad.parse::<LabelSelector>().expect_err(bad);
            assert!(err.to_string().contains("KEY=VALUE"), "{err}");
        }
    }

    #[test]
    fn policy_defaults_to_heal_and_unknown_values_only_observe() {
        assert_eq!(Policy::from_labels(&labels(&[])), Policy::Heal);
        assert_eq!(
            Policy::from_labels(&labels(&[(POLICY_LABEL, "heal")])),
            Policy::Heal
        );
        assert_eq!(
            Policy::from_labels(&labels(&[(POLICY_LABEL, "observe")])),
            Policy::Observe
        );
        assert_eq!(
            Policy::from_labels(&labels(&[(POLICY_LABEL, "ignore")])),
            Policy::Ignore
        );
        assert_eq!(
            Policy::from_labels(&labels(&[(POLICY_LABEL, "igonre")])),
            Policy::Observe
        );
    }

    #[test]
    fn other_orchestrators_containers_are_ignored_whatever_their_policy_label() {
        for managed in [
            labels(&[("com.docker.swarm.task.id", "x")]),
            labels(&[("com.docker.swarm.service.name", "web")]),
            labels(&[("io.kubernetes.pod.name", "x")]),
            labels(&[
                ("io.kubernetes.container.name", "x"),
                (POLICY_LABEL, "heal"),
            ]),
            labels(&[(COMPOSE_ONEOFF_LABEL, "True")]),
            labels(&[(COMPOSE_ONEOFF_LABEL, "true"), (POLICY_LABEL, "observe")]),
        ] {
            assert_eq!(Policy::from_labels(&managed), Policy::Ignore, "{managed:?}");
        }
        for own in [
            labels(&[(COMPOSE_ONEOFF_LABEL, "False")]),
            labels(&[("com.docker.compose.service", "web")]),
            labels(&[("com.docker.swarmish", "x")]),
            labels(&[("io.kubernetesish", "x")]),
        ] {
            assert_eq!(Policy::from_labels(&own), Policy::Heal, "{own:?}");
        }
    }

    #[test]
    fn scopes_compare_normalised_and_empty_is_the_whole_host() {
        assert_eq!(normalized_scope(None), None);
        assert_eq!(normalized_scope(Some("")), None);
        assert_eq!(normalized_scope(Some("  ")), None);
        assert_eq!(
            normalized_scope(Some(" team=web ")).as_deref(),
            Some("team=web")
        );
        assert_eq!(normalized_scope(Some("app")).as_deref(), Some("app"));
        assert_ne!(
            normalized_scope(Some("app")),
            normalized_scope(Some("app="))
        );
        assert_eq!(normalized_scope(Some("=x")).as_deref(), Some("=x"));
        assert_eq!(scope_in_words(Some("team=web")), "`team=web`");
        assert!(scope_in_words(None).contains("whole host"));
    }

    #[test]
    fn scope_none_is_the_whole_host() {
        assert!(in_scope(&None, &labels(&[])));
        let scope = Some("team=a".parse().expect("parses"));
        assert!(in_scope(&scope, &labels(&[("team", "a")])));
        assert!(!in_scope(&scope, &labels(&[("team", "b")])));
    }

    #[test]
    fn spec_member_takes_labels_from_the_engine_config() {
        let spec = ContainerSpec {
            name: "web".into(),
            id: "a".repeat(64),
            image: "busybox:latest".into(),
            image_id: "sha256:00".into(),
            config: serde_json::json!({"Image": "busybox:latest", "Env": ["SECRET=1"], "Labels": {"team": "a"}}),
            host_config: serde_json::json!({}),
            networks: serde_json::json!({}),
            mounts: serde_json::Value::Null,
        };
        let member = spec.member();
        assert_eq!(member.labels, labels(&[("team", "a")]));
        assert!(member.shares.is_empty());
        assert!(!serde_json::to_string(&member)
            .expect("serialises")
            .contains("SECRET"));
    }
}
