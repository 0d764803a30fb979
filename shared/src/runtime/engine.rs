//! Connecting to the Docker engine, and the one error type for what an engine call did — shared by
//! status-api's read-only handle and status-controller's writer, so both read the engine's answers by the
//! same rules: 404 on inspect is "no such container" (not an error), 409 is a conflict with the engine's
//! state, any other answer is a refusal, and no answer at all is an unreachable engine.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, SystemVersion};

use crate::model::{Engine, EngineKind};

pub use super::engine_error::{EngineError, Result, PODMAN_STATE_CONFLICT};

/// The HTTP status the engine answered `err` with, if it answered.
pub fn status_of(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// A Docker client for `host` (`unix:///…`, `tcp://…`), else the local socket, whose requests fail after
/// `timeout` without an answer. No request is made until the first call; the API version is negotiated with
/// [`negotiate`], never pinned. On a unix socket its connections are kept open between requests
/// ([`super::engine_socket`]).
pub fn docker_client(host: Option<&str>, timeout: Duration) -> Result<bollard::Docker> {
    let docker = match super::engine_socket::socket_of(host) {
        Some(socket) => super::engine_socket::connect(&socket),
        // Not a socket: a host was given (`tcp://…`).
        None => bollard::Docker::connect_with_host(host.unwrap_or_default()),
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

/// Which engine answers, and its version, from `GET /version`: Podman names a component `Podman Engine`.
pub async fn identify(docker: &bollard::Docker) -> Result<Engine> {
    docker
        .version()
        .await
        .map(|version| engine_of(&version))
        .map_err(|err| EngineError::from_call("asking the version of", "the engine", err))
}

/// The engine a `GET /version` answer describes.
pub fn engine_of(version: &SystemVersion) -> Engine {
    let podman = version
        .components
        .iter()
        .flatten()
        .find(|component| component.name == "Podman Engine");
    Engine {
        kind: if podman.is_some() {
            EngineKind::Podman
        } else {
            EngineKind::Docker
        },
        version: podman
            .map(|component| component.version.clone())
            .or_else(|| version.version.clone())
            .unwrap_or_default(),
        api_version: version.api_version.clone().unwrap_or_default(),
    }
}

/// One container by id or name (`target` names it in errors), or `None` when the engine has no such
/// container (404).
pub async fn inspect(
    docker: &bollard::Docker,
    target: &str,
    id: &str,
) -> Result<Option<ContainerInspectResponse>> {
    // The engine's own JSON, its state read as what it means ([`engine_json::inspect`]): the typed call
    // would fail on a state the client's models do not know (Podman's `stopped`).
    let Some(raw) =
        super::engine_json::get_json(docker, format!("/containers/{id}/json"), "inspect", target)
            .await?
    else {
        return Ok(None);
    };
    super::engine_json::inspect(raw)
        .map(Some)
        .map_err(|source| EngineError::Unreadable {
            op: "inspect",
            target: target.to_owned(),
            source,
        })
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
    fn podman_is_told_from_docker_by_its_version_answer() {
        // What Debian's Podman 4.3.1 and Docker 20.10 answer to GET /version (abridged).
        let podman: SystemVersion = serde_json::from_value(serde_json::json!({
            "Platform": {"Name": "linux/amd64/debian-12"},
            "Components": [
                {"Name": "Podman Engine", "Version": "4.3.1", "Details": {"APIVersion": "4.3.1"}},
                {"Name": "Conmon", "Version": "conmon version 2.1.6"},
            ],
            "Version": "4.3.1", "ApiVersion": "1.41", "MinAPIVersion": "1.24",
        }))
        .expect("a version answer");
        let engine = engine_of(&podman);
        assert_eq!(engine.kind, EngineKind::Podman);
        assert_eq!(engine.version, "4.3.1");
        assert_eq!(engine.api_version, "1.41");
        assert_eq!(engine.describe(), "Podman 4.3.1 (API 1.41)");

        let docker: SystemVersion = serde_json::from_value(serde_json::json!({
            "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1"},
                           {"Name": "containerd", "Version": "1.6.20"}],
            "Version": "20.10.24+dfsg1", "ApiVersion": "1.41",
        }))
        .expect("a version answer");
        let engine = engine_of(&docker);
        assert_eq!(engine.kind, EngineKind::Docker);
        assert_eq!(engine.version, "20.10.24+dfsg1");
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
        let podman_conflict = BollardError::DockerResponseServerError {
            status_code: 500,
            // Podman 4.3's own words, with a 500, for an unpause of a container that is not paused.
            message: "\"f6e4\" is not paused, can't unpause: container state improper".into(),
        };
        assert!(matches!(
            EngineError::from_call("unpause", "web", podman_conflict),
            EngineError::Conflict { .. }
        ));
        let undecodable = BollardError::JsonSerdeError {
            err: serde_json::from_str::<u8>("x").expect_err("not a number"),
        };
        let unreadable = EngineError::from_call("inspect", "web", undecodable);
        assert!(!unreadable.is_unreachable(), "the engine answered");
        assert!(matches!(unreadable, EngineError::Unreadable { .. }));
        assert_eq!(status_of(&BollardError::RequestTimeoutError), None);
    }
}
