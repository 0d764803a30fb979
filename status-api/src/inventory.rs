//! Keeps the store current: a full re-list on start, after every reconnect and every `--resync-interval` as a
//! safety net, and the engine's event stream in between. It is the only holder of the store's [`Writer`];
//! it reads the engine through [`EngineReader`], so its unit tests run against a fake under paused time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::models::EventMessage;
use futures::{StreamExt, TryStreamExt};
use shared::backoff::Backoff;
use shared::{error_chain, in_scope, ContainerStatus};
use tokio::sync::watch;
use tracing::Instrument;

use crate::docker::{status_from_inspect, EngineError, EngineReader};
use crate::store::{Store, Writer};

/// How many inspects a full re-list runs at once.
const INSPECT_CONCURRENCY: usize = 16;

/// A connection that has stayed up this long proves the trouble is over: the backoff starts again from
/// its first step.
const QUIET_PERIOD: Duration = Duration::from_secs(60);

/// The watch loop: the engine on one side, the store's writer on the other.
#[derive(Debug)]
pub struct Inventory {
    writer: Writer,
    engine: Arc<dyn EngineReader>,
}

impl Inventory {
    pub fn new(writer: Writer, engine: Arc<dyn EngineReader>) -> Self {
        Self { writer, engine }
    }

    /// A reader of the store this inventory keeps current.
    pub fn store(&self) -> Store {
        self.writer.store()
    }

    /// Follows the engine until `shutdown` turns true: re-list, stream events, re-list on a timer; on any
    /// failure mark the view not live, back off (jittered, capped) and start over with a fresh re-list.
    pub async fn watch(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        loop {
            let outcome = tokio::select! {
                outcome = self.follow(&mut backoff) => outcome,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
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

    /// One connection's life: returns when the stream ends or anything fails.
    async fn follow(&self, backoff: &mut Backoff) -> Result<(), EngineError> {
        self.engine.negotiate().await?;
        // Events are asked for from a moment before the re-list, so nothing that happens while it runs is
        // missed; replaying a few is harmless, as every event leads to a fresh inspect.
        let since = unix_seconds(SystemTime::now() - Duration::from_secs(1));
        self.resync().await?;
        let mut events = self.engine.events(self.writer.scope(), Some(since));
        self.writer.set_events_live(true);
        let interval = self.writer.resync_interval();
        let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let connected = tokio::time::Instant::now();
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => self.apply_event(event).await?,
                    Some(Err(err)) => return Err(err),
                    None => return Ok(()),
                },
                _ = resync.tick() => self.resync().await?,
            }
            if connected.elapsed() > QUIET_PERIOD && backoff.failures() > 0 {
                backoff.reset();
            }
        }
    }

    /// Re-reads every container in scope and replaces the view with what the engine says.
    #[tracing::instrument(skip_all, fields(containers = tracing::field::Empty))]
    pub async fn resync(&self) -> Result<(), EngineError> {
        match self.read_all().await {
            Ok(containers) => {
                tracing::Span::current().record("containers", containers.len());
                self.writer.replace_all(containers);
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
        let ids: Vec<String> = self
            .engine
            .list(scope, true)
            .await?
            .into_iter()
            .filter_map(|summary| summary.id)
            .collect();
        // Each inspect answer (kilobytes) becomes its status (a few hundred bytes) as soon as it arrives, so
        // a re-list of 1,000 containers never holds 1,000 inspect answers at once.
        let engine = self.engine.as_ref();
        let statuses: Vec<Option<ContainerStatus>> = futures::stream::iter(ids)
            .map(|id| async move {
                let inspected = engine.inspect(&id).await?;
                Ok::<_, EngineError>(inspected.as_ref().and_then(status_from_inspect))
            })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(statuses
            .into_iter()
            .flatten()
            .filter(|status| in_scope(scope, &status.labels))
            .map(|status| (status.id.clone(), status))
            .collect())
    }

    /// Brings one container up to date after an event about it.
    async fn apply_event(&self, event: EventMessage) -> Result<(), EngineError> {
        self.writer.count_event();
        let Some(id) = event.actor.and_then(|actor| actor.id) else {
            return Ok(());
        };
        let action = event.action.unwrap_or_default();
        // Every healthcheck run is an `exec_*` event; the engine filters them out, and so do we.
        if action.starts_with("exec_") {
            return Ok(());
        }
        let span = tracing::info_span!("engine_event", container = %id, action = %action);
        async move {
            tracing::debug!("engine event");
            let current = if action == "destroy" {
                None
            } else {
                self.engine
                    .inspect(&id)
                    .await?
                    .as_ref()
                    .and_then(status_from_inspect)
                    .filter(|status| in_scope(self.writer.scope(), &status.labels))
            };
            self.writer.apply(id, current);
            Ok(())
        }
        .instrument(span)
        .await
    }
}

fn unix_seconds(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{:09}",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    )
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
        let writer = Writer::new(
            Some("team=a".parse().expect("selector")),
            Duration::from_secs(30),
            no_baseline(),
        );
        let inventory = Inventory::new(writer, Arc::new(engine.clone()));
        let store = inventory.store();
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(inventory.watch(shutdown));
        (store, stop)
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
}
