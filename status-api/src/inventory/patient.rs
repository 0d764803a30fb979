//! One container's inspect, tried again when the engine's answer could not be used and then given up on:
//! an answer about one container (Podman's `stopped` once failed Docker's models) must never be the reason
//! the event stream or a whole re-list is dropped. An engine that does not answer at all is another matter:
//! that error goes up, and the watch loop reconnects.

use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use shared::ContainerSpec;

use crate::baseline::records;
use crate::docker::{read_inspect, EngineError, EngineReader};

/// How many times an inspect is tried before the container is skipped.
pub const INSPECT_TRIES: u32 = 3;

/// The pause before the second try; doubled before each later one.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// What became of one container's inspect.
#[derive(Debug)]
pub enum Inspected {
    /// Its answer, and the spec a snapshot records of it when one was asked for and it is a member
    /// ([`records`]).
    Found(Box<ContainerInspectResponse>, Option<Box<ContainerSpec>>),
    /// The engine has no such container (404).
    Gone,
    /// Every try got an answer that could not be used; what the view holds for it stays as it is.
    Skipped,
}

/// Inspects `id`, up to [`INSPECT_TRIES`] times while the engine answers with something that cannot be used;
/// `for_snapshot`, from the engine's own JSON, with the spec a snapshot records of it. `Err` only when the
/// engine could not be reached.
pub async fn inspect(
    engine: &dyn EngineReader,
    id: &str,
    for_snapshot: bool,
) -> Result<Inspected, EngineError> {
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=INSPECT_TRIES {
        let answer = if for_snapshot {
            read_for_snapshot(engine, id).await
        } else {
            engine
                .inspect(id)
                .await
                .map(|found| found.map(|inspect| (inspect, None)))
        };
        match answer {
            Ok(Some((found, spec))) => {
                return Ok(Inspected::Found(Box::new(found), spec.map(Box::new)))
            }
            Ok(None) => return Ok(Inspected::Gone),
            Err(err) if err.is_unreachable() => return Err(err),
            Err(err) if attempt == INSPECT_TRIES => {
                tracing::warn!(
                    container = %id,
                    reason = %shared::error_chain(&err),
                    tries = INSPECT_TRIES,
                    "skipped a container whose inspect keeps failing; the view keeps what it had for it",
                );
            }
            Err(err) => {
                tracing::debug!(container = %id, attempt, reason = %shared::error_chain(&err), "inspect failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    Ok(Inspected::Skipped)
}

/// One read of the engine's JSON of `id`, for the view and for a snapshot ([`read_inspect`]).
async fn read_for_snapshot(
    engine: &dyn EngineReader,
    id: &str,
) -> Result<Option<(ContainerInspectResponse, Option<ContainerSpec>)>, EngineError> {
    let Some(raw) = engine.inspect_raw(id).await? else {
        return Ok(None);
    };
    let member = records(&raw);
    read_inspect(raw, member)
        .map(Some)
        .map_err(|source| EngineError::Unreadable {
            op: "inspect",
            target: id.to_owned(),
            source,
        })
}
