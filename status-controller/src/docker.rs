//! The Docker writer: the only handle in dockstate that can start, stop, create and remove containers.
//! [`EngineWriter`] is what actions do to the engine, so the executor can be tested against a fake;
//! [`DockerWriter`] is the real one. "Already done" (304) and "no such container" (404) are outcomes
//! ([`Applied`]), not errors. Stops and restarts wait the container's own stop timeout plus a margin rather
//! than the client's 120 s, and one that outlasts that is reported as still under way, not as an unreachable
//! engine.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, NetworkConnectRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, RestartContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use shared::runtime::engine::EngineError;
use tokio::sync::OnceCell;

use crate::recreate::Recreation;

/// How long a Docker call may take. Stops and restarts are not bound by it: they wait the container's own
/// stop timeout plus [`STOP_MARGIN`].
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// How much longer than the container's own stop timeout a stop or restart is waited for: the kill after the
/// timeout, and for a restart the start after it.
pub const STOP_MARGIN: Duration = Duration::from_secs(15);

/// What went wrong changing the host: the engine's own answer (see [`EngineError`]), or an image that is not
/// here — dockstate never pulls. 304 and 404 are not errors: see [`Applied`].
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A stop or restart the engine had not finished when its wait ran out: not an unreachable engine — it
    /// may be at it still.
    #[error(
        "{op} {container}: the engine had not finished after {waited_s} s (the container's stop timeout is \
         {grace_s} s); it may still be at it, and the next change decides"
    )]
    StillUnderway {
        op: &'static str,
        container: String,
        waited_s: u64,
        grace_s: u64,
    },
    #[error(
        "image {image} is not on this host, and dockstate never pulls: pull or load it \
         (`docker pull {image}`), and the next attempt recreates {container}"
    )]
    ImageMissing { image: String, container: String },
    #[error(
        "neither image {image} nor the image it ran ({image_id}) is on this host any more, and dockstate \
         never pulls: pull or load {image} (`docker pull {image}`), and the next attempt recreates {container}"
    )]
    ImageAndIdMissing {
        image: String,
        image_id: String,
        container: String,
    },
}

pub type Result<T, E = DockerError> = std::result::Result<T, E>;

/// How a call that may legitimately find nothing to do went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// 304: already in the state asked for.
    AlreadyDone,
    /// 404: no such container.
    NoSuchContainer,
}

/// A Docker handle that can change the host. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerWriter {
    docker: bollard::Docker,
    /// Set once the API version is agreed on; retried by the next call until then.
    negotiated: Arc<OnceCell<()>>,
}

impl DockerWriter {
    /// A client for `host` (`unix:///…`, `tcp://…`), else the local socket. No request is made until the
    /// first call. A call that gets no answer within [`DOCKER_TIMEOUT`] fails.
    pub fn connect(host: Option<&str>) -> Result<Self, EngineError> {
        let docker = shared::runtime::engine::docker_client(host, DOCKER_TIMEOUT)?;
        Ok(Self {
            docker,
            negotiated: Arc::new(OnceCell::new()),
        })
    }
}

impl DockerWriter {
    /// The engine's host name (`GET /info`'s `Name`): what notifications say they are from. `None` when
    /// the engine does not answer within `wait` or gives no name.
    pub async fn host_name(&self, wait: Duration) -> Option<String> {
        let info = tokio::time::timeout(wait, self.docker.info())
            .await
            .ok()?
            .ok()?;
        info.name.filter(|name| !name.is_empty())
    }

    /// The same client, for one stop or restart: its own timeout lies beyond the wait [`slow_call`] puts
    /// around the call, so the answer is "not finished yet", never "could not be reached".
    fn patient(&self, grace: Duration) -> bollard::Docker {
        self.docker
            .clone()
            .with_timeout(grace + STOP_MARGIN + STOP_MARGIN)
    }
}

/// A stop or restart, waited for `grace` (the container's stop timeout) plus [`STOP_MARGIN`].
async fn slow_call(
    op: &'static str,
    name: &str,
    grace: Duration,
    call: impl Future<Output = std::result::Result<(), bollard::errors::Error>>,
) -> Result<Applied> {
    let waited = grace + STOP_MARGIN;
    match tokio::time::timeout(waited, call).await {
        Ok(result) => applied(op, name, result),
        Err(_) => Err(DockerError::StillUnderway {
            op,
            container: name.to_owned(),
            waited_s: waited.as_secs(),
            grace_s: grace.as_secs(),
        }),
    }
}

/// What carrying out actions does to the engine. Every call names the container it is about, for errors and
/// logs; `id` is what the engine is asked about.
pub trait EngineWriter: Send + Sync + 'static {
    /// Agrees on an API version with the engine; after the first success it costs nothing.
    fn negotiate(&self) -> impl Future<Output = Result<()>> + Send;
    /// One container by id, or `None` when the engine has no such container.
    fn inspect(
        &self,
        name: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<ContainerInspectResponse>>> + Send;
    fn start(&self, name: &str, id: &str) -> impl Future<Output = Result<Applied>> + Send;
    fn unpause(&self, name: &str, id: &str) -> impl Future<Output = Result<Applied>> + Send;
    /// Restarts with the container's own stop timeout, `grace`; waits that plus [`STOP_MARGIN`] for the
    /// engine's answer.
    fn restart(
        &self,
        name: &str,
        id: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<Applied>> + Send;
    /// Stops gracefully, with the container's own stop timeout, `grace`; waits that plus [`STOP_MARGIN`].
    fn stop(
        &self,
        name: &str,
        id: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<Applied>> + Send;
    /// Removes a stopped container. Never its volumes, never by force.
    fn remove(&self, name: &str, id: &str) -> impl Future<Output = Result<Applied>> + Send;
    /// The id of the image `reference` (a name or an id) names on this host, or `None` when it names none.
    /// Never pulls.
    fn image_id(
        &self,
        name: &str,
        reference: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Whether the volume `volume` exists.
    fn volume_exists(&self, name: &str, volume: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Creates the container (not started); returns its id.
    fn create(&self, recreation: &Recreation) -> impl Future<Output = Result<String>> + Send;
    /// Connects a container to one more network.
    fn connect_network(
        &self,
        name: &str,
        id: &str,
        network: &str,
        endpoint: EndpointSettings,
    ) -> impl Future<Output = Result<()>> + Send;
}

impl EngineWriter for DockerWriter {
    /// Agrees on an API version with the engine, once: never pinned, so old engines (1.41) and new ones
    /// both work. Every action calls it; after the first success it costs nothing.
    async fn negotiate(&self) -> Result<()> {
        self.negotiated
            .get_or_try_init(|| shared::runtime::engine::negotiate(&self.docker))
            .await
            .copied()
            .map_err(DockerError::from)
    }

    /// One container by id, or `None` when the engine has no such container.
    #[tracing::instrument(skip_all, fields(container = %name))]
    async fn inspect(&self, name: &str, id: &str) -> Result<Option<ContainerInspectResponse>> {
        Ok(shared::runtime::engine::inspect(&self.docker, name, id).await?)
    }

    #[tracing::instrument(skip_all, fields(container = %name))]
    async fn start(&self, name: &str, id: &str) -> Result<Applied> {
        let result = self
            .docker
            .start_container(id, None::<StartContainerOptions>)
            .await;
        applied("start", name, result)
    }

    #[tracing::instrument(skip_all, fields(container = %name))]
    async fn unpause(&self, name: &str, id: &str) -> Result<Applied> {
        match applied("unpause", name, self.docker.unpause_container(id).await) {
            // The engine answers 409 "is not paused" when someone unpaused it first.
            Err(DockerError::Engine(EngineError::Conflict { message, .. }))
                if message.contains("not paused") =>
            {
                Ok(Applied::AlreadyDone)
            }
            other => other,
        }
    }

    /// Restarts with the container's own stop timeout (the engine's default, 10 s, when it has none).
    #[tracing::instrument(skip_all, fields(container = %name))]
    async fn restart(&self, name: &str, id: &str, grace: Duration) -> Result<Applied> {
        let docker = self.patient(grace);
        let call = docker.restart_container(id, None::<RestartContainerOptions>);
        slow_call("restart", name, grace, call).await
    }

    /// Stops gracefully, with the container's own stop timeout.
    #[tracing::instrument(skip_all, fields(container = %name))]
    async fn stop(&self, name: &str, id: &str, grace: Duration) -> Result<Applied> {
        let docker = self.patient(grace);
        let call = docker.stop_container(id, None::<StopContainerOptions>);
        slow_call("stop", name, grace, call).await
    }

    /// Removes a stopped container. Never its volumes, never by force.
    #[tracing::instrument(skip_all, fields(container = %name))]
    async fn remove(&self, name: &str, id: &str) -> Result<Applied> {
        let options = RemoveContainerOptions {
            v: false,
            force: false,
            link: false,
        };
        match applied(
            "remove",
            name,
            self.docker.remove_container(id, Some(options)).await,
        ) {
            Err(DockerError::Engine(EngineError::Conflict { message, .. }))
                if message.contains("already in progress") =>
            {
                Ok(Applied::AlreadyDone)
            }
            other => other,
        }
    }

    #[tracing::instrument(skip_all, fields(container = %name))]
    async fn image_id(&self, name: &str, reference: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(err) => Err(EngineError::from_call("looking up the image of", name, err).into()),
        }
    }

    #[tracing::instrument(skip_all, fields(container = %name))]
    async fn volume_exists(&self, name: &str, volume: &str) -> Result<bool> {
        match self.docker.inspect_volume(volume).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(err) => Err(EngineError::from_call("looking up a volume of", name, err).into()),
        }
    }

    /// Creates the container (not started); returns its id. The body is the recreation's own JSON, sent as
    /// it is: the client's typed create body would drop every field its models do not know.
    #[tracing::instrument(skip_all, fields(container = %recreation.name))]
    async fn create(&self, recreation: &Recreation) -> Result<String> {
        let options = CreateContainerOptions {
            name: Some(recreation.name.clone()),
            platform: String::new(),
        };
        let payload = bytes::Bytes::from(recreation.request_body().to_string());
        // bollard has no untyped create: its typed (empty) body is swapped for ours on the way out.
        let docker = self
            .docker
            .clone()
            .with_request_modifier(move |mut request| {
                *request.body_mut() = bollard::body_full(payload.clone());
                request
            });
        match docker
            .create_container(Some(options), ContainerCreateBody::default())
            .await
        {
            Ok(created) => {
                for warning in &created.warnings {
                    tracing::warn!(warning, "the engine warned on create");
                }
                Ok(created.id)
            }
            // 404 is "No such image: …" (Podman: "no such image: …: image not known") — or a network of the spec that no longer exists, which the engine's
            // own message says better than we could.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.contains("image") => Err(DockerError::ImageMissing {
                image: recreation.body_image().to_owned(),
                container: recreation.name.clone(),
            }),
            Err(err) => Err(EngineError::from_call("create", &recreation.name, err).into()),
        }
    }

    /// Connects a container to one more network.
    #[tracing::instrument(skip_all, fields(container = %name, network))]
    async fn connect_network(
        &self,
        name: &str,
        id: &str,
        network: &str,
        endpoint: EndpointSettings,
    ) -> Result<()> {
        let request = NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(endpoint),
        };
        self.docker
            .connect_network(network, request)
            .await
            .map_err(|err| EngineError::from_call("connecting a network to", name, err).into())
    }
}

/// 304 and 404 as outcomes; anything else as an error (see [`failure`]).
fn applied(
    op: &'static str,
    name: &str,
    result: std::result::Result<(), bollard::errors::Error>,
) -> Result<Applied> {
    match result {
        Ok(()) => Ok(Applied::Done),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304, ..
        }) => Ok(Applied::AlreadyDone),
        // Only a 404 about the container itself means it is gone: the engine also answers 404 when something
        // the container needs is missing (a start whose network was removed: "network … not found"), and
        // that is a failure to report, not a container to forget.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        }) if names_a_missing_container(&message) => Ok(Applied::NoSuchContainer),
        Err(err) => Err(EngineError::from_call(op, name, err).into()),
    }
}

/// Whether a 404's message says the container is missing: Docker's "No such container: …", Podman's
/// "no container with name or ID … found: no such container".
fn names_a_missing_container(message: &str) -> bool {
    message.to_ascii_lowercase().contains("no such container")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_that_are_outcomes() {
        let server = |status_code| {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code,
                message: if status_code == 404 {
                    "No such container: web".into()
                } else {
                    "x".into()
                },
            })
        };
        assert_eq!(applied("start", "web", Ok(())).ok(), Some(Applied::Done));
        assert_eq!(
            applied("start", "web", server(304)).ok(),
            Some(Applied::AlreadyDone)
        );
        assert_eq!(
            applied("start", "web", server(404)).ok(),
            Some(Applied::NoSuchContainer)
        );
        let missing_network = applied(
            "start",
            "web",
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message: "network back not found".into(),
            }),
        );
        assert!(
            matches!(
                missing_network,
                Err(DockerError::Engine(EngineError::Refused { .. }))
            ),
            "a 404 about something else than the container is a failure: {missing_network:?}"
        );
        assert_eq!(
            applied(
                "start",
                "web",
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    message: "no container with name or ID \"web\" found: no such container".into(),
                }),
            )
            .ok(),
            Some(Applied::NoSuchContainer),
            "Podman's words"
        );
        assert!(matches!(
            applied("start", "web", server(409)),
            Err(DockerError::Engine(EngineError::Conflict { .. }))
        ));
        assert!(matches!(
            applied("start", "web", server(500)),
            Err(DockerError::Engine(EngineError::Refused { .. }))
        ));
        let unreachable = applied(
            "start",
            "web",
            Err(bollard::errors::Error::RequestTimeoutError),
        );
        let Err(err @ DockerError::Engine(EngineError::Unreachable { .. })) = unreachable else {
            panic!("{unreachable:?}");
        };
        assert!(err.to_string().contains("could not be reached"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_stop_is_still_under_way_not_an_unreachable_engine() {
        let grace = Duration::from_secs(300);
        let began = tokio::time::Instant::now();
        let never = std::future::pending::<std::result::Result<(), bollard::errors::Error>>();
        let err = slow_call("stop", "web", grace, never)
            .await
            .expect_err("it never answered");
        assert_eq!(
            began.elapsed(),
            grace + STOP_MARGIN,
            "the stop timeout and a margin"
        );
        let text = err.to_string();
        assert!(text.contains("had not finished after 315 s"), "{text}");
        assert!(!text.contains("could not be reached"), "{text}");
        let quick = slow_call("stop", "web", grace, async { Ok(()) }).await;
        assert_eq!(quick.ok(), Some(Applied::Done));
    }
}
