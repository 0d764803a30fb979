//! Reading the engine's JSON whatever engine wrote it, for both programs. The client library's models know
//! Docker's container states only, so one state they do not know — Podman's `stopped` between `died` and
//! `cleanup`, or any state a newer engine adds — would fail a whole list or inspect. Here the engine's own
//! words are read first and turned into what they mean, never into `created` by default.

use bollard::models::ContainerInspectResponse;
use futures::TryStreamExt;
use serde_json::Value;

use super::engine_error::{EngineError, Result};
use crate::model::ContainerState;

/// What an engine's `State.Status` means, with the engine's booleans as the tie-breaker for a state nobody
/// knows. Podman's `stopped` (died, not yet cleaned up) is `exited`; its `configured` and `initialized` (made,
/// never started) are `created`; Docker's and Podman's `stopping` is still `running`. A state nobody knows
/// is what the booleans say — running, paused, restarting, dead — and otherwise `exited`: not running, and
/// never `created`, which would claim it never ran.
pub fn engine_state(status: &str, flags: StateFlags) -> ContainerState {
    match status {
        "stopped" | "exited" => ContainerState::Exited,
        "stopping" => ContainerState::Running,
        "configured" | "initialized" | "created" => ContainerState::Created,
        known => known.parse().unwrap_or_else(|_| flags.state()),
    }
}

/// The booleans beside `State.Status` in inspect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateFlags {
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub dead: bool,
}

impl StateFlags {
    fn of(state: &Value) -> Self {
        let flag = |name: &str| state.get(name).and_then(Value::as_bool).unwrap_or(false);
        Self {
            running: flag("Running"),
            paused: flag("Paused"),
            restarting: flag("Restarting"),
            dead: flag("Dead"),
        }
    }

    fn state(self) -> ContainerState {
        if self.paused {
            ContainerState::Paused
        } else if self.restarting {
            ContainerState::Restarting
        } else if self.running {
            ContainerState::Running
        } else if self.dead {
            ContainerState::Dead
        } else {
            ContainerState::Exited
        }
    }
}

/// A container's name as its inspect answer gives it, without the `/` the engine writes before it.
pub fn container_name(inspect: &ContainerInspectResponse) -> String {
    inspect
        .name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned()
}

/// An inspect answer as the engine wrote it, its `State.Status` rewritten to the Docker state it means (see
/// [`engine_state`]) so that the typed model reads it.
pub fn inspect(mut raw: Value) -> Result<ContainerInspectResponse, serde_json::Error> {
    if let Some(state) = raw.get_mut("State").filter(|state| state.is_object()) {
        let flags = StateFlags::of(state);
        if let Some(status) = state.get("Status").and_then(Value::as_str) {
            let meant = engine_state(status, flags);
            if meant.as_str() != status {
                tracing::debug!(engine_state = status, read_as = %meant, "an engine state Docker does not name");
            }
            state["Status"] = Value::String(meant.as_str().to_owned());
        }
    }
    serde_json::from_value(raw)
}

/// The ids in a list answer (`GET /containers/json`), whatever else each entry says. Read one entry at a time,
/// keeping only its `Id`: the answer's whole tree (every container's labels, ports, mounts, networks) is about
/// 2.7 KB a container — over 50 MB at 20,000 — where the ids are 64 bytes each. An answer that is not a list is
/// an error, not an empty engine.
pub fn listed_ids(answer: &[u8]) -> serde_json::Result<Vec<String>> {
    struct Ids(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Ids {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_seq(Ids(Vec::new()))
        }
    }
    impl<'de> serde::de::Visitor<'de> for Ids {
        type Value = Ids;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of containers")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<Ids, A::Error> {
            while let Some(entry) = seq.next_element::<Value>()? {
                if let Some(id) = entry.get("Id").and_then(Value::as_str) {
                    self.0.push(id.to_owned());
                }
            }
            Ok(self)
        }
    }
    serde_json::from_slice::<Ids>(answer).map(|ids| ids.0)
}

/// The most a JSON answer read by [`get_json`] may be.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// `GET path` (from `/containers/`, with its query) as the engine's own JSON, or `None` on 404; `op` and
/// `target` name the call in errors. A read, whatever the path ([`get_body`]).
pub async fn get_json(
    docker: &bollard::Docker,
    path: String,
    op: &'static str,
    target: &str,
) -> Result<Option<Value>> {
    let Some(body) = get_body(docker, path, op, target).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|source| EngineError::Unreadable {
            op,
            target: target.to_owned(),
            source,
        })
}

/// The ids a container list (`GET path`, `/containers/json?…`) names ([`listed_ids`]); none on 404.
pub async fn get_ids(
    docker: &bollard::Docker,
    path: String,
    op: &'static str,
    target: &str,
) -> Result<Vec<String>> {
    let Some(body) = get_body(docker, path, op, target).await? else {
        return Ok(Vec::new());
    };
    listed_ids(&body).map_err(|source| EngineError::Unreadable {
        op,
        target: target.to_owned(),
        source,
    })
}

/// `GET path` (from `/containers/`, with its query): the answer's bytes, or `None` on 404. bollard has no
/// untyped call: its container export (a GET answered as a byte stream) is sent to `path` instead. A read,
/// whatever the path.
async fn get_body(
    docker: &bollard::Docker,
    path: String,
    op: &'static str,
    target: &str,
) -> Result<Option<Vec<u8>>> {
    let docker = docker.clone().with_request_modifier(move |mut request| {
        let uri = request.uri().to_string();
        if let Some(at) = uri.find("/containers/") {
            if let Ok(read) = format!("{}{path}", &uri[..at]).parse() {
                *request.uri_mut() = read;
            }
        }
        request
    });
    // A list or an inspect is kilobytes to a few megabytes. Should the path ever not be rewritten (a bollard
    // that spells the export call differently), the engine would stream a filesystem: stop reading there.
    let read = docker
        .export_container("read")
        .try_fold(Vec::new(), |mut body, chunk| async move {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ANSWER_BYTES {
                return Err(bollard::errors::Error::IOError {
                    err: std::io::Error::other(format!(
                        "the engine's answer is over {MAX_ANSWER_BYTES} bytes: not a list or an inspect"
                    )),
                });
            }
            Ok(body)
        })
        .await;
    match read {
        Ok(body) => Ok(Some(body)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(err) => Err(EngineError::from_call(op, target.to_owned(), err)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_list_answer_is_read_for_its_ids_whatever_else_its_entries_say() {
        let answer = json!([
            {"Id": "a1", "Names": ["/web"], "State": "stopped", "Labels": {"team": "a"}, "Ports": []},
            {"Names": ["/no-id"]},
            7,
            {"Id": "b2", "Mounts": [{"Type": "volume"}]},
        ]);
        let ids = listed_ids(answer.to_string().as_bytes()).expect("a list");
        assert_eq!(ids, vec!["a1", "b2"]);
        assert!(
            listed_ids(br#"{"message": "page not found"}"#).is_err(),
            "not a list"
        );
    }

    #[test]
    fn podman_states_mean_what_they_say_and_nothing_unknown_becomes_created() {
        let none = StateFlags::default();
        assert_eq!(engine_state("stopped", none), ContainerState::Exited);
        assert_eq!(engine_state("exited", none), ContainerState::Exited);
        assert_eq!(engine_state("configured", none), ContainerState::Created);
        assert_eq!(engine_state("initialized", none), ContainerState::Created);
        let running = StateFlags {
            running: true,
            ..none
        };
        assert_eq!(engine_state("stopping", running), ContainerState::Running);
        assert_eq!(engine_state("paused", none), ContainerState::Paused);
        // A state no engine has named yet: what the booleans say, and never `created`.
        assert_eq!(engine_state("hibernating", none), ContainerState::Exited);
        assert_eq!(engine_state("", none), ContainerState::Exited);
        assert_eq!(engine_state("frobbing", running), ContainerState::Running);
        let paused = StateFlags {
            running: true,
            paused: true,
            ..none
        };
        assert_eq!(engine_state("frobbing", paused), ContainerState::Paused);
        let dead = StateFlags { dead: true, ..none };
        assert_eq!(engine_state("frobbing", dead), ContainerState::Dead);
        for state in ContainerState::ALL {
            assert_eq!(engine_state(state.as_str(), none), state, "Docker's own");
        }
    }

    #[test]
    fn an_inspect_in_a_state_the_models_do_not_know_is_read() {
        let raw = json!({
            "Id": "a".repeat(64), "Name": "/web",
            "State": {"Status": "stopped", "Running": false, "ExitCode": 137,
                      "FinishedAt": "2026-11-22T10:00:02Z"},
            "Config": {"Image": "busybox:latest"},
        });
        assert!(
            serde_json::from_value::<ContainerInspectResponse>(raw.clone()).is_err(),
            "the client's models refuse `stopped`: the reason this module exists"
        );
        let read = inspect(raw).expect("read");
        let state = read.state.expect("a state");
        assert_eq!(
            state.status.map(|s| s.to_string()).as_deref(),
            Some("exited")
        );
        assert_eq!(state.exit_code, Some(137));
    }

    #[test]
    fn a_container_name_loses_the_engine_s_slash_and_a_missing_one_is_empty() {
        let named = inspect(json!({"Id": "a1", "Name": "/web"})).expect("read");
        assert_eq!(container_name(&named), "web");
        let unnamed = inspect(json!({"Id": "a1"})).expect("read");
        assert_eq!(container_name(&unnamed), "");
    }

    #[test]
    fn a_list_gives_its_ids_whatever_the_states() {
        let raw = json!([
            {"Id": "a1", "State": "stopped"},
            {"Id": "b2", "State": "running"},
            {"State": "running"},
        ]);
        let bytes = serde_json::to_vec(&raw).expect("bytes");
        assert_eq!(listed_ids(&bytes).expect("a list"), ["a1", "b2"]);
        // Not a list: an error, never an engine without containers.
        assert!(listed_ids(br#"{"message": "page not found"}"#).is_err());
    }
}
