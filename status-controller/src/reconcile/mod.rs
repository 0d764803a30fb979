//! The reconcile loop. It keeps one long poll of status-api in flight, so a change is acted on within
//! milliseconds; runs a full pass every `--interval` even when nothing changed; and acts only on a complete,
//! fresh view ([`freshness`](crate::freshness)). Anything less is a hold: counted with its reason, shown by
//! `/ready`, and retried with a jittered, capped backoff.
//!
//! Each pass plans from scratch ([`plan`]), decides what becomes of each action (`admit`: go, record, or
//! wait for what holds it back, the [`HealGuard`]'s backoff and quarantine among them) and carries that out:
//! the actions that go are handed to the executor (an [`ActionRunner`]). When an action ends or a backoff
//! runs out, the loop plans again from the newest view it holds, without dropping the long poll in flight.
//! Reports (and everything under `--dry-run`) are recorded once per appearance, not once per pass.
//!
//! A maintenance hold ([`Maintenance`]) is obeyed here: while it lasts, passes still observe and plan (reports
//! and dry-run records are kept as usual) but dispatch nothing. The loop wakes when the hold changes or runs
//! out, so healing resumes at once from the newest view, not at the next change or interval.
//!
//! A pass never plans for a container from a view that predates what was just done to it: once an action
//! that changed a container ends, the container is left out of the plan until status-api shows a revision
//! newer than the newest the loop held when it learned of the end.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::backoff::{Backoff, BackoffPolicy};
use shared::SnapshotSummary;
use tokio::sync::watch;

use crate::backoff::{HealGuard, HealLimits};
use crate::clock::{sleep_until, Clock};
use crate::freshness::{complete_view, FreshView};
use crate::journal::{ActionRecord, Journal};
use crate::maintenance::Maintenance;
use crate::metrics::Metrics;
use crate::model::StatusAnswer as Answer;
use crate::model::{Action, ActionContext, ActionResult, ActionRunner, Hold, LONG_POLL_WAIT};
use crate::notify::{Notifier, NotifyEvent};
use crate::plan::{plan_following, FollowedDrift, PlanSettings};
use crate::quarantine::{EndedEarly, Quarantines, Served, ENDED_EARLY_REASON};
use crate::state::{ControllerState, QuarantineView};
use crate::status_client::{StatusError, StatusSource};

mod admit;
mod announced;
mod first_seen;
mod hold_spell;
#[cfg(test)]
mod tests;

use admit::{admit, Admission, Gates};
use announced::Announced;
use first_seen::FirstSeen;
use hold_spell::HoldSpell;

/// How long the actions in hand get to finish after the shutdown signal. With the HTTP server's drain this
/// keeps the whole shutdown under 10 s.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// Retrying status-api while holding: 200 ms, doubling, at most 5 s, so healing resumes within seconds of
/// status-api coming back, and a status-api that is down gets one request every few seconds.
pub const API_BACKOFF: BackoffPolicy = BackoffPolicy {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(5),
    reset_after: Duration::from_secs(60),
};

/// What the loop needs besides its collaborators.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// `--scope`: status-api must report this scope, or the loop holds.
    pub scope: shared::Scope,
    pub interval: Duration,
    pub dry_run: bool,
    pub plan: PlanSettings,
    pub limits: HealLimits,
}

/// The loop's collaborators: where it reads, what it writes through, and what it reports to.
#[derive(Debug, Clone)]
pub struct Wiring<S, R, C> {
    pub source: S,
    /// Carries the actions out (the executor).
    pub executor: R,
    pub state: ControllerState,
    pub metrics: Metrics,
    pub journal: Journal,
    /// Where failures, quarantines, long holds and (opt-in) heals are told; never waits.
    pub notifier: Notifier,
    /// The operator's maintenance hold: while it lasts nothing is dispatched.
    pub maintenance: Maintenance,
    pub clock: C,
}

/// The long poll in flight, kept across wake-ups.
type Poll = Pin<Box<dyn Future<Output = Result<Answer, StatusError>> + Send>>;

/// The loop's own memory between passes. Nothing here is shared: the loop is its only user.
#[derive(Debug)]
pub struct Reconciler<S, R, C> {
    wiring: Wiring<S, R, C>,
    settings: LoopSettings,
    guard: HealGuard,
    /// The snapshot last read, kept through holds so it is re-read only when status-api re-baselines.
    snapshot: Option<Arc<SnapshotSummary>>,
    /// The newest fresh view; `None` while holding.
    latest: Option<FreshView>,
    /// What was last recorded for containers whose actions are not carried out (reports, dry run,
    /// quarantine), so each is recorded once per appearance.
    announced: Announced,
    /// When each drift was first seen, for the heal-time metric.
    first_seen: FirstSeen,
    /// The earliest moment a held-back action may go ahead.
    next_wake: Option<Instant>,
    /// Containers an action just changed, with the revision status-api must pass before they are planned
    /// for again: a view at or below it may not show what the action did.
    settling: HashMap<String, u64>,
    /// The quarantines told of, to tell each one's end once.
    quarantines: Quarantines,
    /// The hold under way, to tell a long one.
    holding: HoldSpell,
    /// The last pass's drift, followed to the next ([`plan_following`]).
    drifts: FollowedDrift,
}

/// What woke the loop.
enum Wakeup {
    /// The long poll answered: a change, or its wait ran out. Boxed: an answer is hundreds of bytes, the
    /// other wake-ups none.
    Answer(Box<Result<Answer, StatusError>>),
    /// `--interval` passed, or a maintenance hold was set, ended or ran out: a full pass, status and snapshot
    /// re-read. After a hold, what the operator changed during it (a container adopted, a new snapshot) must
    /// be in the view its end acts on, not only in a long poll answer still on its way.
    Interval,
    /// A held-back action may go ahead, or an action ended: plan again from the newest view held.
    Replan,
}

/// A fresh view, and why the loop looked.
struct Observation {
    view: FreshView,
    /// The revision differs from the last one seen.
    changed: bool,
    /// A full pass: the snapshot was re-read.
    full: bool,
    /// Not the long poll's answer: plan even if nothing changed.
    forced: bool,
}

impl<S: StatusSource, R: ActionRunner, C: Clock> Reconciler<S, R, C> {
    pub fn new(wiring: Wiring<S, R, C>, settings: LoopSettings) -> Self {
        Self {
            guard: HealGuard::new(settings.limits),
            wiring,
            settings,
            snapshot: None,
            latest: None,
            announced: Announced::default(),
            first_seen: FirstSeen::default(),
            next_wake: None,
            settling: HashMap::new(),
            quarantines: Quarantines::new(),
            holding: HoldSpell::default(),
            drifts: FollowedDrift::default(),
        }
    }

    /// Runs until `stop` turns true, then finishes the actions in hand (up to [`DRAIN_TIMEOUT`]) and starts
    /// no new one.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut api_backoff = Backoff::new(API_BACKOFF);
        let mut since: Option<u64> = None;
        let period = self.settings.interval;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let finished = self.wiring.executor.finished();
        let mut hold_changes = self.wiring.maintenance.watch();
        let mut poll: Option<Poll> = None;

        loop {
            let long_poll = poll.get_or_insert_with(|| self.long_poll(since));
            let wake = self.next_wake;
            // When a hold that lasts until a set time runs out.
            let hold_ends = hold_changes
                .borrow_and_update()
                .map(|until| self.instant_of(until));
            let wakeup = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                _ = interval.tick() => Wakeup::Interval,
                () = sleep_until(wake) => Wakeup::Replan,
                () = finished.notified() => Wakeup::Replan,
                // Set, ended or run out: plan again at once from status-api's view now, re-read.
                Ok(()) = hold_changes.changed() => Wakeup::Interval,
                () = sleep_until(hold_ends) => Wakeup::Interval,
                answer = long_poll.as_mut() => Wakeup::Answer(Box::new(answer)),
            };
            if matches!(wakeup, Wakeup::Answer(_)) {
                poll = None;
            }
            // A hold that ran out ends here if nobody else noticed first, whatever the loop does next.
            self.wiring.maintenance.state(self.wiring.clock.utc());
            let started = self.wiring.clock.now();
            let was_holding = self.wiring.state.holding();
            // A hung status-api must not hold up a shutdown: what follows races the stop signal too.
            let observed = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                observed = self.observe(wakeup, since) => observed,
            };
            match observed {
                Ok(None) => {}
                Ok(Some(Observation {
                    view,
                    changed,
                    full,
                    forced,
                })) => {
                    tracing::debug!(target: crate::HEAL_TRACE, revision = view.observed.revision, changed, stage = "answered", "status-api answered");
                    since = Some(view.observed.revision);
                    api_backoff.reset();
                    if self
                        .wiring
                        .state
                        .fresh(&view.snapshot, view.observed.revision)
                    {
                        tracing::info!(
                            revision = view.observed.revision,
                            "status-api's view is fresh again: acting"
                        );
                    }
                    self.wiring.metrics.set_holding(None);
                    self.hold_over();
                    self.snapshot = Some(view.snapshot.clone());
                    if changed || forced || full || was_holding {
                        self.pass(&view, started);
                    }
                    self.latest = Some(view);
                }
                Err(hold) => {
                    self.hold(hold);
                    since = None;
                    // Ask again at once after the pause, not at the end of a long poll on an old revision.
                    poll = None;
                    if !self.pause(&mut api_backoff, &mut stop).await {
                        break;
                    }
                }
            }
        }

        if !self.wiring.executor.drain(DRAIN_TIMEOUT).await {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "actions still under way at shutdown were abandoned");
        }
        tracing::info!("reconcile loop stopped");
    }

    /// The moment on the loop's clock of the wall-clock time `at` (just after, so that the wall clock has
    /// passed it when the loop looks).
    fn instant_of(&self, at: chrono::DateTime<chrono::Utc>) -> Instant {
        let left = (at - self.wiring.clock.utc()).to_std().unwrap_or_default();
        self.wiring.clock.now() + left + Duration::from_millis(1)
    }

    /// A request for the next change after `since` (at once when there is no `since`), owning what it needs,
    /// so it can stay in flight while the loop does other things.
    fn long_poll(&self, since: Option<u64>) -> Poll {
        let source = self.wiring.source.clone();
        Box::pin(async move { source.status(since, LONG_POLL_WAIT).await })
    }

    /// Turns a wake-up into a complete, fresh view, or the reason to hold; `None` when there is nothing to
    /// look at (a replan while holding).
    async fn observe(
        &self,
        wakeup: Wakeup,
        since: Option<u64>,
    ) -> Result<Option<Observation>, Hold> {
        let (answer, full) = match wakeup {
            Wakeup::Answer(answer) => (*answer, since.is_none()),
            Wakeup::Interval => (self.wiring.source.status(None, Duration::ZERO).await, true),
            Wakeup::Replan => {
                let Some(view) = self.latest.clone() else {
                    return Ok(None);
                };
                view.still_fresh(self.wiring.clock.utc())?;
                return Ok(Some(Observation {
                    view,
                    changed: false,
                    full: false,
                    forced: true,
                }));
            }
        };
        let status = answer.map_err(|err| Hold::from(&err))?;
        let changed = since != Some(status.status.revision);
        let view = complete_view(
            status,
            &self.settings.scope,
            self.snapshot.clone(),
            full,
            self.wiring.clock.utc(),
            || read_snapshot(&self.wiring.source),
        )
        .await?;
        Ok(Some(Observation {
            view,
            changed,
            full,
            forced: full,
        }))
    }

    /// Plans from `view` and dispatches what may go ahead now.
    fn pass(&mut self, view: &FreshView, started: Instant) {
        let now = self.wiring.clock.now();
        let actions = plan_following(
            &mut self.drifts,
            &view.snapshot,
            &view.observed,
            &self.settings.plan,
            self.wiring.clock.utc(),
        );
        let span = tracing::info_span!(
            "reconcile",
            revision = view.observed.revision,
            actions = actions.len()
        );
        let _entered = span.enter();
        let context = Arc::new(view.context(self.settings.plan.own_ids()));
        tracing::debug!("pass");
        let revision = view.observed.revision;
        self.take_ended(revision);
        self.settling.retain(|_, settle| revision <= *settle);
        let utc_now = self.wiring.clock.utc();
        let containers = &view.observed.containers;
        for ended in self
            .quarantines
            .end_early(&mut self.guard, containers, now, utc_now)
        {
            self.quarantine_ended_early(ended);
        }
        for served in self.quarantines.served(&self.guard, now) {
            self.quarantine_served(served);
        }
        self.dispatch(actions, &context, now, revision);
        self.guard.forget_quiet(now);
        self.publish_quarantines(now);
        let ended_at = self.wiring.clock.utc();
        let unix = ended_at.timestamp_micros() as f64 / 1e6;
        let took = self.wiring.clock.now().saturating_duration_since(started);
        self.wiring.metrics.observe_pass(took, unix);
    }

    /// Learns which actions ended: a container an action changed waits for a revision newer than `revision`;
    /// a container the controller recreated keeps its attempts under its new id.
    fn take_ended(&mut self, revision: u64) {
        for ended in self.wiring.executor.take_ended() {
            let attempt = self.guard.attempts(&ended.container);
            if let Some(event) = NotifyEvent::of_ended(&ended, attempt) {
                self.wiring.notifier.send(event);
            }
            if let Some(id) = &ended.new_id {
                self.guard.adopt_id(&ended.container, id);
            }
            if ended.changed_the_host() {
                self.settling.insert(ended.container, revision);
            }
        }
    }

    fn quarantine_ended_early(&mut self, ended: EndedEarly) {
        let (action, drift) = self.announced.quarantined_action(&ended.container);
        self.announced.forget(&ended.container);
        let result = ActionResult::QuarantineEnded;
        self.wiring.metrics.count_action(action, result);
        tracing::info!(container = %ended.container, action = %action, result = %result, detail = ended.detail, "quarantine ended");
        self.wiring.notifier.send(NotifyEvent::quarantine_ended(
            &ended.container,
            action,
            ended.detail.clone(),
            self.wiring.clock.utc(),
        ));
        self.wiring.journal.push(ActionRecord {
            time: self.wiring.clock.utc(),
            container: ended.container,
            container_id: ended.id,
            action,
            drift,
            reason: ENDED_EARLY_REASON.into(),
            result,
            detail: Some(ended.detail),
            duration_seconds: 0.0,
        });
    }

    fn quarantine_served(&self, served: Served) {
        let (action, _) = self.announced.quarantined_action(&served.container);
        self.wiring.notifier.send(NotifyEvent::quarantine_ended(
            &served.container,
            action,
            served.detail,
            self.wiring.clock.utc(),
        ));
    }

    /// Carries out what [`admit()`] decided for each planned action, and sets the next wake-up.
    fn dispatch(
        &mut self,
        actions: Vec<Action>,
        context: &Arc<ActionContext>,
        now: Instant,
        revision: u64,
    ) {
        self.first_seen.planned(&actions);
        let held = self.wiring.maintenance.holds(self.wiring.clock.utc());
        let mut next_wake: Option<Instant> = None;
        let mut held_back = 0_usize;
        for action in actions {
            let gates = Gates {
                dry_run: self.settings.dry_run,
                held,
                busy: self.wiring.executor.is_busy(&action.container),
                revision,
                settling: self.settling.get(&action.container).copied(),
                guard: self.guard.gate(&action.container, now),
            };
            let admission = admit(&action, &gates);
            held_back += usize::from(admission == Admission::HeldBack);
            if let Some(wake) = self.carry_out(action, admission, context, now, revision) {
                next_wake = Some(next_wake.map_or(wake, |current| current.min(wake)));
            }
        }
        if held_back > 0 {
            tracing::debug!(
                held_back,
                "held for maintenance: actions planned, none dispatched"
            );
        }
        self.announced.end_pass();
        self.next_wake = next_wake;
    }

    /// Carries out one admission; answers when the loop is to look again for its sake.
    fn carry_out(
        &mut self,
        action: Action,
        admission: Admission,
        context: &Arc<ActionContext>,
        now: Instant,
        revision: u64,
    ) -> Option<Instant> {
        let seen_at = self.first_seen.seen(&action, now);
        match admission {
            Admission::Go => {
                let jitter = rand::random::<f64>();
                self.guard
                    .record_attempt(&action.container, &action.id, now, jitter);
                tracing::debug!(target: crate::HEAL_TRACE, container = %action.container, action = %action.kind, revision, stage = "dispatched", "action dispatched");
                self.wiring
                    .executor
                    .dispatch(action, context.clone(), seen_at);
            }
            Admission::Wait { look_again, report } => {
                if report {
                    self.announce(&action, ActionResult::Reported, None);
                }
                return look_again.map(|at| self.instant_of(at));
            }
            Admission::Announce { result, detail } => self.announce(&action, result, detail),
            Admission::HeldBack => self.first_seen.held(&action),
            Admission::Busy => {}
            Admission::Settling { after } => {
                tracing::debug!(container = %action.container, action = %action.kind, revision, after, "waiting for a view that shows the last action");
            }
            Admission::BackoffUntil(until) => {
                tracing::debug!(container = %action.container, action = %action.kind, wait = ?(until - now), "backing off");
                return Some(until);
            }
            Admission::Quarantined { until, entered } => {
                self.quarantine_holds_back(&action, until, entered, now);
                return Some(until);
            }
        }
        None
    }

    /// Keeps `action` back by its container's quarantine, which lasts `until`; tells of the quarantine when
    /// this pass `entered` it.
    fn quarantine_holds_back(
        &mut self,
        action: &Action,
        until: Instant,
        entered: bool,
        now: Instant,
    ) {
        if entered {
            self.guard.enter_quarantine(&action.container, until);
            // Published before the record that announces it, so that a reader of `/actions` who sees the
            // record also sees the quarantine.
            self.publish_quarantines(now);
        }
        let holding = self
            .quarantines
            .holds_back(&self.guard, &action.container, until, now);
        if entered {
            self.wiring.notifier.send(NotifyEvent::quarantine_entered(
                action,
                holding.attempts,
                holding.detail.clone(),
                self.wiring.clock.utc(),
            ));
        }
        self.announce(action, ActionResult::Quarantined, Some(holding.detail));
    }

    /// Records an action that is not carried out, once per appearance.
    fn announce(&mut self, action: &Action, result: ActionResult, detail: Option<String>) {
        if !self.announced.first(action, result) {
            return;
        }
        self.wiring.metrics.count_action(action.kind, result);
        tracing::info!(
            container = %action.container, action = %action.kind, result = %result,
            reason = %action.reason, detail = detail.as_deref().unwrap_or(""), "not acting"
        );
        self.wiring.journal.push(ActionRecord {
            time: self.wiring.clock.utc(),
            container: action.container.clone(),
            container_id: action.id.clone(),
            action: action.kind,
            drift: action.drift,
            reason: action.reason.clone(),
            result,
            detail,
            duration_seconds: 0.0,
        });
    }

    fn hold(&mut self, hold: Hold) {
        self.latest = None;
        self.tell_long_hold(&hold);
        self.wiring.metrics.count_hold(hold.reason);
        self.wiring.metrics.set_holding(Some(hold.reason));
        let detail = hold.detail.clone();
        let reason = hold.reason.as_str();
        if self.wiring.state.hold(hold) {
            tracing::warn!(
                reason,
                detail,
                "holding: no action until status-api's view is complete and fresh"
            );
        } else {
            tracing::debug!(reason, detail, "still holding");
        }
    }

    /// Tells once when the hold under way passes `--notify-hold-after`.
    fn tell_long_hold(&mut self, hold: &Hold) {
        let tell_after = self.wiring.notifier.options().hold_after;
        let now = self.wiring.clock.now();
        if let Some(held_for) = self.holding.held(hold.reason, now, tell_after) {
            tracing::warn!(reason = %hold.reason, held_for = ?held_for, "a long hold: no action for a while");
            self.wiring.notifier.send(NotifyEvent::hold_started(
                hold,
                held_for,
                self.wiring.clock.utc(),
            ));
        }
    }

    /// A fresh view: the hold under way, if any, is over; told if it was told as a long one.
    fn hold_over(&mut self) {
        if let Some((reason, held_for)) = self.holding.over(self.wiring.clock.now()) {
            self.wiring.notifier.send(NotifyEvent::hold_ended(
                reason,
                held_for,
                self.wiring.clock.utc(),
            ));
        }
    }

    fn publish_quarantines(&self, now: Instant) {
        let utc_now = self.wiring.clock.utc();
        let quarantined: Vec<QuarantineView> = self
            .guard
            .quarantined(now)
            .into_iter()
            .map(|quarantine| QuarantineView {
                container: quarantine.container,
                until: utc_now
                    + chrono::Duration::from_std(quarantine.until - now).unwrap_or_default(),
                attempts: quarantine.attempts,
            })
            .collect();
        self.wiring
            .metrics
            .set_quarantined(quarantined.iter().map(|q| q.container.as_str()));
        self.wiring.state.set_quarantined(quarantined);
    }

    /// Waits out the next backoff step; false when `stop` came first.
    async fn pause(&self, backoff: &mut Backoff, stop: &mut watch::Receiver<bool>) -> bool {
        let delay = backoff.fail(self.wiring.clock.now(), rand::random::<f64>());
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = stop.wait_for(|stop| *stop) => false,
        }
    }
}

/// `GET /snapshot`, or why the loop holds without it.
async fn read_snapshot(source: &impl StatusSource) -> Result<Arc<SnapshotSummary>, Hold> {
    source.snapshot().await.map_err(|err| Hold::from(&err))
}
