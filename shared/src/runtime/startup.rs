//! The one shape of a start-up failure, shared by both programs: what every program checks before it serves
//! (the token file, the engine client, the port) plus what only that program checks (`E`: status-api's
//! state directory and snapshot; status-controller's `--state-dir`, where its maintenance hold is kept).

use super::engine::EngineError;
use super::http::BindError;
use super::token::TokenFileError;

/// Why a program could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartupError<E: std::error::Error + 'static = std::convert::Infallible> {
    #[error(transparent)]
    Token(#[from] TokenFileError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Bind(#[from] BindError),
    /// What only this program checks.
    #[error(transparent)]
    Program(E),
    #[error("the HTTP server failed")]
    ServeFailed(#[source] std::io::Error),
}
