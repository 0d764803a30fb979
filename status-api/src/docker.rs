//! Read-only access to the Docker engine. [`EngineReader`] is everything status-api may ask of an engine —
//! ping, list, inspect and stream events, nothing else — so its promise never to change the host is in a type, not
//! in a comment; [`DockerReader`] is the real one, and the watch loop's unit tests use a fake.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bollard::models::{
    ContainerInspectResponse, ContainerState as EngineRunState, EventMessage, HealthStatusEnum,
};
use bollard::query_parameters::EventsOptions;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use shared::runtime::engine_json::{self as decode, get_ids, get_json};
use shared::{
    ContainerSpec, ContainerState, ContainerStatus, Engine, EngineKind, ExitCause, Health, Policy,
    PortMapping, RestartPolicy, Scope, SharedNamespaces, SpecSummary,
};

#[cfg(test)]
pub(crate) mod fake;

/// The container events that can change what `/status` shows. Everything else — above all the `exec_*`
/// events every healthcheck run produces — is noise, filtered out by the engine before it reaches us.
pub const WATCHED_EVENTS: &[&str] = &[
    "create",
    "start",
    "restart",
    "stop",
    "kill",
    "die",
    "oom",
    "destroy",
    "pause",
    "unpause",
    "rename",
    "update",
    "health_status",
];

/// The names Podman reports for events that Docker names otherwise, and Podman's own events worth an
/// inspect. Podman's event filter matches its internal names (`died`), not the Docker names it reports
/// (`die`), so on Podman the stream is not filtered by name: [`event_action`] filters it here.
const PODMAN_EVENTS: &[(&str, &str)] = &[
    ("died", "die"),
    ("remove", "destroy"),
    // After `died`, Podman reports `stopped` until it has cleaned up: its end is worth an inspect.
    ("cleanup", "cleanup"),
];

/// What an event's action means to the view, in Docker's words (`remove` → `destroy`, `health_status:
/// healthy` → `health_status`), or `None` for an event that cannot change what `/status` shows.
pub fn event_action(action: &str) -> Option<&'static str> {
    let name = action.split(':').next().unwrap_or_default().trim();
    WATCHED_EVENTS
        .iter()
        .copied()
        .find(|watched| *watched == name)
        .or_else(|| {
            PODMAN_EVENTS
                .iter()
                .find(|(podman, _)| *podman == name)
                .map(|(_, docker)| *docker)
        })
}

/// How long one request to the engine may take to answer (an event stream only has to start).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub use shared::runtime::engine::{EngineError, Result};

/// What status-api reads from an engine. Object-safe (boxed futures), so the watch loop and the baseline
/// keeper hold an `Arc<dyn EngineReader>` and need no type parameter; a boxed future per call costs nothing
/// next to an HTTP round trip to the engine.
pub trait EngineReader: std::fmt::Debug + Send + Sync {
    /// Agrees on an API version with the engine. Called after every reconnect.
    fn negotiate(&self) -> BoxFuture<'_, Result<()>>;

    /// Which engine answers (`GET /version`): Docker, or Podman's Docker-compatible service.
    fn identify(&self) -> BoxFuture<'_, Result<Engine>>;

    /// Asks the engine whether it answers (`GET /_ping`): the cheapest call there is, made every few seconds
    /// so that a hung engine shows as not ready within seconds, not at the next re-list.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;

    /// The ids of the containers in scope; `all` includes the ones that are not running.
    fn list<'a>(&'a self, scope: &'a Scope, all: bool) -> BoxFuture<'a, Result<Vec<String>>>;

    /// One container, or `None` when the engine has no such container (404).
    fn inspect<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ContainerInspectResponse>>>;

    /// One container as the engine wrote it, every field kept — the typed answer of [`inspect`](Self::inspect)
    /// drops what the client library's models do not know (`Config.MacAddress` at API 1.41) — or `None`
    /// when the engine has no such container. What a snapshot records.
    fn inspect_raw<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<serde_json::Value>>>;

    /// The engine's container events in scope from `since` (seconds since the epoch, fractional allowed),
    /// limited to [`WATCHED_EVENTS`] by the engine where its filter takes Docker's names (not on Podman:
    /// [`event_action`] filters there). The stream ends or yields an error when the connection is lost.
    fn events(
        &self,
        scope: &Scope,
        since: Option<String>,
        kind: EngineKind,
    ) -> BoxStream<'static, Result<EventMessage>>;

    /// The container events in scope from `since` to `until` (seconds since the epoch) that the engine still
    /// holds — Docker keeps its last 256 in memory, Podman its event log — read to the end of the answer,
    /// filtered as [`events`](Self::events) is. What happened while nobody watched.
    fn past_events<'a>(
        &'a self,
        scope: &'a Scope,
        since: String,
        until: String,
        kind: EngineKind,
    ) -> BoxFuture<'a, Result<Vec<EventMessage>>>;

    /// The id of the image `reference` names on the host now (`GET /images/{reference}/json`), or `None`
    /// when it names none (404).
    fn image_id<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    /// The engine's image events from `since` (`tag`, `untag`, `pull`, `load`, `delete`, …): whatever may make
    /// a reference name another image. Not limited to the scope: images carry no container labels.
    fn image_events(&self, since: Option<String>) -> BoxStream<'static, Result<EventMessage>>;
}

/// A Docker handle that can only read. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerReader {
    docker: bollard::Docker,
}

impl DockerReader {
    /// A client for `host` (`unix:///…`, `tcp://…`), else the local socket. No request is made until the
    /// first call. Requests that get no answer within [`REQUEST_TIMEOUT`] fail, so a hung engine shows as
    /// not ready instead of freezing the view.
    pub fn connect(host: Option<&str>) -> Result<Self> {
        let docker = shared::runtime::engine::docker_client(host, REQUEST_TIMEOUT)?;
        Ok(Self { docker })
    }
}

impl EngineReader for DockerReader {
    /// See [`shared::runtime::engine::negotiate`]: never pinned, only ever lowered.
    fn negotiate(&self) -> BoxFuture<'_, Result<()>> {
        shared::runtime::engine::negotiate(&self.docker).boxed()
    }

    fn identify(&self) -> BoxFuture<'_, Result<Engine>> {
        shared::runtime::engine::identify(&self.docker).boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        async move {
            self.docker
                .ping()
                .await
                .map(drop)
                .map_err(|err| EngineError::from_call("pinging", "the engine", err))
        }
        .boxed()
    }

    /// Read as the engine wrote it, the ids only ([`decode::listed_ids`]): the client's models refuse a state
    /// they do not know, and one such container would fail the whole list; and the rest of each entry is
    /// never used.
    fn list<'a>(&'a self, scope: &'a Scope, all: bool) -> BoxFuture<'a, Result<Vec<String>>> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if all {
            query.append_pair("all", "1");
        }
        if let Some(filters) = scope_filter(scope) {
            let filters = serde_json::to_string(&filters).unwrap_or_default();
            query.append_pair("filters", &filters);
        }
        let path = format!("/containers/json?{}", query.finish());
        get_ids(&self.docker, path, "listing", "containers").boxed()
    }

    /// Read as the engine wrote it, its state turned into the one it means ([`shared::runtime::engine::inspect`]).
    fn inspect<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ContainerInspectResponse>>> {
        shared::runtime::engine::inspect(&self.docker, id, id).boxed()
    }

    fn inspect_raw<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<serde_json::Value>>> {
        // The engine's JSON untouched ([`get_json`]): still only a read.
        get_json(
            &self.docker,
            format!("/containers/{id}/json"),
            "inspect",
            id,
        )
        .boxed()
    }

    fn events(
        &self,
        scope: &Scope,
        since: Option<String>,
        kind: EngineKind,
    ) -> BoxStream<'static, Result<EventMessage>> {
        self.docker
            .events(Some(events_options(scope, since, None, kind)))
            .map(|event| {
                event.map_err(|err| EngineError::from_call("following", "the event stream", err))
            })
            .boxed()
    }

    fn past_events<'a>(
        &'a self,
        scope: &'a Scope,
        since: String,
        until: String,
        kind: EngineKind,
    ) -> BoxFuture<'a, Result<Vec<EventMessage>>> {
        let options = events_options(scope, Some(since), Some(until), kind);
        async move {
            let read = self
                .docker
                .events(Some(options))
                .map(|event| {
                    event.map_err(|err| EngineError::from_call("reading", "past events", err))
                })
                .try_collect::<Vec<_>>();
            tokio::time::timeout(REQUEST_TIMEOUT, read)
                .await
                .map_err(|_| EngineError::Unreachable {
                    op: "reading",
                    target: "past events".into(),
                    source: bollard::errors::Error::RequestTimeoutError,
                })?
        }
        .boxed()
    }

    fn image_id<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        async move {
            let image = get_json(
                &self.docker,
                format!("/images/{reference}/json"),
                "inspecting image",
                reference,
            )
            .await?;
            Ok(image.and_then(|image| image["Id"].as_str().map(ToOwned::to_owned)))
        }
        .boxed()
    }

    fn image_events(&self, since: Option<String>) -> BoxStream<'static, Result<EventMessage>> {
        self.docker
            .events(Some(image_events_options(since)))
            .map(|event| {
                event.map_err(|err| EngineError::from_call("following", "the image events", err))
            })
            .boxed()
    }
}

/// The image events a stream asks for: every one, of every image.
/// A time as the engine's event queries take it (`since`, `until`): seconds since the epoch, nanoseconds after
/// the point.
pub fn unix_seconds(time: std::time::SystemTime) -> String {
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:09}",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    )
}

fn image_events_options(since: Option<String>) -> EventsOptions {
    EventsOptions {
        since,
        until: None,
        filters: Some(HashMap::from([(
            "type".to_owned(),
            vec!["image".to_owned()],
        )])),
    }
}

/// The events a stream asks for: containers in scope and, on Docker, only the [`WATCHED_EVENTS`].
fn events_options(
    scope: &Scope,
    since: Option<String>,
    until: Option<String>,
    kind: EngineKind,
) -> EventsOptions {
    let mut filters = scope_filter(scope).unwrap_or_default();
    filters.insert("type".to_owned(), vec!["container".to_owned()]);
    if kind == EngineKind::Docker {
        filters.insert(
            "event".to_owned(),
            WATCHED_EVENTS
                .iter()
                .map(|event| (*event).to_owned())
                .collect(),
        );
    }
    EventsOptions {
        since,
        until,
        filters: Some(filters),
    }
}

fn scope_filter(scope: &Scope) -> Option<HashMap<String, Vec<String>>> {
    scope
        .as_ref()
        .map(|selector| HashMap::from([("label".to_owned(), vec![selector.to_string()])]))
}

/// The public face of an inspected container: no environment, no command line, nothing that may be secret.
pub fn status_from_inspect(inspect: &ContainerInspectResponse) -> Option<ContainerStatus> {
    let id = inspect.id.clone()?;
    let config = inspect.config.as_ref();
    let run = RunState::from_inspect(inspect.state.as_ref());
    let labels = labels(config.and_then(|config| config.labels.as_ref()));
    let host = inspect.host_config.as_ref();
    let restart_policy = host.and_then(|host| host.restart_policy.as_ref()).map_or(
        Some(RestartPolicy::No),
        |policy| {
            RestartPolicy::from_engine(
                &policy.name.map(|name| name.to_string()).unwrap_or_default(),
            )
        },
    );
    // Which containers' namespaces it joined: the modes name an id, never anything secret.
    let shares = SharedNamespaces::from_modes(
        host.and_then(|host| host.network_mode.as_deref()),
        host.and_then(|host| host.ipc_mode.as_deref()),
        host.and_then(|host| host.pid_mode.as_deref()),
    );
    Some(ContainerStatus {
        spec: spec_summary(&id, inspect),
        spec_changes: Vec::new(),
        tag_image_id: None,
        id,
        name: decode::container_name(inspect),
        image: config
            .and_then(|config| config.image.clone())
            .unwrap_or_default(),
        image_id: inspect.image.clone().unwrap_or_default(),
        state: run.state,
        health: run.health,
        exit_code: run.exit_code,
        restart_count: inspect.restart_count.unwrap_or(0),
        created_at: engine_time(inspect.created.as_deref()),
        started_at: run.started_at,
        finished_at: run.finished_at,
        policy: Policy::from_labels(&labels),
        settling: false,
        restart_policy,
        exit_cause: run.exit_cause,
        labels,
        ports: ports(inspect),
        in_snapshot: false,
        shares,
    })
}

/// Its ports as `docker ps` lists them: from `NetworkSettings.Ports`, which the engine fills while the
/// container runs (published ones with their bindings, exposed ones with none) and empties when it stops.
fn ports(inspect: &ContainerInspectResponse) -> Vec<PortMapping> {
    let engine_ports = inspect
        .network_settings
        .as_ref()
        .and_then(|settings| settings.ports.as_ref());
    PortMapping::from_engine(engine_ports.into_iter().flatten().map(|(key, bindings)| {
        let bindings = bindings.as_ref().map(|bindings| {
            bindings
                .iter()
                .map(|binding| (binding.host_ip.as_deref(), binding.host_port.as_deref()))
                .collect()
        });
        (key.as_str(), bindings)
    }))
}

/// What an inspect's `State` says of the container's run: its state, health, times and last exit.
struct RunState {
    state: ContainerState,
    health: Health,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    exit_code: Option<i64>,
    exit_cause: Option<ExitCause>,
}

impl RunState {
    fn from_inspect(state: Option<&EngineRunState>) -> Self {
        // What the state means ([`decode::engine_state`]): never `created` for a state nobody knows.
        let flags = state
            .map(|state| decode::StateFlags {
                running: state.running.unwrap_or(false),
                paused: state.paused.unwrap_or(false),
                restarting: state.restarting.unwrap_or(false),
                dead: state.dead.unwrap_or(false),
            })
            .unwrap_or_default();
        let container_state = decode::engine_state(
            &state
                .and_then(|state| state.status)
                .map(|status| status.to_string())
                .unwrap_or_default(),
            flags,
        );
        let health = match state
            .and_then(|state| state.health.as_ref())
            .and_then(|health| health.status)
        {
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            _ => Health::None,
        };
        let started_at = state.and_then(|state| engine_time(state.started_at.as_deref()));
        let finished_at = state.and_then(|state| engine_time(state.finished_at.as_deref()));
        // The engine keeps the last exit code at 0 for a container that never ran; only report one after a
        // run. A restarting container reports the exit that it is restarting from, as `docker ps` does.
        let exit_code = match container_state {
            ContainerState::Running | ContainerState::Paused => None,
            _ if finished_at.is_none() => None,
            _ => state.and_then(|state| state.exit_code),
        };
        // How the exit came about is known only from the events ([`crate::inventory`] fills it in); an
        // inspect alone can tell an OOM kill, nothing else.
        let exit_cause = exit_code.map(|_| {
            if state.and_then(|state| state.oom_killed) == Some(true) {
                ExitCause::Oom
            } else {
                ExitCause::Unseen
            }
        });
        Self {
            state: container_state,
            health,
            started_at,
            finished_at,
            exit_code,
            exit_cause,
        }
    }
}

/// What of its spec the `changed` drift compares, environment values as digests only: the typed answer
/// written back as the engine's JSON (the fields compared are all ones the client's models know).
fn spec_summary(id: &str, inspect: &ContainerInspectResponse) -> Option<Arc<SpecSummary>> {
    fn part<T: serde::Serialize>(value: Option<&T>) -> serde_json::Value {
        value
            .and_then(|value| serde_json::to_value(value).ok())
            .unwrap_or_default()
    }
    let networks = inspect
        .network_settings
        .as_ref()
        .and_then(|settings| settings.networks.as_ref());
    Some(Arc::new(SpecSummary::from_engine(
        id,
        &part(inspect.config.as_ref()),
        &part(inspect.host_config.as_ref()),
        &part(networks),
        &part(inspect.mounts.as_ref()),
    )))
}

/// Everything needed to recreate an inspected container, in the engine's own field names: the parts of the
/// engine's own JSON (`raw`, from [`EngineReader::inspect_raw`]) as it wrote them, so that nothing the client
/// library's models do not know is lost.
pub fn spec_from_inspect(raw: &serde_json::Value) -> Option<ContainerSpec> {
    read_inspect(raw.clone(), true).ok()?.1
}

/// Reads one container's inspect answer as the engine wrote it (`raw`) once, for the view and for a
/// snapshot: its typed form ([`decode::inspect`]), and, when `with_spec`, its spec ([`spec_from_inspect`]).
/// The parts the spec keeps are copied before the typed form consumes the rest: the answer is never cloned
/// whole, and never kept.
pub fn read_inspect(
    raw: serde_json::Value,
    with_spec: bool,
) -> serde_json::Result<(ContainerInspectResponse, Option<ContainerSpec>)> {
    let part = |value: &serde_json::Value, empty: serde_json::Value| {
        if value.is_null() {
            empty
        } else {
            value.clone()
        }
    };
    let parts = with_spec.then(|| {
        (
            part(&raw["Config"], serde_json::json!({})),
            part(&raw["HostConfig"], serde_json::json!({})),
            part(&raw["NetworkSettings"]["Networks"], serde_json::json!({})),
            part(&raw["Mounts"], serde_json::Value::Null),
        )
    });
    let inspect = decode::inspect(raw)?;
    let spec = parts.and_then(|(config, host_config, networks, mounts)| {
        Some(ContainerSpec {
            id: inspect.id.clone()?,
            name: decode::container_name(&inspect),
            image: config["Image"].as_str().unwrap_or_default().to_owned(),
            image_id: inspect.image.clone().unwrap_or_default(),
            config,
            host_config,
            networks,
            mounts,
        })
    });
    Ok((inspect, spec))
}

fn labels(labels: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    labels
        .map(|labels| labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The engine writes `0001-01-01T00:00:00Z` for "never"; that is `None` here.
fn engine_time(value: Option<&str>) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(value?)
        .ok()?
        .with_timezone(&Utc);
    (parsed.timestamp() > 0).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_is_none() {
        assert_eq!(engine_time(Some("0001-01-01T00:00:00Z")), None);
        assert_eq!(engine_time(None), None);
        assert_eq!(
            engine_time(Some("2026-11-22T10:00:00.123456789Z")).map(|t| t.timestamp()),
            Some(1_795_341_600)
        );
    }

    #[test]
    fn the_status_never_carries_the_environment() {
        let inspect: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "a".repeat(64),
            "Name": "/web",
            "Image": "sha256:abc",
            "RestartCount": 2,
            "Created": "2026-11-22T10:00:00Z",
            "State": {"Status": "exited", "ExitCode": 137, "StartedAt": "2026-11-22T10:00:01Z",
                      "FinishedAt": "2026-11-22T10:00:02Z", "Health": {"Status": "unhealthy"}},
            "Config": {"Image": "busybox:latest", "Env": ["PASSWORD=hunter2"], "Labels": {"team": "a"}},
        }))
        .expect("valid inspect");
        let status = status_from_inspect(&inspect).expect("has an id");
        assert_eq!(status.name, "web");
        assert_eq!(status.state, ContainerState::Exited);
        assert_eq!(status.exit_code, Some(137));
        assert_eq!(status.restart_count, 2);
        assert_eq!(status.health, Health::Unhealthy);
        assert_eq!(status.image, "busybox:latest");
        assert!(!serde_json::to_string(&status)
            .expect("serialises")
            .contains("hunter2"));

        let raw = serde_json::to_value(&inspect).expect("serialises");
        let spec = spec_from_inspect(&raw).expect("has an id");
        assert!(
            spec.config.to_string().contains("hunter2"),
            "the spec keeps the environment"
        );
    }

    #[test]
    fn the_spec_keeps_what_the_client_models_do_not_know() {
        let raw = serde_json::json!({
            "Id": "d".repeat(64), "Name": "/db", "Image": "sha256:abc", "State": {"Status": "running"},
            "Config": {"Image": "db:1", "MacAddress": "02:42:0a:00:00:99", "Volumes": {"/data": {}}},
            "HostConfig": {"KernelMemoryTCP": 0, "NetworkMode": "front"},
            "NetworkSettings": {"Networks": {"front": {"Aliases": ["db"], "MacAddress": "02:42:0a:00:00:99"}}},
            "Mounts": [{"Type": "volume", "Name": "e".repeat(64), "Destination": "/data", "RW": true}],
        });
        let spec = spec_from_inspect(&raw).expect("has an id");
        assert_eq!(spec.name, "db");
        assert_eq!(spec.image, "db:1");
        assert_eq!(spec.image_id, "sha256:abc");
        assert_eq!(spec.config["MacAddress"], "02:42:0a:00:00:99");
        assert_eq!(spec.host_config["KernelMemoryTCP"], 0);
        assert_eq!(spec.networks["front"]["Aliases"], serde_json::json!(["db"]));
        assert_eq!(spec.mounts[0]["Name"], "e".repeat(64));
    }

    #[test]
    fn the_status_carries_the_effective_policy() {
        let inspect = |labels: serde_json::Value| -> ContainerInspectResponse {
            serde_json::from_value(serde_json::json!({
                "Id": "c".repeat(64), "Name": "/job", "State": {"Status": "running"},
                "Config": {"Image": "busybox:latest", "Labels": labels},
            }))
            .expect("valid inspect")
        };
        let policy = |labels| status_from_inspect(&inspect(labels)).map(|status| status.policy);
        assert_eq!(policy(serde_json::json!({})), Some(Policy::Heal));
        assert_eq!(
            policy(serde_json::json!({"dockstate.policy": "observe"})),
            Some(Policy::Observe)
        );
        assert_eq!(
            policy(serde_json::json!({"com.docker.compose.oneoff": "True"})),
            Some(Policy::Ignore)
        );
    }

    #[test]
    fn the_status_carries_the_restart_policy_and_what_an_inspect_knows_of_the_exit() {
        let inspect = |restart: &str, oom: bool| -> ContainerInspectResponse {
            serde_json::from_value(serde_json::json!({
                "Id": "c".repeat(64), "Name": "/job",
                "State": {"Status": "exited", "ExitCode": 0, "OOMKilled": oom,
                          "StartedAt": "2026-11-22T10:00:01Z", "FinishedAt": "2026-11-22T10:00:02Z"},
                "HostConfig": {"RestartPolicy": {"Name": restart, "MaximumRetryCount": 0}},
            }))
            .expect("valid inspect")
        };
        let status = |restart, oom| status_from_inspect(&inspect(restart, oom)).expect("an id");
        assert_eq!(status("", false).restart_policy, Some(RestartPolicy::No));
        assert_eq!(
            status("on-failure", false).restart_policy,
            Some(RestartPolicy::OnFailure)
        );
        assert_eq!(
            status("unless-stopped", false).restart_policy,
            Some(RestartPolicy::UnlessStopped)
        );
        // Only the events tell how an exit came about; an inspect knows an OOM kill.
        assert_eq!(status("", false).exit_cause, Some(ExitCause::Unseen));
        assert_eq!(status("", true).exit_cause, Some(ExitCause::Oom));
    }

    #[test]
    fn a_container_that_never_ran_has_no_exit_code() {
        let inspect: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "b".repeat(64), "Name": "/new",
            "State": {"Status": "created", "ExitCode": 0, "FinishedAt": "0001-01-01T00:00:00Z"},
        }))
        .expect("valid inspect");
        let status = status_from_inspect(&inspect).expect("has an id");
        assert_eq!(status.state, ContainerState::Created);
        assert_eq!(status.exit_code, None);
        assert_eq!(status.exit_cause, None);
        assert_eq!(status.started_at, None);
    }

    #[test]
    fn the_status_names_the_containers_whose_namespaces_it_joined() {
        let owner = "d".repeat(64);
        let inspect: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "e".repeat(64), "Name": "/app", "State": {"Status": "running"},
            "Config": {"Image": "busybox:latest"},
            "HostConfig": {"NetworkMode": format!("container:{owner}"), "IpcMode": "private",
                           "PidMode": format!("container:{owner}")},
        }))
        .expect("valid inspect");
        let status = status_from_inspect(&inspect).expect("has an id");
        assert_eq!(status.shares.network.as_deref(), Some(owner.as_str()));
        assert_eq!(status.shares.ipc, None);
        assert_eq!(status.shares.pid.as_deref(), Some(owner.as_str()));
    }

    #[test]
    fn the_live_summary_from_the_client_models_equals_the_snapshots_from_the_engines_json() {
        let raw = serde_json::json!({
            "Id": "f".repeat(64), "Name": "/web", "Image": "sha256:abc", "State": {"Status": "running"},
            "Config": {"Image": "web:1", "Hostname": "ffffffffffff", "Env": ["PATH=/bin", "TOKEN=s3cret"],
                       "Cmd": ["httpd", "-f"], "Labels": {"team": "a"}, "User": "1000", "MacAddress": "",
                       "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000_i64, "Retries": 2}},
            "HostConfig": {"NetworkMode": "front", "Memory": 67_108_864, "MemorySwap": 134_217_728,
                           "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                           "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
                           "CapAdd": ["NET_ADMIN"], "Devices": [{"PathOnHost": "/dev/null",
                           "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}], "NanoCpus": 500_000_000,
                           "Tmpfs": {"/run": ""}, "KernelMemoryTCP": 0},
            "NetworkSettings": {"Networks": {"front": {"Aliases": ["web", "ffffffffffff"],
                                "IPAMConfig": {"IPv4Address": "10.9.0.9"}, "IPAddress": "10.9.0.9"}}},
            "Mounts": [{"Type": "volume", "Name": "data", "Source": "/var/lib/docker/volumes/data/_data",
                        "Destination": "/data", "Driver": "local", "Mode": "z", "RW": true, "Propagation": ""}],
        });
        let snapshot = spec_from_inspect(&raw).expect("has an id");
        let snapshot = SpecSummary::from_engine(
            &snapshot.id,
            &snapshot.config,
            &snapshot.host_config,
            &snapshot.networks,
            &snapshot.mounts,
        );
        let inspect = decode::inspect(raw).expect("valid inspect");
        let live = status_from_inspect(&inspect)
            .and_then(|status| status.spec)
            .expect("a summary");
        assert_eq!(shared::spec_diff::diff(&snapshot, &live), vec![]);
        assert_eq!(snapshot.fields().count(), live.fields().count());
        assert!(snapshot.fields().count() > 15, "{snapshot:?}");
        assert!(!format!("{live:?}").contains("s3cret"));
    }
}
