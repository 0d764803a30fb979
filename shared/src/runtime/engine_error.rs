//! The one error type for what an engine call did, for both programs: 404 on inspect is "no such container"
//! (not an error), 409 is a conflict with the engine's state, any other answer is a refusal, and no answer at
//! all is an unreachable engine. Its own module, importing nothing of the crate, so that connecting
//! ([`engine`](super::engine)) and reading the engine's JSON ([`engine_json`](super::engine_json)) both speak
//! it without depending on each other.

use bollard::errors::Error as BollardError;

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
    #[error("{op} {target}: the engine's answer could not be read")]
    Unreadable {
        op: &'static str,
        target: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{op} {target} conflicts with what the engine has: {message}")]
    Conflict {
        op: &'static str,
        target: String,
        message: String,
    },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What Podman says, with a 500, where Docker answers 409 or 304: the container's state does not allow it.
pub const PODMAN_STATE_CONFLICT: &str = "container state improper";

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
            // Podman answers a state conflict (already paused, not running) with 500 and its own words.
            BollardError::DockerResponseServerError {
                status_code: 500,
                message,
            } if message.contains(PODMAN_STATE_CONFLICT) => Self::Conflict {
                op,
                target,
                message,
            },
            source @ BollardError::DockerResponseServerError { .. } => {
                Self::Refused { op, target, source }
            }
            // The engine answered; what it said did not fit the client's models.
            BollardError::JsonSerdeError { err } => Self::Unreadable {
                op,
                target,
                source: err,
            },
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
