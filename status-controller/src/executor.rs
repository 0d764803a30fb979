//! The executor: carries planned actions out as tasks, at most one per container at a time, in three lanes
//! by cost, each with its own bound — heals (start, unpause, recreate: quick), restarts (and replaces) and
//! clean-ups (stop, remove: each may wait out a stop timeout) — so a slow restart or stop never delays a start. Every action
//! on an existing container passes the [`recheck`](crate::recheck) against the engine right before it acts,
//! so what the journal says is what the engine did; every action ends as a journal record, metrics and a
//! log line inside its own span, and as an [`Ended`] for the loop. A recreate's engine steps, the replace of
//! a dependant whose namespace owner was recreated, and the finishing of either when cut short, are in
//! [`recreate`] (this module's half of a recreate; the create request those steps send is made, without I/O,
//! by the crate's [`recreate`](crate::recreate) module). Every time it reads — when an action starts, how
//! long it took, how long since its drift was seen — comes from the [`Clock`] it was given.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shared::runtime::engine::EngineError;
use shared::SharedNamespaces;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::clock::{Clock, SystemClock};
use crate::docker::{Applied, DockerError, EngineWriter};
use crate::journal::{ActionRecord, Journal};
use crate::maintenance::Maintenance;
use crate::metrics::Metrics;
use crate::model::{Action, ActionContext, ActionKind, ActionResult, ActionRunner, Ended, Outcome};
use crate::recheck::{owner_runs, recheck, Seen};
use crate::status_client::StatusSource;

mod recreate;

/// How many starts, unpauses and recreates run at once. Measured with 50 members killed at once (`make
/// bench`, mass-heal: docs/benchmarks.md), 16 or 32 brought them all back no sooner than 8: the engine
/// serialises much of a start, so a wider lane only queues the same work inside the engine.
pub const HEAL_CONCURRENCY: usize = 8;
/// How many restarts (and replaces) run at once, apart from the heals. A restart mostly waits: on the
/// container's stop timeout, then on the engine's start, which the heal lane's bound already keeps from
/// crowding the engine; so the bound only caps how many the engine is asked to stop at once.
pub const RESTART_CONCURRENCY: usize = 16;
/// How many stops and removals run at once, apart from the heals and the restarts. A stop costs the
/// controller nothing while the engine waits out the stop timeout, so the bound is wide enough that 30
/// unexpected containers are stopped together (`make bench`, mass-stop: docs/benchmarks.md) rather than
/// 4 at a time, one stop timeout after another.
pub const CLEANUP_CONCURRENCY: usize = 32;

/// Which lane an action waits in: by what it may cost, not by what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Start, unpause, recreate: a call or three that the engine answers at once.
    Heal,
    /// Restart, replace: waits out the container's stop timeout first.
    Restart,
    /// Stop, remove: waits out the container's stop timeout.
    Cleanup,
}

impl Lane {
    pub fn of(kind: ActionKind) -> Self {
        match kind {
            // A replace stops the container first, and may wait out its stop timeout as a restart does.
            ActionKind::Restart | ActionKind::Replace => Self::Restart,
            ActionKind::Stop | ActionKind::Remove => Self::Cleanup,
            ActionKind::Start
            | ActionKind::Unpause
            | ActionKind::Recreate
            | ActionKind::Report
            | ActionKind::Wait => Self::Heal,
        }
    }
}

/// Runs actions as tasks: bounded, one per container at a time, drained on shutdown. Cheap to clone.
/// `W` changes the engine; `S` supplies the recreation specs; `C` tells the time (the loop's clock).
#[derive(Debug)]
pub struct Executor<W, S, C = SystemClock> {
    inner: Arc<Inner<W, S, C>>,
    tracker: Arc<Tracker>,
}

impl<W, S, C> Clone for Executor<W, S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            tracker: self.tracker.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<W, S, C> {
    docker: W,
    specs: S,
    clock: C,
    journal: Journal,
    metrics: Metrics,
    /// A maintenance hold set while an action waited for its lane keeps it from starting.
    maintenance: Maintenance,
    /// The containers it created and has not started yet: the only ones whose start connects networks.
    made: recreate::Made,
    heal_lane: Semaphore,
    restart_lane: Semaphore,
    cleanup_lane: Semaphore,
}

/// Which actions are under way: what the loop and the drain look at.
#[derive(Debug)]
struct Tracker {
    /// Containers with an action under way.
    busy: Mutex<HashSet<String>>,
    /// How many actions are under way, for the drain to wait on.
    in_flight: watch::Sender<usize>,
    /// Set on shutdown: queued actions are not started.
    stopping: AtomicBool,
    /// Told whenever an action ends, so the loop can look again at once.
    finished: Arc<Notify>,
    /// The actions that ended since the loop last asked.
    ended: Mutex<Vec<Ended>>,
}

impl Tracker {
    fn busy(&self) -> MutexGuard<'_, HashSet<String>> {
        self.busy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A container's place in the busy set, released however its action ends (a panic included).
#[derive(Debug)]
struct Claim {
    tracker: Arc<Tracker>,
    container: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.tracker.busy().remove(&self.container);
        self.tracker.in_flight.send_modify(|count| *count -= 1);
        self.tracker.finished.notify_one();
    }
}

impl<W: EngineWriter, S: StatusSource, C: Clock> ActionRunner for Executor<W, S, C> {
    fn is_busy(&self, container: &str) -> bool {
        Executor::is_busy(self, container)
    }

    fn dispatch(&self, action: Action, context: Arc<ActionContext>, seen_at: Instant) -> bool {
        self.spawn(action, context, seen_at).is_some()
    }

    fn finished(&self) -> Arc<Notify> {
        Executor::finished(self)
    }

    fn take_ended(&self) -> Vec<Ended> {
        std::mem::take(
            &mut *self
                .tracker
                .ended
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    async fn drain(&self, timeout: Duration) -> bool {
        Executor::drain(self, timeout).await
    }
}

impl<W: EngineWriter, S: StatusSource> Executor<W, S> {
    /// An executor on the [`SystemClock`], the one status-controller runs on.
    pub fn new(
        docker: W,
        specs: S,
        journal: Journal,
        metrics: Metrics,
        maintenance: Maintenance,
    ) -> Self {
        Self::with_clock(docker, specs, journal, metrics, maintenance, SystemClock)
    }
}

impl<W: EngineWriter, S: StatusSource, C: Clock> Executor<W, S, C> {
    /// An executor that reads the time from `clock`: the one the loop that dispatches to it reads, since
    /// the `seen_at` it is handed is that clock's.
    pub fn with_clock(
        docker: W,
        specs: S,
        journal: Journal,
        metrics: Metrics,
        maintenance: Maintenance,
        clock: C,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                docker,
                specs,
                clock,
                journal,
                metrics,
                maintenance,
                made: recreate::Made::default(),
                heal_lane: Semaphore::new(HEAL_CONCURRENCY),
                restart_lane: Semaphore::new(RESTART_CONCURRENCY),
                cleanup_lane: Semaphore::new(CLEANUP_CONCURRENCY),
            }),
            tracker: Arc::new(Tracker {
                busy: Mutex::new(HashSet::new()),
                in_flight: watch::Sender::new(0),
                stopping: AtomicBool::new(false),
                finished: Arc::new(Notify::new()),
                ended: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The clock it reads: a caller that hands it a `seen_at` takes that from here too.
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// Notified whenever an action ends (a permit is kept if nobody is waiting at that moment).
    pub fn finished(&self) -> Arc<Notify> {
        self.tracker.finished.clone()
    }

    /// Whether an action on `container` is under way.
    pub fn is_busy(&self, container: &str) -> bool {
        self.tracker.busy().contains(container)
    }

    /// Starts carrying out `action` in a task; `None` when the container already has one under way.
    /// `seen_at` is when its drift was first seen, for the heal-time metric.
    pub fn spawn(
        &self,
        action: Action,
        context: Arc<ActionContext>,
        seen_at: Instant,
    ) -> Option<JoinHandle<ActionRecord>> {
        let claim = self.claim(&action.container)?;
        let executor = self.clone();
        let span = tracing::info_span!(
            "action",
            container = %action.container,
            action = %action.kind,
            drift = %action.drift.map_or_else(|| "-".to_owned(), |drift| drift.to_string()),
            result = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        Some(tokio::spawn(
            async move { executor.carry_out(claim, action, &context, seen_at).await }
                .instrument(span),
        ))
    }

    /// Stops starting queued actions and waits up to `timeout` for those under way; false if some were
    /// still running then.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.tracker.stopping.store(true, Ordering::SeqCst);
        let mut in_flight = self.tracker.in_flight.subscribe();
        let under_way = *in_flight.borrow();
        if under_way > 0 {
            tracing::info!(under_way, "finishing the actions in hand");
        }
        // Named, so the wait (which borrows `in_flight`) ends before `in_flight` does.
        let drained = tokio::time::timeout(timeout, in_flight.wait_for(|count| *count == 0))
            .await
            .is_ok();
        drained
    }

    fn claim(&self, container: &str) -> Option<Claim> {
        if !self.tracker.busy().insert(container.to_owned()) {
            return None;
        }
        self.tracker.in_flight.send_modify(|count| *count += 1);
        Some(Claim {
            tracker: self.tracker.clone(),
            container: container.to_owned(),
        })
    }

    async fn carry_out(
        &self,
        _claim: Claim,
        action: Action,
        context: &ActionContext,
        seen_at: Instant,
    ) -> ActionRecord {
        let lane = match Lane::of(action.kind) {
            Lane::Heal => &self.inner.heal_lane,
            Lane::Restart => &self.inner.restart_lane,
            Lane::Cleanup => &self.inner.cleanup_lane,
        };
        // The lanes are never closed, so acquiring cannot fail.
        let _permit = lane.acquire().await.ok();
        tracing::debug!(target: crate::HEAL_TRACE, container = %action.container, action = %action.kind, stage = "lane", "lane acquired");
        let clock = &self.inner.clock;
        let time = clock.utc();
        let started = clock.now();
        let outcome = if self.tracker.stopping.load(Ordering::SeqCst) {
            Outcome::skipped("shutting down: not started")
        } else if self.inner.maintenance.holds(time) {
            Outcome::skipped("held for maintenance: not started")
        } else {
            self.apply(&action, context).await
        };
        let elapsed = clock.now().saturating_duration_since(started);
        tracing::debug!(target: crate::HEAL_TRACE, container = %action.container, action = %action.kind, result = %outcome.result, stage = "called", "engine call returned");
        let span = tracing::Span::current();
        span.record("result", outcome.result.as_str());
        span.record("duration_ms", elapsed.as_millis() as u64);

        let metrics = &self.inner.metrics;
        metrics.count_action(action.kind, outcome.result);
        metrics.observe_action(action.kind, elapsed);
        // Only what the engine really did counts as a heal: a noop (already running) is not one.
        if outcome.result == ActionResult::Ok && action.kind.heals() {
            metrics.observe_heal(clock.now().saturating_duration_since(seen_at));
        }
        self.tracker
            .ended
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Ended {
                container: action.container.clone(),
                kind: action.kind,
                result: outcome.result,
                new_id: outcome.new_id.clone(),
                reason: action.reason.clone(),
                drift: action.drift,
                detail: outcome.detail.clone(),
                time,
            });
        let record = ActionRecord {
            time,
            container: action.container,
            container_id: action.id,
            action: action.kind,
            drift: action.drift,
            reason: action.reason,
            result: outcome.result,
            detail: outcome.detail,
            duration_seconds: elapsed.as_secs_f64(),
        };
        log(&record);
        self.inner.journal.push(record.clone());
        record
    }

    async fn apply(&self, action: &Action, context: &ActionContext) -> Outcome {
        let docker = &self.inner.docker;
        if let Err(err) = docker.negotiate().await {
            return Outcome::failed(&err);
        }
        if action.kind == ActionKind::Recreate {
            return self.recreate(action, context).await;
        }
        if !action.kind.changes_host() {
            return Outcome::skipped("nothing to carry out");
        }
        // Whatever the plan saw may be seconds old by now: ask the engine.
        let seen = match self.recheck(action, context).await {
            Ok(seen) => seen,
            Err(outcome) => return outcome,
        };
        tracing::debug!(target: crate::HEAL_TRACE, container = %action.container, action = %action.kind, stage = "rechecked", "re-check answered");
        if matches!(action.kind, ActionKind::Start | ActionKind::Restart) {
            if let Err(outcome) = self.owners_run(&seen.shares).await {
                return outcome;
            }
        }
        let (name, id, grace) = (action.container.as_str(), action.id.as_str(), seen.grace());
        match action.kind {
            ActionKind::Start if seen.created => self.finish_and_start(action, &seen).await,
            ActionKind::Start => outcome_of(docker.start(name, id).await, "already running (304)"),
            ActionKind::Unpause => outcome_of(docker.unpause(name, id).await, "not paused"),
            ActionKind::Restart => outcome_of(
                docker.restart(name, id, grace).await,
                "already restarted (304)",
            ),
            ActionKind::Stop => {
                outcome_of(docker.stop(name, id, grace).await, "already stopped (304)")
            }
            ActionKind::Remove => match docker.stop(name, id, grace).await {
                Ok(Applied::Done | Applied::AlreadyDone) => {
                    outcome_of(docker.remove(name, id).await, "already being removed")
                }
                other => outcome_of(other, "already stopped"),
            },
            ActionKind::Replace => self.replace(action, context, grace).await,
            ActionKind::Recreate | ActionKind::Report | ActionKind::Wait => {
                Outcome::skipped("nothing to carry out")
            }
        }
    }

    /// Asks the engine about the container again and applies [`recheck`]; answers what it saw.
    async fn recheck(&self, action: &Action, context: &ActionContext) -> Result<Seen, Outcome> {
        match self
            .inner
            .docker
            .inspect(&action.container, &action.id)
            .await
        {
            Ok(Some(found)) => {
                let seen = Seen::from_inspect(&found);
                recheck(action, context, &seen).map(|()| seen)
            }
            Ok(None) => Err(Outcome::gone()),
            Err(err) => Err(outcome_of(Err(err), "")),
        }
    }

    /// Asks the engine whether every owner of a namespace the container joins runs ([`owner_runs`]).
    async fn owners_run(&self, shares: &SharedNamespaces) -> Result<(), Outcome> {
        for (namespace, owner) in shares.iter() {
            match self.inner.docker.inspect(owner, owner).await {
                Ok(found) => {
                    let seen = found.as_ref().map(Seen::from_inspect);
                    owner_runs(namespace, owner, seen.as_ref())?;
                }
                Err(err) => return Err(outcome_of(Err(err), "")),
            }
        }
        Ok(())
    }
}

/// The outcome of a call as the engine answered it: 304 `noop` (`already` says what was found instead),
/// 404 `gone`, 409 `conflict`, anything else that is not success `failed`.
pub(crate) fn outcome_of(applied: crate::docker::Result<Applied>, already: &str) -> Outcome {
    match applied {
        Ok(Applied::Done) => Outcome::ok(None),
        Ok(Applied::AlreadyDone) => Outcome::noop(already),
        Ok(Applied::NoSuchContainer) => Outcome::gone(),
        Err(DockerError::Engine(err @ EngineError::Conflict { .. })) => {
            Outcome::conflict(err.to_string())
        }
        Err(err) => Outcome::failed(&err),
    }
}

fn log(record: &ActionRecord) {
    let detail = record.detail.as_deref().unwrap_or("");
    let duration_ms = (record.duration_seconds * 1000.0).round();
    match record.result {
        ActionResult::Failed => tracing::warn!(
            container = %record.container, action = %record.action, result = %record.result,
            duration_ms, detail, reason = %record.reason, "action failed"
        ),
        _ => tracing::info!(
            container = %record.container, action = %record.action, result = %record.result,
            duration_ms, detail, reason = %record.reason, "action done"
        ),
    }
}
