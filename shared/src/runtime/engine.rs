//! Connecting to the Docker engine, and the one error type for what an engine call did — shared by
//! status-api's read-only handle and status-controller's writer, so both read the engine's answers by the
//! same rules: 404 on inspect is "no such container" (not an error), 409 is a conflict with the engine's
//! state, any other answer is a refusal, and no answer at all is an unreachable engine.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::InspectContainerOptions;

/// What went wrong talking to the engine. Callers can tell "the engine said no" from "the engine is down".
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot set up a Docker client (check DOCKER_HOST)")]
    ConnectFailed(#[source] BollardError),
    #[error("the Docker engine did not answer the version negotiation")]
    NegotiateFailed(#[source] BollardError),
    #[error(
        "{op} {target}: the Docker engine could not be reached (check DOCKER_HOST / --docker-host and the \
         socket)"
    )]
    Unreachable {
        op: &'static str,
        target: String,
        #[source]
        source: BollardError,
    },
    #[error("{op} {target}: the Docker engine refused")]
    Refused {
        op: &'static str,
        target: String,
        #[source]
        source: BollardError,
    },
    #[error("{op} {target} conflicts with what the engine has: {message}")]
    Conflict {
        op: &'static str,
        target: String,
        message: String,
    },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    /// Classifies a failed call `op` on `target` (a container's name, or what was listed): 409 as a
    /// conflict, any other answer as a refusal, no answer as an unreachable engine.
    pub fn from_call(op: &'static str, target: impl Into<String>, err: BollardError) -> Self {
        let target = target.into();
        match err {
            BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            } => Self::Conflict {
                op,
                target,
                message,
            },
            source @ BollardError::DockerResponseServerError { .. } => {
                Self::Refused { op, target, source }
            }
            source => Self::Unreachable { op, target, source },
        }
    }

    /// Whether the engine gave no answer at all (as opposed to answering no).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::ConnectFailed(_) | Self::NegotiateFailed(_)
        )
    }
}

/// The HTTP status the engine answered `err` with, if it answered.
pub fn status_of(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// A Docker client for `host` (`unix:///…`, `tcp://…`), else the local socket, whose requests fail after
/// `timeout` without an answer. No request is made until the first call; the API version is negotiated with
/// [`negotiate`], never pinned.
pub fn docker_client(host: Option<&str>, timeout: Duration) -> Result<bollard::Docker> {
    let docker = match host.filter(|host| !host.is_empty()) {
        Some(host) => bollard::Docker::connect_with_host(host),
        None => bollard::Docker::connect_with_local_defaults(),
    }
    .map_err(EngineError::ConnectFailed)?;
    Ok(docker.with_timeout(timeout))
}

/// Agrees on an API version with the engine: never pinned, so old engines (1.41) and new ones (which refuse
/// anything below 1.44) both work. It only ever lowers the version.
pub async fn negotiate(docker: &bollard::Docker) -> Result<()> {
    docker
        .clone()
        .negotiate_version()
        .await
        .map(|_| ())
        .map_err(EngineError::NegotiateFailed)
}

/// One container by id or name (`target` names it in errors), or `None` when the engine has no such
/// container (404).
pub async fn inspect(
    docker: &bollard::Docker,
    target: &str,
    id: &str,
) -> Result<Option<ContainerInspectResponse>> {
    match docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(found) => Ok(Some(found)),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(err) => Err(EngineError::from_call("inspect", target, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status_code: u16) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: "x".into(),
        }
    }

    #[test]
    fn answers_are_classified_by_status() {
        assert!(matches!(
            EngineError::from_call("start", "web", answered(409)),
            EngineError::Conflict { .. }
        ));
        assert!(matches!(
            EngineError::from_call("start", "web", answered(500)),
            EngineError::Refused { .. }
        ));
        let unreachable = EngineError::from_call("start", "web", BollardError::RequestTimeoutError);
        assert!(unreachable.is_unreachable());
        assert!(
            unreachable.to_string().contains("could not be reached"),
            "{unreachable}"
        );
        assert_eq!(status_of(&answered(304)), Some(304));
        assert_eq!(status_of(&BollardError::RequestTimeoutError), None);
    }
}
