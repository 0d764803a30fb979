//! One connection to the engine as a state machine with a name: [`Connection`] holds what the watch loop
//! keeps while a stream is up (the events waiting for an inspect, the inspects and the periodic re-list in
//! flight, the second looks, the next ping), and each thing that can happen to it is one method. What
//! [`Inventory::follow`] itself does is only wait for the first of them and hand it over, so each rule can be
//! read on its own (kube-runtime's `watcher` keeps its state the same way, beside its step function).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bollard::models::EventMessage;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use shared::backoff::Backoff;
use shared::{error_chain, ContainerState, ContainerStatus, EngineKind};
use tokio::time::{Interval, MissedTickBehavior};

use super::applier::Applier;
use super::{
    unix_seconds, Applied, Inventory, PING_INTERVAL, PING_RETRY, PING_TIMEOUT,
    PODMAN_HEALTH_REREAD, REMOVAL_REREAD,
};
use crate::docker::{EngineError, EngineReader};

/// What a full re-list read: every container in scope, by id.
type Listed = Result<HashMap<String, ContainerStatus>, EngineError>;

impl Inventory {
    /// One connection's life: returns when the stream ends or anything fails. The backoff starts again from
    /// its first step once the new stream delivers an event or the engine answers a ping on it: the trouble
    /// is over, and the next failure is a new one. `went_live` turns true once the stream is subscribed.
    pub(super) async fn follow(
        &self,
        backoff: &mut Backoff,
        unwatched_since: DateTime<Utc>,
        went_live: &mut bool,
    ) -> Result<(), EngineError> {
        let mut connection = Connection::open(self, backoff, unwatched_since).await?;
        *went_live = true;
        loop {
            tokio::select! {
                event = connection.events.next() => match event {
                    Some(Ok(event)) => connection.on_event(event),
                    Some(Err(err)) => return Err(err),
                    None => return Ok(()),
                },
                Some(id) = connection.rereads.next(), if !connection.rereads.is_empty() => {
                    connection.on_reread(id);
                }
                Some(applied) = connection.inspects.next(), if !connection.inspects.is_empty() => {
                    connection.on_inspected(applied)?;
                }
                listed = Connection::relisted(&mut connection.relist), if connection.relist.is_some() => {
                    connection.on_relisted(listed)?;
                }
                _ = connection.resync.tick() => connection.on_resync(),
                answered = &mut connection.ping => connection.on_ping(answered),
            }
            connection.start_inspects();
        }
    }
}

/// What one connection holds between two things happening to it.
struct Connection<'a> {
    inventory: &'a Inventory,
    /// The watch loop's reconnect backoff, which this connection resets once the engine is back.
    backoff: &'a mut Backoff,
    kind: EngineKind,
    /// Events dated before this are replays the first re-list already reflects: applied, but no lag.
    relisted_at: DateTime<Utc>,
    events: BoxStream<'static, Result<EventMessage, EngineError>>,
    applier: Applier,
    /// The inspects out for batches of events, as many as the applier allows.
    inspects: FuturesUnordered<BoxFuture<'a, Applied>>,
    /// The `--resync-interval` timer of the periodic re-list.
    resync: Interval,
    /// A periodic re-list in progress, and the containers that had events while it ran: for those the
    /// events are newer than what it read.
    relist: Option<BoxFuture<'a, Listed>>,
    touched: HashSet<String>,
    /// Containers to read once more a moment from now (Podman's `health_status`, a removal under way).
    rereads: FuturesUnordered<BoxFuture<'static, String>>,
    /// The next ping: in [`PING_INTERVAL`] while the engine answers, in [`PING_RETRY`] while it does not.
    ping: BoxFuture<'static, Result<(), String>>,
    /// Whether the last ping was answered: logged when it changes, not on every ping.
    answering: bool,
}

impl<'a> Connection<'a> {
    /// Connects: agrees on an API version, names the engine, recalls what happened while nobody watched
    /// (since `unwatched_since`), re-lists, and subscribes to the events.
    async fn open(
        inventory: &'a Inventory,
        backoff: &'a mut Backoff,
        unwatched_since: DateTime<Utc>,
    ) -> Result<Self, EngineError> {
        let writer = &inventory.writer;
        inventory.engine.negotiate().await?;
        let engine = inventory.engine.identify().await?;
        if writer.identified(engine.clone()) {
            tracing::info!(engine = %engine.describe(), kind = %engine.kind, "watching the engine");
        }
        inventory
            .exits()
            .set_engine_tells_stops(engine.kind != EngineKind::Podman);
        // Events are asked for from a moment before the re-list, so nothing that happens while it runs is
        // missed; replaying a few is harmless, as every event leads to a fresh inspect.
        let live_from = SystemTime::now() - Duration::from_secs(1);
        inventory
            .recall(unwatched_since, DateTime::from(live_from), engine.kind)
            .await;
        let since = unix_seconds(live_from);
        let relisted_at = Utc::now();
        inventory.resync().await?;
        let events = inventory
            .engine
            .events(writer.scope(), Some(since), engine.kind);
        writer.set_events_live(true);
        let interval = writer.resync_interval();
        let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Self {
            inventory,
            backoff,
            kind: engine.kind,
            relisted_at,
            events,
            applier: Applier::default(),
            inspects: FuturesUnordered::new(),
            resync,
            relist: None,
            touched: HashSet::new(),
            rereads: FuturesUnordered::new(),
            ping: ping_after(inventory.engine.clone(), PING_INTERVAL),
            answering: true,
        })
    }

    /// An event from the stream: the engine is back, and the event goes to the applier.
    fn on_event(&mut self, event: EventMessage) {
        self.engine_is_back();
        let Some((id, action)) = self
            .inventory
            .receive(&mut self.applier, event, self.relisted_at)
        else {
            return;
        };
        if action == "health_status" && self.kind == EngineKind::Podman {
            self.read_again(id.clone(), PODMAN_HEALTH_REREAD);
        }
        self.touch(id);
    }

    /// The moment for a second look at a container has come.
    fn on_reread(&mut self, id: String) {
        // No event time: a second look, not news, so it counts towards no lag.
        self.applier.receive(&id, None, false);
        self.touch(id);
    }

    /// An inspect for a batch of events answered; `Err` when the engine could not be reached.
    fn on_inspected(&mut self, (id, batch, result): Applied) -> Result<(), EngineError> {
        let removing =
            matches!(&result, Ok(Some(Some(status))) if status.state == ContainerState::Removing);
        self.inventory
            .apply(&mut self.applier, id.clone(), &batch, result?);
        if removing {
            self.read_again(id, REMOVAL_REREAD);
        }
        Ok(())
    }

    /// The periodic re-list in progress; polled only while there is one.
    async fn relisted(relist: &mut Option<BoxFuture<'a, Listed>>) -> Listed {
        relist.as_mut().expect("guarded").await
    }

    /// The periodic re-list finished: it replaces the view but for the containers touched meanwhile.
    fn on_relisted(&mut self, listed: Listed) -> Result<(), EngineError> {
        self.relist = None;
        self.inventory
            .replace_all(listed, std::mem::take(&mut self.touched))
    }

    /// The resync timer: a periodic re-list starts unless one still runs.
    fn on_resync(&mut self) {
        if self.relist.is_some() {
            return;
        }
        // An inspect already out may answer after the re-list, with older news than it read.
        self.touched.extend(self.applier.pending_ids().cloned());
        self.relist = Some(self.inventory.read_all().boxed());
    }

    /// A ping answered (`Ok`) or not (the reason, in words); the next one is due soon if it did not.
    fn on_ping(&mut self, answered: Result<(), String>) {
        let writer = &self.inventory.writer;
        let next = match answered {
            Ok(()) => {
                self.engine_is_back();
                if !std::mem::replace(&mut self.answering, true) {
                    tracing::info!("the Docker engine answers again");
                }
                writer.engine_answered();
                PING_INTERVAL
            }
            Err(reason) => {
                if std::mem::replace(&mut self.answering, false) {
                    tracing::warn!(%reason, "the Docker engine does not answer; /ready is 503 until it does");
                }
                writer.engine_failed(reason);
                PING_RETRY
            }
        };
        self.ping = ping_after(self.inventory.engine.clone(), next);
    }

    /// After each of the above: starts the inspects the applier allows and tells the store how many events
    /// wait.
    fn start_inspects(&mut self) {
        while let Some((id, batch)) = self.applier.next_job() {
            self.inspects
                .push(self.inventory.inspect(id, batch).boxed());
        }
        self.inventory
            .writer
            .event_progress(self.applier.backlog(), self.applier.oldest());
    }

    /// The trouble is over: the next failure starts the backoff from its first step.
    fn engine_is_back(&mut self) {
        if self.backoff.failures() > 0 {
            self.backoff.reset();
        }
    }

    /// Reads `id` once more `after` from now.
    fn read_again(&mut self, id: String, after: Duration) {
        self.rereads
            .push(tokio::time::sleep(after).map(|()| id).boxed());
    }

    /// `id` had news while a periodic re-list runs, so what the re-list read of it is older.
    fn touch(&mut self, id: String) {
        if self.relist.is_some() {
            self.touched.insert(id);
        }
    }
}

/// Pings the engine after `delay`: `Err` with the reason, in words, when it does not answer in time.
fn ping_after(
    engine: Arc<dyn EngineReader>,
    delay: Duration,
) -> BoxFuture<'static, Result<(), String>> {
    async move {
        tokio::time::sleep(delay).await;
        match tokio::time::timeout(PING_TIMEOUT, engine.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(error_chain(&err)),
            Err(_) => Err(format!(
                "the Docker engine did not answer a ping within {}s: it is stopped, hung or overloaded \
                 (check `docker info` and dockerd's logs)",
                PING_TIMEOUT.as_secs()
            )),
        }
    }
    .boxed()
}
