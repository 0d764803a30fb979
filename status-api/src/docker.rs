//! Read-only access to the Docker engine. [`DockerReader`] can list, inspect, stream events, ping and read the
//! version — nothing else: status-api's promise never to change the host is in this type, not in a comment.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerInspectResponse, ContainerSummary, EventMessage, HealthStatusEnum};
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use chrono::{DateTime, Utc};
use futures::Stream;
use shared::{ContainerSpec, ContainerState, ContainerStatus, Health, Scope};

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

/// How long one request to the engine may take to answer (an event stream only has to start).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What went wrong talking to the engine. "No such container" is not an error here: inspect answers `None`.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot set up a Docker client (check DOCKER_HOST)")]
    ConnectFailed(#[source] bollard::errors::Error),
    #[error("the Docker engine did not answer the version negotiation")]
    NegotiateFailed(#[source] bollard::errors::Error),
    #[error("listing containers failed")]
    ListFailed(#[source] bollard::errors::Error),
    #[error("inspecting container {id} failed")]
    InspectFailed {
        id: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the engine's event stream failed")]
    EventsFailed(#[source] bollard::errors::Error),
    #[error("the Docker engine did not answer a ping")]
    PingFailed(#[source] bollard::errors::Error),
}

pub type Result<T, E = DockerError> = std::result::Result<T, E>;

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
        let docker = shared::runtime::docker_client(host, REQUEST_TIMEOUT)
            .map_err(DockerError::ConnectFailed)?;
        Ok(Self { docker })
    }

    /// Agrees on an API version with the engine: never pinned, so old engines (1.41) and new ones (which
    /// refuse anything below 1.44) both work. Call after every reconnect; it only ever lowers the version.
    pub async fn negotiate(&self) -> Result<()> {
        self.docker
            .clone()
            .negotiate_version()
            .await
            .map(|_| ())
            .map_err(DockerError::NegotiateFailed)
    }

    pub async fn ping(&self) -> Result<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(DockerError::PingFailed)
    }

    /// The engine's version string and the API version agreed on.
    pub async fn version(&self) -> Result<(String, String)> {
        let version = self
            .docker
            .version()
            .await
            .map_err(DockerError::PingFailed)?;
        Ok((
            version.version.unwrap_or_default(),
            self.docker.client_version().to_string(),
        ))
    }

    /// Containers in scope; `all` includes the ones that are not running.
    pub async fn list(&self, scope: &Scope, all: bool) -> Result<Vec<ContainerSummary>> {
        let options = ListContainersOptions {
            all,
            filters: scope_filter(scope),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(DockerError::ListFailed)
    }

    /// One container, or `None` when the engine has no such container (404).
    pub async fn inspect(&self, id: &str) -> Result<Option<ContainerInspectResponse>> {
        match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(found) => Ok(Some(found)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(source) => Err(DockerError::InspectFailed {
                id: id.to_owned(),
                source,
            }),
        }
    }

    /// The engine's container events in scope from `since` (seconds since the epoch, fractional allowed),
    /// limited to [`WATCHED_EVENTS`].
    pub fn events(
        &self,
        scope: &Scope,
        since: Option<String>,
    ) -> impl Stream<Item = Result<EventMessage, bollard::errors::Error>> + Send + 'static {
        let mut filters = scope_filter(scope).unwrap_or_default();
        filters.insert("type".to_owned(), vec!["container".to_owned()]);
        filters.insert(
            "event".to_owned(),
            WATCHED_EVENTS
                .iter()
                .map(|event| (*event).to_owned())
                .collect(),
        );
        let options = EventsOptions {
            since,
            until: None,
            filters: Some(filters),
        };
        self.docker.events(Some(options))
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
    let state = inspect.state.as_ref();
    let config = inspect.config.as_ref();
    let container_state = state
        .and_then(|state| state.status)
        .map(|status| match status.to_string().as_str() {
            // Newer engines say `stopping` while a stop is under way: the container is still running.
            "stopping" => ContainerState::Running,
            other => other.parse().unwrap_or(ContainerState::Created),
        })
        .unwrap_or(ContainerState::Created);
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
    // The engine keeps the last exit code at 0 for a container that never ran; only report one after a run.
    let exit_code = match container_state {
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting => None,
        _ if finished_at.is_none() => None,
        _ => state.and_then(|state| state.exit_code),
    };
    Some(ContainerStatus {
        id,
        name: inspect
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: config
            .and_then(|config| config.image.clone())
            .unwrap_or_default(),
        image_id: inspect.image.clone().unwrap_or_default(),
        state: container_state,
        health,
        exit_code,
        restart_count: inspect.restart_count.unwrap_or(0),
        created_at: engine_time(inspect.created.as_deref()),
        started_at,
        finished_at,
        labels: labels(config.and_then(|config| config.labels.as_ref())),
        in_snapshot: false,
    })
}

/// Everything needed to recreate an inspected container, in the engine's own field names.
pub fn spec_from_inspect(inspect: &ContainerInspectResponse) -> Option<ContainerSpec> {
    let status = status_from_inspect(inspect)?;
    let to_json = |value: Option<serde_json::Value>| value.unwrap_or_else(|| serde_json::json!({}));
    Some(ContainerSpec {
        name: status.name,
        id: status.id,
        image: status.image,
        image_id: status.image_id,
        config: to_json(
            inspect
                .config
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
        ),
        host_config: to_json(
            inspect
                .host_config
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
        ),
        networks: to_json(
            inspect
                .network_settings
                .as_ref()
                .and_then(|settings| settings.networks.as_ref())
                .and_then(|networks| serde_json::to_value(networks).ok()),
        ),
    })
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

        let spec = spec_from_inspect(&inspect).expect("has an id");
        assert!(
            spec.config.to_string().contains("hunter2"),
            "the spec keeps the environment"
        );
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
        assert_eq!(status.started_at, None);
    }
}
