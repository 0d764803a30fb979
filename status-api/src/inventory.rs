//! Keeps the store current: a full re-list on start, after every reconnect and every `--resync-interval` as a
//! safety net, and the engine's event stream in between. Events are applied concurrently with a bound, in
//! order per container, several waiting for one container answered by one inspect ([`applier`]); re-lists
//! run beside them, so neither holds the other up. A ping every [`PING_INTERVAL`] notices an engine that
//! stopped answering although its connections stay open. One connection's state, and what each of these does
//! to it, is [`follow`]'s. The inventory is the only holder of the store's [`Writer`]; it reads the engine
//! through [`EngineReader`], so its unit tests run against a fake under paused time. How each container's
//! last exit came about — a job that ended, or a stop someone asked for — is read from the order of its
//! events ([`exits`]), and on every (re)connection from what the engine still remembers of the time nobody
//! watched ([`event_facts`]).

mod applier;
mod event_facts;
mod exits;
mod follow;
mod patient;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bollard::models::EventMessage;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use prometheus::Histogram;
use shared::backoff::Backoff;
use shared::{error_chain, in_scope, ContainerSpec, ContainerStatus, Scope};
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use crate::docker::{event_action, status_from_inspect, unix_seconds, EngineError, EngineReader};
use crate::metrics::Metrics;
use crate::snapshot::Member;
use crate::store::{Store, Writer};
use applier::{Applier, Batch};
use exits::Exits;
use patient::Inspected;

/// How many inspects a full re-list runs at once.
const INSPECT_CONCURRENCY: usize = 16;

/// How far back status-api asks the engine, on start, what happened before it watched (and at most how far
/// back after a reconnect): long enough for a restart of status-api or of the engine, short enough that the
/// answer stays small (Docker keeps only its last 256 events anyway; Podman keeps a log).
pub const RECALL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// How often the engine is pinged while it answers.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);

/// How long a ping may take: the engine answers `/_ping` in microseconds unless it is hung or drowning.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the engine is pinged while it does not answer, so the view is ready again soon after it does.
const PING_RETRY: Duration = Duration::from_millis(250);

/// How long after a `health_status` event on Podman its container is read once more. Podman 4 can send the
/// event before it has recorded the check's result, so the inspect the event leads to may still read the old
/// health; nothing else would say it changed until the next re-list.
pub const PODMAN_HEALTH_REREAD: Duration = Duration::from_millis(500);

/// How often a container the engine is removing is read again. A removal that fails leaves the container
/// `dead` and sends no event: nothing else would say so until the next re-list.
pub const REMOVAL_REREAD: Duration = Duration::from_secs(1);

/// The watch loop: the engine on one side, the store's writer on the other.
#[derive(Debug)]
pub struct Inventory {
    writer: Writer,
    engine: Arc<dyn EngineReader>,
    /// `dockstate_event_lag_seconds`; unregistered until [`Inventory::reporting_to`].
    event_lag: Histogram,
    /// How each container's last exit came about, from its events; kept across reconnects. Never held
    /// across an `.await`.
    exits: Mutex<Exits>,
    /// Where the first full re-list that reads every container sends the running ones, as the first
    /// snapshot's members ([`Inventory::recording_first_snapshot`]); `None` once sent, or when not asked.
    first_snapshot: Mutex<Option<oneshot::Sender<Vec<Member>>>>,
}

/// An inspect for a batch of events: the container, its batch, and what the engine said — `None` when the
/// inspect was given up on ([`patient`]), so the view keeps what it had.
type Applied = (
    String,
    Batch,
    Result<Option<Option<ContainerStatus>>, EngineError>,
);

impl Inventory {
    pub fn new(writer: Writer, engine: Arc<dyn EngineReader>) -> Self {
        let event_lag = Histogram::with_opts(prometheus::HistogramOpts::new(
            "dockstate_event_lag_seconds",
            "unregistered",
        ))
        .expect("valid metric");
        Self {
            writer,
            engine,
            event_lag,
            exits: Mutex::new(Exits::default()),
            first_snapshot: Mutex::new(None),
        }
    }

    /// Sends the running containers of the first full re-list that reads every container to `members`,
    /// from the very inspects that fill the view: a first start then reads each container once, where a
    /// snapshot taken on its own would read each again (at 20,000 containers, 20,000 more inspects).
    pub fn recording_first_snapshot(self, members: oneshot::Sender<Vec<Member>>) -> Self {
        *self
            .first_snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(members);
        self
    }

    fn exits(&self) -> MutexGuard<'_, Exits> {
        self.exits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Observes the lag of every applied event into `metrics`' `dockstate_event_lag_seconds`.
    pub fn reporting_to(mut self, metrics: &Metrics) -> Self {
        self.event_lag = metrics.event_lag();
        self
    }

    /// A reader of the store this inventory keeps current.
    pub fn store(&self) -> Store {
        self.writer.store()
    }

    /// Follows the engine until `shutdown` turns true: re-list, stream events, re-list on a timer; on any
    /// failure mark the view not live, back off (jittered, capped) and start over with a fresh re-list.
    pub async fn watch(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        // Since when nobody watched the engine: what happened from then on is recalled ([`Self::recall`]).
        let mut unwatched_since = Utc::now() - RECALL;
        loop {
            let mut went_live = false;
            let outcome = tokio::select! {
                outcome = self.follow(&mut backoff, unwatched_since, &mut went_live) => outcome,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            if went_live {
                unwatched_since = Utc::now() - chrono::TimeDelta::seconds(1);
            }
            // The events in hand died with the connection; the re-list on reconnect covers them.
            self.writer.event_progress(0, None);
            let reason = match outcome {
                Ok(()) => "the engine closed the event stream".to_owned(),
                Err(err) => error_chain(&err),
            };
            let delay = backoff.fail(Instant::now(), rand::random::<f64>());
            tracing::warn!(reason = %reason, retry_in = ?delay, "lost the Docker engine; will re-list and resubscribe");
            self.writer.disconnected(reason);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Re-reads every container in scope and replaces the view with what the engine says.
    #[tracing::instrument(skip_all, fields(containers = tracing::field::Empty))]
    pub async fn resync(&self) -> Result<(), EngineError> {
        let listed = self.read_all().await;
        if let Ok(containers) = &listed {
            // No event stream runs beside this re-list: whatever it did not find is gone (a `destroy` missed
            // while the stream was down).
            self.exits().retain(|id| containers.contains_key(id));
        }
        self.replace_all(listed, HashSet::new())
    }

    /// Replaces the view with a re-list's result, except for the containers in `touched`: events about them
    /// came while the re-list ran, so what the view holds (or their inspect still in flight) is newer.
    fn replace_all(
        &self,
        listed: Result<HashMap<String, ContainerStatus>, EngineError>,
        touched: HashSet<String>,
    ) -> Result<(), EngineError> {
        match listed {
            Ok(mut containers) => {
                for id in touched {
                    match self.writer.store().container(&id) {
                        Some(current) => containers.insert(id, current),
                        None => containers.remove(&id),
                    };
                }
                tracing::Span::current().record("containers", containers.len());
                self.writer.replace_all(containers);
                // A re-list parsed an inspect answer per container and dropped it: give that memory back.
                shared::runtime::process::release_free_memory();
                Ok(())
            }
            Err(err) => {
                self.writer.engine_failed(error_chain(&err));
                Err(err)
            }
        }
    }

    async fn read_all(&self) -> Result<HashMap<String, ContainerStatus>, EngineError> {
        let scope = self.writer.scope();
        let for_snapshot = self
            .first_snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        let ids = self.engine.list(scope, true).await?;
        // Each inspect answer (kilobytes) becomes its status (a few hundred bytes) — and, for the first
        // snapshot, its member — as soon as it arrives, so a re-list of 1,000 containers never holds 1,000
        // inspect answers at once.
        let engine = self.engine.as_ref();
        let read = Read {
            statuses: Vec::new(),
            members: for_snapshot.then(Vec::new),
        };
        let read = futures::stream::iter(ids)
            .map(|id| async move {
                Ok::<_, EngineError>(match patient::inspect(engine, &id, for_snapshot).await? {
                    Inspected::Found(inspect, spec) => {
                        let status = status_from_inspect(&inspect).map(|mut status| {
                            self.exits().annotate(&mut status);
                            status
                        });
                        (status, Some(spec))
                    }
                    Inspected::Gone => (None, Some(None)),
                    // What the view held for it stands until an inspect answers.
                    Inspected::Skipped => (self.writer.store().container(&id), None),
                })
            })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .try_fold(read, |read, (status, spec)| {
                futures::future::ready(Ok(read.add(scope, status, spec)))
            })
            .await?;
        if for_snapshot {
            let first_snapshot = self
                .first_snapshot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            match (first_snapshot, read.members) {
                (Some(first_snapshot), Some(members)) => drop(first_snapshot.send(members)),
                // Dropped unsent: the keeper then takes the first snapshot with inspects of its own.
                (Some(_), None) => tracing::warn!(
                    "a container could not be read: the first snapshot is taken with inspects of its own"
                ),
                (None, _) => {}
            }
        }
        Ok(read
            .statuses
            .into_iter()
            .map(|status| (status.id.clone(), status))
            .collect())
    }

    /// Shows what the event itself proves ([`Inventory::foresee`]) and hands it to the applier, as backlog
    /// unless the view now shows its effect; the container's id and the event (in Docker's words) when it is
    /// one that can change the view. An event dated before `relisted_at` is a replay that the re-list already
    /// reflects: it is applied by its inspect (harmless) but neither counts towards the lag nor is observed in
    /// the histogram.
    fn receive(
        &self,
        applier: &mut Applier,
        event: EventMessage,
        relisted_at: DateTime<Utc>,
    ) -> Option<(String, &'static str)> {
        self.writer.count_event();
        let sent_at = event_time(&event);
        let time = sent_at.filter(|time| *time >= relisted_at);
        let actor = event.actor?;
        let id = actor.id?;
        let reported = event.action.unwrap_or_default();
        // In Docker's words (Podman's `remove` is `destroy`); every healthcheck run is an `exec_*` event,
        // which Docker's filter drops and Podman's stream (not filtered by name) carries: dropped here.
        let action = event_action(&reported)?;
        tracing::debug!(target: crate::HEAL_TRACE, container = %id, action = %reported, stage = "event", "engine event");
        // In the order the engine sent them, replays included: the order is what tells a stop from an end.
        self.exits().event(&id, action, sent_at);
        // A replay may be older than what the re-list read: only the inspect may apply it.
        let foreseen = time.is_some_and(|at| {
            let shown = self.foresee(&id, action, actor.attributes.as_ref(), Some(at));
            if shown {
                self.observe_lag(at);
            }
            shown
        });
        if foreseen {
            applier.receive_known(&id);
        } else {
            applier.receive(&id, time, action == "destroy");
        }
        Some((id, action))
    }

    /// Reads one container's current state for a batch of its events.
    async fn inspect(&self, id: String, batch: Batch) -> Applied {
        let span = tracing::info_span!("engine_events", container = %id, events = batch.len());
        let result = async {
            if batch.destroyed {
                return Ok(Some(None));
            }
            Ok(
                match patient::inspect(self.engine.as_ref(), &id, false).await? {
                    Inspected::Found(inspect, _) => Some(
                        status_from_inspect(&inspect)
                            .filter(|status| in_scope(self.writer.scope(), &status.labels)),
                    ),
                    Inspected::Gone => Some(None),
                    Inspected::Skipped => None,
                },
            )
        }
        .instrument(span)
        .await;
        (id, batch, result)
    }

    /// Applies one container's new state and records how long its events waited.
    fn apply(
        &self,
        applier: &mut Applier,
        id: String,
        batch: &Batch,
        status: Option<Option<ContainerStatus>>,
    ) {
        applier.finish(&id);
        // The backlog first, so a long poll woken by the new revision reads both at once.
        self.writer
            .event_progress(applier.backlog(), applier.oldest());
        // Events that came while this inspect was out have an inspect of their own coming, and may already
        // be in the view (`foresee`): this answer is older than both, so it must not undo them.
        if let Some(mut status) = status.filter(|_| !applier.is_waiting(&id)) {
            if let Some(status) = &mut status {
                self.exits().annotate(status);
            }
            tracing::debug!(target: crate::HEAL_TRACE, container = %id, stage = "inspected", "view updated from the inspect");
            self.writer.apply(id, status);
        }
        for time in batch.times.iter().flatten() {
            self.observe_lag(*time);
        }
    }

    /// An event dated `time` by the engine has its effect in the view now.
    fn observe_lag(&self, time: DateTime<Utc>) {
        let lag = (Utc::now() - time).to_std().unwrap_or_default();
        self.event_lag.observe(lag.as_secs_f64());
    }
}

/// What a full re-list has read so far: the statuses in scope and, when it records the first snapshot, the
/// members (`None` once a container could not be read: a snapshot without it would call it unexpected).
struct Read {
    statuses: Vec<ContainerStatus>,
    members: Option<Vec<Member>>,
}

impl Read {
    /// One container's answer: its status, and the spec of it a snapshot records (`None`: it could not be
    /// read, and the view keeps what it had).
    fn add(
        mut self,
        scope: &Scope,
        status: Option<ContainerStatus>,
        spec: Option<Option<Box<ContainerSpec>>>,
    ) -> Self {
        if spec.is_none() {
            self.members = None;
        }
        let Some(status) = status.filter(|status| in_scope(scope, &status.labels)) else {
            return self;
        };
        if let (Some(members), Some(Some(spec))) = (&mut self.members, spec) {
            members.push(Member::new(&spec));
        }
        self.statuses.push(status);
        self
    }
}

/// The engine's time of an event, to the nanosecond when it says.
fn event_time(event: &EventMessage) -> Option<DateTime<Utc>> {
    match (event.time_nano, event.time) {
        (Some(nanos), _) => Some(DateTime::from_timestamp_nanos(nanos)),
        (None, Some(seconds)) => DateTime::from_timestamp(seconds, 0),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use shared::ContainerState;

    use super::*;
    use crate::baseline::BaselineReceiver;
    use crate::docker::fake::FakeEngine;

    const RUNNING_ID: &str = "a1";

    fn no_baseline() -> BaselineReceiver {
        // The sender is dropped: the store sees "no baseline" for good, as on a first start before Docker
        // answers.
        watch::channel(None).1
    }

    /// A watch loop over a fake engine scoped to `team=a`, already running.
    fn start(engine: &FakeEngine) -> (Store, watch::Sender<bool>) {
        let (store, stop, _) = start_reporting(engine);
        (store, stop)
    }

    /// [`start`], with the metrics it reports the event lag to.
    fn start_reporting(engine: &FakeEngine) -> (Store, watch::Sender<bool>, Metrics) {
        let writer = Writer::new(
            Some("team=a".parse().expect("selector")),
            Duration::from_secs(30),
            no_baseline(),
        );
        let metrics = Metrics::new();
        let inventory = Inventory::new(writer, Arc::new(engine.clone())).reporting_to(&metrics);
        let store = inventory.store();
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(inventory.watch(shutdown));
        (store, stop, metrics)
    }

    /// Polls `condition` every 10 ms of (paused) time, for at most 10 s of it.
    async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        for _ in 0..1_000 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what} never happened");
    }

    async fn live(engine: &FakeEngine, store: &Store) {
        eventually("the stream to be live", || {
            engine.streaming() && store.view().events_live
        })
        .await;
    }

    fn state_of(store: &Store, id: &str) -> Option<ContainerState> {
        store
            .view()
            .containers
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.state)
    }

    async fn settle(step: impl Future<Output = ()>) {
        step.await;
        // Let the loop take what was sent.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    fn cause_of(store: &Store, id: &str) -> Option<shared::ExitCause> {
        store
            .view()
            .containers
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.exit_cause)
    }

    #[tokio::test(start_paused = true)]
    async fn how_an_exit_came_about_is_read_from_the_events_and_outlives_a_re_list() {
        use shared::ExitCause;
        let engine = FakeEngine::new();
        // Exited before status-api started: nobody saw how.
        engine.put("old", "old", "exited", &[("team", "a")]);
        engine.set_exit("old", 0, Utc::now() - chrono::TimeDelta::minutes(5));
        engine.put("job", "job", "running", &[("team", "a")]);
        engine.put("svc", "svc", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        assert_eq!(cause_of(&store, "old"), Some(ExitCause::Unseen));
        assert_eq!(cause_of(&store, "job"), None, "running: no exit yet");

        // The job ends by itself: a bare `die`.
        let died = Utc::now();
        let nanos = died.timestamp_nanos_opt().expect("in range");
        engine.put("job", "job", "exited", &[("team", "a")]);
        engine.set_exit("job", 0, died);
        settle(async { assert!(engine.emit_with("die", "job", nanos, &[("exitCode", "0")])) })
            .await;
        assert_eq!(cause_of(&store, "job"), Some(ExitCause::Natural));

        // The service is stopped: `kill`, then `die`, then `stop`.
        engine.put("svc", "svc", "exited", &[("team", "a")]);
        engine.set_exit("svc", 0, died);
        for action in ["kill", "die", "stop"] {
            settle(async { assert!(engine.emit_with(action, "svc", nanos, &[])) }).await;
        }
        assert_eq!(cause_of(&store, "svc"), Some(ExitCause::Requested));

        // A reconnect re-lists every container: what the events told stays.
        assert!(engine.break_stream());
        eventually("the view to go not live", || !store.view().events_live).await;
        live(&engine, &store).await;
        assert_eq!(cause_of(&store, "job"), Some(ExitCause::Natural));
        assert_eq!(cause_of(&store, "svc"), Some(ExitCause::Requested));
        assert_eq!(cause_of(&store, "old"), Some(ExitCause::Unseen));

        // Started again: no exit, nothing asked.
        engine.put("svc", "svc", "running", &[("team", "a")]);
        settle(async { assert!(engine.emit_with("start", "svc", nanos + 1_000_000_000, &[])) })
            .await;
        assert_eq!(cause_of(&store, "svc"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn how_exits_came_about_while_nobody_watched_is_recalled_from_the_engine() {
        use shared::ExitCause;
        let engine = FakeEngine::new();
        let before = Utc::now() - chrono::TimeDelta::minutes(1);
        for id in ["stopped", "finished", "forgotten"] {
            engine.put(id, id, "exited", &[("team", "a")]);
            engine.set_exit(id, 0, before);
        }
        // What the engine still holds of the minute before status-api started.
        engine.remember(&[
            ("kill", "stopped"),
            ("die", "stopped"),
            ("stop", "stopped"),
            ("die", "finished"),
            ("exec_die", "finished"),
        ]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        assert_eq!(cause_of(&store, "stopped"), Some(ExitCause::Requested));
        assert_eq!(cause_of(&store, "finished"), Some(ExitCause::Natural));
        assert_eq!(cause_of(&store, "forgotten"), Some(ExitCause::Unseen));

        // The engine restarts and stops what ran under it (`kill`, `die`, `stop`) before the stream is back.
        engine.put("svc", "svc", "running", &[("team", "a")]);
        assert!(engine.emit("start", "svc"));
        eventually("svc to be listed", || store.view().containers.len() == 4).await;
        engine.put("svc", "svc", "exited", &[("team", "a")]);
        engine.set_exit("svc", 0, Utc::now());
        engine.remember(&[("kill", "svc"), ("die", "svc"), ("stop", "svc")]);
        assert!(engine.break_stream());
        eventually("the view to go not live", || !store.view().events_live).await;
        live(&engine, &store).await;
        assert_eq!(cause_of(&store, "svc"), Some(ExitCause::Requested));
    }

    #[tokio::test(start_paused = true)]
    async fn a_removal_that_fails_silently_is_seen_as_dead() {
        let engine = FakeEngine::new();
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;

        // `docker rm -f`: the engine kills it and removes it, `die` tells of it.
        engine.put(RUNNING_ID, "web", "removing", &[("team", "a")]);
        settle(async { assert!(engine.emit("die", RUNNING_ID)) }).await;
        assert_eq!(state_of(&store, RUNNING_ID), Some(ContainerState::Removing));
        // The removal fails: the container is dead, and the engine says nothing more.
        engine.put(RUNNING_ID, "web", "dead", &[("team", "a")]);
        tokio::time::sleep(REMOVAL_REREAD * 2).await;
        settle(async {}).await;
        assert_eq!(state_of(&store, RUNNING_ID), Some(ContainerState::Dead));
        // Nothing is read again once it is no longer being removed.
        let inspects = engine.inspects();
        tokio::time::sleep(REMOVAL_REREAD * 5).await;
        assert_eq!(engine.inspects(), inspects);
    }

    #[tokio::test(start_paused = true)]
    async fn start_die_and_destroy_events_update_the_store_and_bump_the_revision() {
        let engine = FakeEngine::new();
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        assert_eq!(state_of(&store, RUNNING_ID), Some(ContainerState::Running));
        let listed = store.revision();

        engine.put("b2", "api", "running", &[("team", "a")]);
        settle(async { assert!(engine.emit("start", "b2")) }).await;
        assert_eq!(state_of(&store, "b2"), Some(ContainerState::Running));
        let started = store.revision();
        assert!(started > listed);

        engine.put("b2", "api", "exited", &[("team", "a")]);
        settle(async { assert!(engine.emit("die", "b2")) }).await;
        assert_eq!(state_of(&store, "b2"), Some(ContainerState::Exited));
        let died = store.revision();
        assert!(died > started);

        engine.remove("b2");
        settle(async { assert!(engine.emit("destroy", "b2")) }).await;
        assert_eq!(state_of(&store, "b2"), None);
        assert!(store.revision() > died);
        assert_eq!(store.events_seen(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn events_out_of_scope_and_exec_events_change_nothing() {
        let engine = FakeEngine::new();
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        let before = store.revision();
        let inspects = engine.inspects();

        engine.put("c3", "elsewhere", "running", &[("team", "b")]);
        settle(async { assert!(engine.emit("start", "c3")) }).await;
        assert_eq!(state_of(&store, "c3"), None, "out of scope");

        settle(async { assert!(engine.emit("exec_start: /bin/check", RUNNING_ID)) }).await;
        settle(async { assert!(engine.emit("exec_die", RUNNING_ID)) }).await;
        assert_eq!(
            engine.inspects(),
            inspects + 1,
            "exec events are not inspected"
        );
        assert_eq!(store.revision(), before);
        assert_eq!(store.events_seen(), 3, "but they are counted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_stream_marks_the_view_not_live_and_a_reconnect_relists() {
        let engine = FakeEngine::new();
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        let lists = engine.lists();
        let before = store.revision();
        let mut revisions = store.subscribe();
        revisions.borrow_and_update();

        // The engine goes away: the stream breaks and re-lists fail meanwhile.
        engine.set_unreachable(true);
        assert!(engine.break_stream());
        eventually("the view to go not live", || !store.view().events_live).await;
        assert!(
            revisions.has_changed().expect("open"),
            "a long poll is woken"
        );
        let view = store.view();
        assert!(view.revision > before);
        assert!(!view.readiness.ready);
        assert!(!view.readiness.engine_reachable());
        let reason = view.readiness.reason.clone().unwrap_or_default();
        assert!(
            reason.contains("events: event stream not connected"),
            "{reason}"
        );
        assert!(reason.contains("docker: "), "{reason}");

        // What changed while nobody could see reaches the view through the re-list on reconnect.
        engine.put(RUNNING_ID, "web", "exited", &[("team", "a")]);
        engine.set_unreachable(false);
        live(&engine, &store).await;
        assert!(engine.lists() > lists, "a reconnect re-lists");
        assert_eq!(state_of(&store, RUNNING_ID), Some(ContainerState::Exited));
        assert!(store.view().readiness.engine_reachable());
    }

    #[tokio::test(start_paused = true)]
    async fn the_resync_timer_catches_what_no_event_said() {
        let engine = FakeEngine::new();
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);

        tokio::time::sleep(Duration::from_secs(31)).await;

        assert_eq!(state_of(&store, RUNNING_ID), Some(ContainerState::Running));
    }

    #[tokio::test(start_paused = true)]
    async fn a_containers_events_are_applied_in_order_and_those_that_wait_are_coalesced() {
        let engine = FakeEngine::new();
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        let inspects = engine.inspects();

        engine.close_gate();
        engine.put("b2", "api", "running", &[("team", "a")]);
        settle(async { assert!(engine.emit("start", "b2")) }).await;
        assert_eq!(engine.in_flight(), 1);
        // While that inspect is out, the container stops, starts and dies again.
        engine.put("b2", "api", "exited", &[("team", "a")]);
        for action in ["die", "start", "die"] {
            settle(async { assert!(engine.emit(action, "b2")) }).await;
        }
        assert_eq!(engine.in_flight(), 1, "one inspect per container at a time");
        assert_eq!(store.view().event_backlog, 4);

        engine.open_gate();
        eventually("the backlog to drain", || store.view().event_backlog == 0).await;
        assert_eq!(
            engine.inspects() - inspects,
            2,
            "the three events that waited were answered by one inspect"
        );
        assert_eq!(state_of(&store, "b2"), Some(ContainerState::Exited));
        assert_eq!(store.events_seen(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn what_an_event_proves_is_in_the_view_before_its_inspect_answers() {
        let engine = FakeEngine::new();
        engine.put("b2", "api", "exited", &[("team", "a")]);
        engine.put("c3", "db", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        eventually("both to be listed", || store.view().containers.len() == 2).await;

        // The engine is busy with the containers: their inspects wait.
        let listed = engine.inspects();
        engine.close_gate();
        engine.put("b2", "api", "running", &[("team", "a")]);
        let started = Utc::now();
        let nanos = started.timestamp_nanos_opt().expect("in range");
        settle(async { assert!(engine.emit_with("start", "b2", nanos, &[])) }).await;
        let view = store.view();
        assert_eq!(
            (view.event_backlog, view.oldest_pending_event),
            (0, None),
            "its inspect has not answered, but the view is not behind: it shows the start"
        );
        let b2 = view.containers.iter().find(|c| c.id == "b2").expect("b2");
        assert_eq!(b2.state, ContainerState::Running);
        assert_eq!(b2.exit_code, None);
        assert_eq!(b2.started_at, Some(started));

        // A `die` is shown at once, settling: it may be followed by `destroy` (`docker rm -f`), so only
        // its inspect settles it.
        // A `kill` before it tells no state by itself: nothing is behind on its account either.
        engine.put("c3", "db", "exited", &[("team", "a")]);
        let died = Utc::now();
        let nanos = died.timestamp_nanos_opt().expect("in range");
        settle(async { assert!(engine.emit_with("kill", "c3", nanos, &[("signal", "9")])) }).await;
        assert_eq!(
            store.view().event_backlog,
            0,
            "a kill changes nothing shown"
        );
        settle(async { assert!(engine.emit_with("die", "c3", nanos, &[("exitCode", "137")])) })
            .await;
        let view = store.view();
        let c3 = view.containers.iter().find(|c| c.id == "c3").expect("c3");
        assert_eq!(c3.state, ContainerState::Exited);
        assert_eq!(c3.exit_code, Some(137));
        assert_eq!(c3.finished_at, Some(died));
        assert!(c3.settling, "shown from the event, not yet confirmed");
        assert!(
            !view.containers.iter().any(|c| c.id == "b2" && c.settling),
            "a start proves what it shows"
        );
        assert_eq!(view.event_backlog, 0, "the die is shown too (settling)");

        // An event that tells nothing by itself is backlog until its inspect answers.
        let renamed = Utc::now().timestamp_nanos_opt().expect("in range");
        settle(async { assert!(engine.emit_with("rename", "b2", renamed, &[])) }).await;
        assert_eq!(
            store.view().event_backlog,
            1,
            "a rename waits for its inspect"
        );

        engine.open_gate();
        eventually("the inspects to answer", || {
            let view = store.view();
            view.event_backlog == 0 && view.containers.iter().all(|c| !c.settling)
        })
        .await;
        assert_eq!(state_of(&store, "b2"), Some(ContainerState::Running));
        assert_eq!(state_of(&store, "c3"), Some(ContainerState::Exited));
        assert_eq!(engine.inspects() - listed, 4, "one inspect for each event");
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_sixteen_inspects_run_at_once_and_the_backlog_counts_the_rest() {
        let engine = FakeEngine::new();
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;

        engine.close_gate();
        let ids: Vec<String> = (0..40).map(|n| format!("c{n:02}")).collect();
        for id in &ids {
            engine.put(id, id, "running", &[("team", "a")]);
            assert!(engine.emit("start", id));
        }
        eventually("the bound to be reached", || {
            engine.in_flight() == applier::MAX_IN_FLIGHT
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(engine.in_flight(), applier::MAX_IN_FLIGHT);
        let behind = store.view();
        assert_eq!(behind.event_backlog, 40);
        assert_eq!(behind.containers.len(), 0);

        engine.open_gate();
        eventually("every event to be applied", || {
            store.view().containers.len() == 40
        })
        .await;
        assert_eq!(engine.max_in_flight(), applier::MAX_IN_FLIGHT);
        assert_eq!(store.view().event_backlog, 0);
        assert_eq!(store.view().event_lag, Duration::ZERO);
        // First come, first served: the first sixteen answered before any other was asked.
        let mut first = engine.inspected()[..applier::MAX_IN_FLIGHT].to_vec();
        first.sort();
        assert_eq!(first, ids[..applier::MAX_IN_FLIGHT]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_replaced_under_its_name_never_vanishes_from_the_view() {
        let engine = FakeEngine::new();
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;

        // compose: the new container is created (its inspect held up behind the engine's locks), then the
        // old one is destroyed, which needs no inspect.
        engine.close_gate();
        engine.put("new", "web", "created", &[("team", "a")]);
        let now = Utc::now().timestamp_nanos_opt().expect("in range");
        let attributes = [("name", "web"), ("image", "busybox"), ("team", "a")];
        settle(async { assert!(engine.emit_with("create", "new", now, &attributes)) }).await;
        engine.remove(RUNNING_ID);
        settle(async { assert!(engine.emit_at("destroy", RUNNING_ID, now + 1)) }).await;

        let view = store.view();
        let web: Vec<_> = view.containers.iter().filter(|c| c.name == "web").collect();
        assert_eq!(web.len(), 1, "{:?}", view.containers);
        assert_eq!(web[0].id, "new");
        assert_eq!(web[0].state, ContainerState::Created);
        assert!(
            web[0].settling,
            "shown from the event until its inspect answers"
        );
        assert_eq!(web[0].image, "busybox");
        assert_eq!(web[0].labels.get("team").map(String::as_str), Some("a"));
        assert!(!web[0].labels.contains_key("name"), "{:?}", web[0].labels);

        // Out of scope: not shown.
        let outside = [("name", "db"), ("image", "busybox"), ("team", "b")];
        settle(async { assert!(engine.emit_with("create", "other", now + 2, &outside)) }).await;
        assert_eq!(state_of(&store, "other"), None);

        engine.open_gate();
        eventually("the inspect to confirm it", || {
            store
                .view()
                .containers
                .iter()
                .any(|c| c.id == "new" && !c.settling)
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_lag_is_the_age_of_the_oldest_waiting_event_and_is_observed_when_applied() {
        let engine = FakeEngine::new();
        let (store, _stop, metrics) = start_reporting(&engine);
        live(&engine, &store).await;

        engine.close_gate();
        engine.put("b2", "api", "running", &[("team", "a")]);
        let now = Utc::now().timestamp_nanos_opt().expect("in range");
        settle(async { assert!(engine.emit_at("start", "b2", now)) }).await;
        // The lag is measured on the wall clock, which paused time does not hold back.
        std::thread::sleep(Duration::from_millis(300));
        let behind = store.view();
        assert_eq!(behind.event_backlog, 1);
        assert!(
            behind.event_lag >= Duration::from_millis(300),
            "{:?}",
            behind.event_lag
        );

        engine.open_gate();
        eventually("the event to be applied", || {
            store.view().event_backlog == 0
        })
        .await;
        assert_eq!(store.view().event_lag, Duration::ZERO);
        let text = metrics.render(&store);
        assert!(
            text.contains("dockstate_event_lag_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("dockstate_event_lag_seconds_bucket{le=\"0.25\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("dockstate_event_lag_seconds_bucket{le=\"+Inf\"} 1"),
            "{text}"
        );

        // A replay of what happened before the re-list that opened this stream is applied, but it is not
        // lag: the re-list already showed it.
        let an_hour_ago = now - 3_600_000_000_000;
        engine.put("b2", "api", "exited", &[("team", "a")]);
        settle(async { assert!(engine.emit_at("die", "b2", an_hour_ago)) }).await;
        assert_eq!(state_of(&store, "b2"), Some(ContainerState::Exited));
        assert!(metrics
            .render(&store)
            .contains("dockstate_event_lag_seconds_count 1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_frozen_engine_is_not_ready_within_seconds_and_ready_again_once_it_answers() {
        let engine = FakeEngine::new();
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(engine.pings() >= 2, "pinged every {PING_INTERVAL:?}");
        assert!(store.view().readiness.engine_reachable());

        engine.set_frozen(true);
        let frozen = tokio::time::Instant::now();
        eventually("the engine check to fail", || {
            !store.view().readiness.engine_reachable()
        })
        .await;
        assert!(frozen.elapsed() <= PING_INTERVAL + PING_TIMEOUT + Duration::from_millis(50));
        let reason = store.view().readiness.reason.clone().unwrap_or_default();
        assert!(
            reason.contains("did not answer a ping within 1s"),
            "{reason}"
        );
        assert!(store.view().events_live, "the stream itself is still open");

        engine.set_frozen(false);
        let thawed = tokio::time::Instant::now();
        eventually("the engine check to pass", || {
            store.view().readiness.engine_reachable()
        })
        .await;
        assert!(
            thawed.elapsed() < Duration::from_secs(1),
            "{:?}",
            thawed.elapsed()
        );
        assert!(store.view().readiness.ready || store.view().baseline.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_reconnect_backoff_starts_over_once_a_new_stream_delivers() {
        let engine = FakeEngine::new();
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        // Without the reset, the fifth reconnect would wait 6.4 s or more (800 ms doubling).
        for round in 0..5 {
            assert!(engine.break_stream());
            let broke = tokio::time::Instant::now();
            eventually("the view to go not live", || !store.view().events_live).await;
            live(&engine, &store).await;
            let took = broke.elapsed();
            assert!(
                took < Duration::from_millis(1_500),
                "round {round}: {took:?}"
            );
            settle(async { assert!(engine.emit("start", RUNNING_ID)) }).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_loop() {
        let engine = FakeEngine::new();
        let writer = Writer::new(None, Duration::from_secs(30), no_baseline());
        let inventory = Inventory::new(writer, Arc::new(engine.clone()));
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(inventory.watch(shutdown));
        eventually("the stream to open", || engine.streaming()).await;
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stops at once")
            .expect("no panic");
    }
    #[tokio::test(start_paused = true)]
    async fn on_podman_died_remove_and_cleanup_are_applied_and_the_engine_is_named() {
        let engine = FakeEngine::new();
        engine.set_kind(shared::EngineKind::Podman);
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        assert_eq!(
            store.view().engine.as_ref().map(|engine| engine.kind),
            Some(shared::EngineKind::Podman)
        );

        // Between `died` and `cleanup` Podman says `stopped`: exited, and never `created`.
        engine.put(RUNNING_ID, "web", "stopped", &[("team", "a")]);
        settle(async { assert!(engine.emit("died", RUNNING_ID)) }).await;
        assert_eq!(state_of(&store, RUNNING_ID), Some(ContainerState::Exited));
        engine.put(RUNNING_ID, "web", "exited", &[("team", "a")]);
        settle(async { assert!(engine.emit("cleanup", RUNNING_ID)) }).await;
        assert_eq!(state_of(&store, RUNNING_ID), Some(ContainerState::Exited));

        let before = engine.inspects();
        engine.remove(RUNNING_ID);
        settle(async { assert!(engine.emit("remove", RUNNING_ID)) }).await;
        assert_eq!(state_of(&store, RUNNING_ID), None, "remove is destroy");
        assert_eq!(engine.inspects(), before, "a destroy needs no inspect");
        // Podman's stream is not filtered by name: its other events change nothing.
        let revision = store.revision();
        settle(async { assert!(engine.emit("sync", RUNNING_ID)) }).await;
        settle(async { assert!(engine.emit("exec_died", RUNNING_ID)) }).await;
        assert_eq!(store.revision(), revision);
    }

    #[tokio::test(start_paused = true)]
    async fn a_health_event_is_read_again_a_moment_later_on_podman_only() {
        for (kind, reads) in [
            (shared::EngineKind::Podman, 2),
            (shared::EngineKind::Docker, 1),
        ] {
            let engine = FakeEngine::new();
            engine.set_kind(kind);
            engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
            let (store, _stop) = start(&engine);
            live(&engine, &store).await;
            let before = engine.inspects();
            settle(async { assert!(engine.emit("health_status", RUNNING_ID)) }).await;
            tokio::time::sleep(PODMAN_HEALTH_REREAD * 2).await;
            settle(async {}).await;
            assert_eq!(
                engine.inspects() - before,
                reads,
                "{kind:?}: Podman 4 may send the event before it has recorded the health"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_inspect_that_keeps_failing_is_skipped_and_the_stream_stays_live() {
        let engine = FakeEngine::new();
        engine.put(RUNNING_ID, "web", "running", &[("team", "a")]);
        engine.put("b2", "api", "running", &[("team", "a")]);
        // Fails every try of the first re-list: skipped, and the re-list still stands.
        engine.fail_inspects("b2", patient::INSPECT_TRIES as usize);
        let (store, _stop) = start(&engine);
        live(&engine, &store).await;
        assert_eq!(state_of(&store, RUNNING_ID), Some(ContainerState::Running));
        assert_eq!(
            state_of(&store, "b2"),
            None,
            "skipped, nothing held for it yet"
        );
        let lists = engine.lists();

        // Fails twice, then answers: retried, applied.
        engine.put("b2", "api", "exited", &[("team", "a")]);
        engine.fail_inspects("b2", 2);
        settle(async { assert!(engine.emit("start", "b2")) }).await;
        eventually("the retried inspect to be applied", || {
            state_of(&store, "b2") == Some(ContainerState::Exited)
        })
        .await;

        // Fails every try: skipped; what the view held stays, and the stream was never dropped.
        engine.put(RUNNING_ID, "web", "exited", &[("team", "a")]);
        engine.fail_inspects(RUNNING_ID, patient::INSPECT_TRIES as usize);
        settle(async { assert!(engine.emit("update", RUNNING_ID)) }).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(state_of(&store, RUNNING_ID), Some(ContainerState::Running));
        assert!(store.view().events_live);
        assert!(store.view().readiness.engine_reachable());
        assert_eq!(engine.lists(), lists, "no reconnect, no re-list");
        assert!(engine.streaming());
    }

    /// A watch loop like [`start`]'s that records the first snapshot's members.
    fn start_recording(
        engine: &FakeEngine,
    ) -> (Store, oneshot::Receiver<Vec<Member>>, watch::Sender<bool>) {
        let writer = Writer::new(
            Some("team=a".parse().expect("selector")),
            Duration::from_secs(30),
            no_baseline(),
        );
        let (members, recorded) = oneshot::channel();
        let inventory =
            Inventory::new(writer, Arc::new(engine.clone())).recording_first_snapshot(members);
        let store = inventory.store();
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(inventory.watch(shutdown));
        (store, recorded, stop)
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_re_list_reads_each_container_once_for_the_view_and_the_first_snapshot() {
        let engine = FakeEngine::new();
        engine.put("b1", "web", "running", &[("team", "a")]);
        engine.put("b2", "batch", "exited", &[("team", "a")]);
        engine.put("b3", "paused", "paused", &[("team", "a")]);
        engine.put("b4", "job", "running", &[("team", "a")]);
        engine.set_auto_remove("b4");
        engine.put("b5", "other", "running", &[("team", "b")]);
        let (store, recorded, _stop) = start_recording(&engine);

        let members = recorded.await.expect("the first re-list sends its members");

        let mut names: Vec<&str> = members.iter().map(Member::name).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            vec!["paused", "web"],
            "the running in scope, but not --rm"
        );
        live(&engine, &store).await;
        assert_eq!(store.view().containers.len(), 4);
        assert_eq!(engine.inspects(), 4, "one inspect per container in scope");
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_that_cannot_be_read_leaves_the_first_snapshot_to_the_keeper() {
        let engine = FakeEngine::new();
        engine.put("b1", "web", "running", &[("team", "a")]);
        engine.put("b2", "api", "running", &[("team", "a")]);
        engine.fail_inspects("b2", patient::INSPECT_TRIES as usize);
        let (store, recorded, _stop) = start_recording(&engine);

        live(&engine, &store).await;

        assert!(
            recorded.await.is_err(),
            "without api the snapshot would call it unexpected: nothing is sent"
        );
    }
}
