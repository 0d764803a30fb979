//! An in-memory engine for unit tests: containers the test puts in, an event stream the test feeds, a
//! switch that makes it unreachable, one that freezes it (calls never answer, as with a stopped dockerd), and
//! a gate that holds inspects until the test opens it. Counts its re-lists and inspects (and how many were in
//! flight at once), so a test can prove a reconnect re-listed or that the applier kept its bound.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, EventActor, EventMessage};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use shared::{in_scope, Engine as EngineIdentity, EngineKind, Scope};
use tokio::sync::{mpsc, watch};

use super::{EngineError, EngineReader, Result};

/// A cheap-to-clone handle; clones share one engine.
#[derive(Debug, Clone)]
pub(crate) struct FakeEngine {
    inner: Arc<Mutex<Engine>>,
    /// While true, inspects wait (counted as in flight) and read the container only once it turns false.
    gate: Arc<watch::Sender<bool>>,
    /// While true, pings and inspects never answer.
    frozen: Arc<watch::Sender<bool>>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            gate: Arc::new(watch::Sender::new(false)),
            frozen: Arc::new(watch::Sender::new(false)),
        }
    }
}

#[derive(Debug, Default)]
struct Engine {
    /// By id.
    containers: BTreeMap<String, ContainerInspectResponse>,
    unreachable: bool,
    /// Feeds the event stream handed out last; a new `events` call replaces it.
    events: Option<mpsc::UnboundedSender<Result<EventMessage>>>,
    lists: usize,
    inspects: usize,
    /// Ids inspected, in the order their answers were read.
    inspected: Vec<String>,
    in_flight: usize,
    max_in_flight: usize,
    pings: usize,
    /// What `identify` answers.
    kind: EngineKind,
    /// Inspects of these ids still to fail with an answer that cannot be read, by id.
    unreadable: HashMap<String, usize>,
    /// What `past_events` answers: the events the engine still holds.
    past: Vec<EventMessage>,
    /// Which image each reference names, and how often one was asked for.
    images: HashMap<String, String>,
    image_lookups: usize,
    /// Feeds the image event stream handed out last.
    image_events: Option<mpsc::UnboundedSender<Result<EventMessage>>>,
}

impl FakeEngine {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.inner.lock().expect("fake engine lock")
    }

    /// Creates or replaces a container. `state` is the engine's word (`running`, `exited`, `paused`…).
    pub(crate) fn put(&self, id: &str, name: &str, state: &str, labels: &[(&str, &str)]) {
        let labels: HashMap<&str, &str> = labels.iter().copied().collect();
        // Read as the real reader reads the engine's JSON, so a test may put Podman's states.
        let inspect: ContainerInspectResponse =
            shared::runtime::engine_json::inspect(serde_json::json!({
                "Id": id,
                "Name": format!("/{name}"),
                "Image": "sha256:0",
                "State": {"Status": state, "StartedAt": "2026-11-22T10:00:00Z"},
                "Config": {"Image": "busybox:latest", "Labels": labels},
                "HostConfig": {},
            }))
            .expect("a valid inspect answer");
        self.engine().containers.insert(id.to_owned(), inspect);
    }

    /// Points `reference` at the image `id`, as `docker tag` does, and sends the `tag` event.
    pub(crate) fn tag_image(&self, reference: &str, id: &str) {
        let mut engine = self.engine();
        engine.images.insert(reference.to_owned(), id.to_owned());
        if let Some(events) = &engine.image_events {
            let _ = events.send(Ok(EventMessage {
                action: Some("tag".to_owned()),
                actor: Some(EventActor {
                    id: Some(id.to_owned()),
                    attributes: Some(HashMap::from([("name".to_owned(), reference.to_owned())])),
                }),
                ..EventMessage::default()
            }));
        }
    }

    /// How many image lookups were made.
    pub(crate) fn image_lookups(&self) -> usize {
        self.engine().image_lookups
    }

    /// Makes the engine say it is `kind` when asked `GET /version`.
    pub(crate) fn set_kind(&self, kind: EngineKind) {
        self.engine().kind = kind;
    }

    /// Makes the next `times` inspects of `id` answer something that cannot be read, as Docker's models
    /// failed on Podman's `stopped`.
    pub(crate) fn fail_inspects(&self, id: &str, times: usize) {
        self.engine().unreadable.insert(id.to_owned(), times);
    }

    /// Marks a container as started with `--rm` (`HostConfig.AutoRemove`).
    pub(crate) fn set_auto_remove(&self, id: &str) {
        if let Some(inspect) = self.engine().containers.get_mut(id) {
            inspect
                .host_config
                .get_or_insert_with(Default::default)
                .auto_remove = Some(true);
        }
    }

    /// Sets `HostConfig.NetworkMode` (`container:<id>` joins another container's network namespace).
    pub(crate) fn set_network_mode(&self, id: &str, mode: &str) {
        if let Some(inspect) = self.engine().containers.get_mut(id) {
            inspect
                .host_config
                .get_or_insert_with(Default::default)
                .network_mode = Some(mode.to_owned());
        }
    }

    /// Records that the container's process exited with `code` at `finished` (`State.ExitCode`,
    /// `State.FinishedAt`), as the engine does when it dies.
    pub(crate) fn set_exit(&self, id: &str, code: i64, finished: chrono::DateTime<chrono::Utc>) {
        if let Some(inspect) = self.engine().containers.get_mut(id) {
            let state = inspect.state.get_or_insert_with(Default::default);
            state.exit_code = Some(code);
            state.finished_at = Some(finished.to_rfc3339());
        }
    }

    pub(crate) fn remove(&self, id: &str) {
        self.engine().containers.remove(id);
    }

    /// Makes every call fail as if the socket were gone (or work again).
    pub(crate) fn set_unreachable(&self, unreachable: bool) {
        self.engine().unreachable = unreachable;
    }

    /// Sends an event on the current stream. `false` when no stream is open.
    pub(crate) fn emit(&self, action: &str, id: &str) -> bool {
        let event = EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some(id.to_owned()),
                attributes: None,
            }),
            ..EventMessage::default()
        };
        self.send(Ok(event))
    }

    /// Makes the engine remember `events` (action and container id, in order) as having happened while
    /// nobody watched: what `past_events` answers from now on.
    pub(crate) fn remember(&self, events: &[(&str, &str)]) {
        self.engine().past = events
            .iter()
            .map(|(action, id)| EventMessage {
                action: Some((*action).to_owned()),
                actor: Some(EventActor {
                    id: Some((*id).to_owned()),
                    attributes: None,
                }),
                ..EventMessage::default()
            })
            .collect();
    }

    /// Breaks the current event stream with an error.
    pub(crate) fn break_stream(&self) -> bool {
        self.send(Err(unreachable("following", "the event stream")))
    }

    fn send(&self, item: Result<EventMessage>) -> bool {
        self.engine()
            .events
            .as_ref()
            .is_some_and(|events| events.send(item).is_ok())
    }

    /// Whether an event stream is open (handed out and not yet dropped by the reader).
    pub(crate) fn streaming(&self) -> bool {
        self.engine()
            .events
            .as_ref()
            .is_some_and(|events| !events.is_closed())
    }

    /// Holds every inspect from now on until [`FakeEngine::open_gate`].
    pub(crate) fn close_gate(&self) {
        self.gate.send_replace(true);
    }

    pub(crate) fn open_gate(&self) {
        self.gate.send_replace(false);
    }

    /// Makes pings and inspects hang (or answer again), as a stopped (SIGSTOP) dockerd does.
    pub(crate) fn set_frozen(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }

    /// Sends an event with the engine's time `nanos` (nanoseconds since the epoch).
    pub(crate) fn emit_at(&self, action: &str, id: &str, nanos: i64) -> bool {
        let event = EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some(id.to_owned()),
                attributes: None,
            }),
            time: Some(nanos / 1_000_000_000),
            time_nano: Some(nanos),
            ..EventMessage::default()
        };
        self.send(Ok(event))
    }

    /// Sends an event with the engine's time `nanos` and the actor's `attributes` (such as `exitCode`).
    pub(crate) fn emit_with(
        &self,
        action: &str,
        id: &str,
        nanos: i64,
        attributes: &[(&str, &str)],
    ) -> bool {
        let event = EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some(id.to_owned()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                        .collect(),
                ),
            }),
            time: Some(nanos / 1_000_000_000),
            time_nano: Some(nanos),
            ..EventMessage::default()
        };
        self.send(Ok(event))
    }

    /// Inspects waiting at the gate (or on the engine) right now.
    pub(crate) fn in_flight(&self) -> usize {
        self.engine().in_flight
    }

    /// The most inspects ever in flight at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.engine().max_in_flight
    }

    /// The ids whose inspect answered, in order.
    pub(crate) fn inspected(&self) -> Vec<String> {
        self.engine().inspected.clone()
    }

    pub(crate) fn pings(&self) -> usize {
        self.engine().pings
    }

    pub(crate) fn lists(&self) -> usize {
        self.engine().lists
    }

    pub(crate) fn inspects(&self) -> usize {
        self.engine().inspects
    }
}

fn unreachable(op: &'static str, target: &str) -> EngineError {
    EngineError::from_call(op, target, BollardError::RequestTimeoutError)
}

impl EngineReader for FakeEngine {
    fn identify(&self) -> BoxFuture<'_, Result<EngineIdentity>> {
        let engine = self.engine();
        let result = if engine.unreachable {
            Err(unreachable("asking the version of", "the engine"))
        } else {
            Ok(EngineIdentity {
                kind: engine.kind,
                version: "0.0.0".to_owned(),
                api_version: "1.41".to_owned(),
            })
        };
        async move { result }.boxed()
    }

    fn negotiate(&self) -> BoxFuture<'_, Result<()>> {
        let result = if self.engine().unreachable {
            Err(unreachable("negotiating", "the API version"))
        } else {
            Ok(())
        };
        async move { result }.boxed()
    }

    fn list<'a>(&'a self, scope: &'a Scope, all: bool) -> BoxFuture<'a, Result<Vec<String>>> {
        let mut engine = self.engine();
        engine.lists += 1;
        let result = if engine.unreachable {
            Err(unreachable("listing", "containers"))
        } else {
            Ok(engine
                .containers
                .values()
                .filter(|inspect| {
                    let labels: BTreeMap<String, String> = inspect
                        .config
                        .as_ref()
                        .and_then(|config| config.labels.clone())
                        .unwrap_or_default()
                        .into_iter()
                        .collect();
                    in_scope(scope, &labels)
                })
                .filter(|inspect| {
                    all || inspect
                        .state
                        .as_ref()
                        .and_then(|state| state.status)
                        .is_some_and(|status| status.to_string() == "running")
                })
                .filter_map(|inspect| inspect.id.clone())
                .collect())
        };
        async move { result }.boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        async move {
            self.frozen
                .subscribe()
                .wait_for(|frozen| !frozen)
                .await
                .ok();
            let mut engine = self.engine();
            engine.pings += 1;
            if engine.unreachable {
                Err(unreachable("pinging", "the engine"))
            } else {
                Ok(())
            }
        }
        .boxed()
    }

    /// The typed answer as JSON: the fake has nothing the models do not know.
    fn inspect_raw<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<serde_json::Value>>> {
        self.inspect(id)
            .map(|inspected| {
                inspected.map(|found| {
                    found.map(|inspect| serde_json::to_value(inspect).unwrap_or_default())
                })
            })
            .boxed()
    }

    fn inspect<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ContainerInspectResponse>>> {
        {
            let mut engine = self.engine();
            engine.inspects += 1;
            if engine.unreachable {
                return futures::future::ready(Err(unreachable("inspect", id))).boxed();
            }
            engine.in_flight += 1;
            engine.max_in_flight = engine.max_in_flight.max(engine.in_flight);
        }
        async move {
            // Both wait on a receiver subscribed now, so a gate closed before the call holds it.
            let mut gate = self.gate.subscribe();
            let mut frozen = self.frozen.subscribe();
            gate.wait_for(|closed| !closed).await.ok();
            frozen.wait_for(|frozen| !frozen).await.ok();
            let mut engine = self.engine();
            engine.in_flight -= 1;
            engine.inspected.push(id.to_owned());
            if let Some(left) = engine.unreadable.get_mut(id).filter(|left| **left > 0) {
                *left -= 1;
                return Err(EngineError::Unreadable {
                    op: "inspect",
                    target: id.to_owned(),
                    source: serde_json::from_str::<u8>("\"stopped\"").expect_err("not a number"),
                });
            }
            Ok(engine.containers.get(id).cloned())
        }
        .boxed()
    }

    fn past_events<'a>(
        &'a self,
        _scope: &'a Scope,
        _since: String,
        _until: String,
        _kind: EngineKind,
    ) -> BoxFuture<'a, Result<Vec<EventMessage>>> {
        let engine = self.engine();
        let answer = if engine.unreachable {
            Err(unreachable("reading", "past events"))
        } else {
            Ok(engine.past.clone())
        };
        async move { answer }.boxed()
    }

    fn events(
        &self,
        _scope: &Scope,
        _since: Option<String>,
        _kind: EngineKind,
    ) -> BoxStream<'static, Result<EventMessage>> {
        let mut engine = self.engine();
        if engine.unreachable {
            return futures::stream::once(async {
                Err(unreachable("following", "the event stream"))
            })
            .boxed();
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        engine.events = Some(sender);
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
        .boxed()
    }

    fn image_id<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        let mut engine = self.engine();
        engine.image_lookups += 1;
        let answer = if engine.unreachable {
            Err(unreachable("inspecting image", reference))
        } else {
            Ok(engine.images.get(reference).cloned())
        };
        async move { answer }.boxed()
    }

    fn image_events(&self, _since: Option<String>) -> BoxStream<'static, Result<EventMessage>> {
        let mut engine = self.engine();
        if engine.unreachable {
            return futures::stream::once(async {
                Err(unreachable("following", "the image events"))
            })
            .boxed();
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        engine.image_events = Some(sender);
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
        .boxed()
    }
}
