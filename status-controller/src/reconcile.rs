//! The reconcile loop. It long-polls status-api, so a change is acted on within milliseconds; runs a full
//! pass every `--interval` even when nothing changed; and acts only on a complete, fresh view — status-api
//! reachable and ready, its event stream live and its data younger than twice its resync interval. Anything
//! less is a hold: counted with its reason, shown by `/ready`, and retried with a jittered, capped backoff.
//!
//! Each pass plans from scratch ([`plan`]) and hands the actions that change the host to the [`Executor`],
//! gated per container by the [`HealGuard`]. Reports (and everything under `--dry-run`) are recorded once per
//! appearance, not once per pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::backoff::{Backoff, BackoffPolicy};
use shared::{DriftKind, SnapshotSummary, StatusResponse};
use tokio::sync::watch;

use crate::backoff::{Gate, HealGuard, HealLimits};
use crate::error_chain;
use crate::execute::{ActionContext, Executor};
use crate::journal::{ActionRecord, ActionResult, Journal};
use crate::metrics::Metrics;
use crate::plan::{plan, Action, ActionKind, Observed, PlanSettings};
use crate::status_client::{StatusClient, StatusError, LONG_POLL_WAIT};

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

/// `/health` fails when the loop has not got anywhere for this long: three long polls.
pub const STALL_AFTER: Duration = Duration::from_secs(3 * LONG_POLL_WAIT.as_secs());

/// Why a pass held back instead of acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// status-api did not answer.
    ApiUnreachable,
    /// status-api's `/ready` said 503.
    ApiNotReady,
    /// status-api's Docker event stream is down, so its view is not live.
    EventsDown,
    /// status-api's view is older than twice its resync interval.
    Stale,
    /// status-api has no snapshot, or it changed while being read.
    NoSnapshot,
    /// status-api answered something the controller does not understand.
    BadAnswer,
}

impl HoldReason {
    /// The `reason` label of `dockstate_controller_holds_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiUnreachable => "api_unreachable",
            Self::ApiNotReady => "api_not_ready",
            Self::EventsDown => "events_down",
            Self::Stale => "stale",
            Self::NoSnapshot => "no_snapshot",
            Self::BadAnswer => "bad_answer",
        }
    }
}

/// A hold: its reason and a sentence about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub reason: HoldReason,
    pub detail: String,
}

impl Hold {
    fn new(reason: HoldReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl From<&StatusError> for Hold {
    fn from(err: &StatusError) -> Self {
        let reason = match err {
            StatusError::ApiUnreachable { .. } => HoldReason::ApiUnreachable,
            StatusError::NotReady { .. } => HoldReason::ApiNotReady,
            StatusError::NoSnapshot => HoldReason::NoSnapshot,
            StatusError::NotInSnapshot(_)
            | StatusError::Refused { .. }
            | StatusError::BadAnswer { .. } => HoldReason::BadAnswer,
        };
        Self::new(reason, error_chain(err))
    }
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

/// Whether status-api's answer is live and recent enough to act on: its event stream connected, its view
/// confirmed against the engine within twice its resync interval, and a snapshot to compare with.
pub fn check_fresh(status: &StatusResponse, now: DateTime<Utc>) -> Result<(), Hold> {
    if !status.events_live {
        return Err(Hold::new(
            HoldReason::EventsDown,
            "status-api's Docker event stream is not connected, so its view may miss changes",
        ));
    }
    let age = (now - status.observed_at).to_std().unwrap_or_default();
    let limit = Duration::from_secs(status.resync_interval_seconds.saturating_mul(2));
    if age > limit {
        return Err(Hold::new(
            HoldReason::Stale,
            format!(
                "status-api last confirmed its view {}s ago, more than twice its resync interval ({}s)",
                age.as_secs(),
                status.resync_interval_seconds
            ),
        ));
    }
    if status.snapshot_taken_at.is_none() {
        return Err(Hold::new(
            HoldReason::NoSnapshot,
            "status-api has no snapshot yet",
        ));
    }
    Ok(())
}

/// A complete, fresh view: the snapshot, and what status-api observes, from the same moment.
#[derive(Debug, Clone)]
pub struct View {
    pub snapshot: Arc<SnapshotSummary>,
    pub observed: Observed,
}

impl View {
    /// What the actions planned from this view may rely on.
    pub fn context(&self, own_container_id: Option<&str>) -> ActionContext {
        ActionContext {
            scope: self.observed.scope.clone(),
            protected: own_container_id
                .into_iter()
                .chain(self.observed.server_container_id.as_deref())
                .map(str::to_owned)
                .collect(),
            members: self
                .snapshot
                .containers
                .iter()
                .map(|member| member.name.clone())
                .collect(),
        }
    }
}

/// Completes `status` into a [`View`], or says why it cannot be acted on: checks freshness, asks `/ready`,
/// and (re-)reads the snapshot when status-api re-baselined, when none is `known`, or when `refresh` asks.
pub async fn complete_view(
    client: &StatusClient,
    status: StatusResponse,
    known: Option<Arc<SnapshotSummary>>,
    refresh: bool,
) -> Result<View, Hold> {
    check_fresh(&status, Utc::now())?;
    client.ready().await.map_err(|err| Hold::from(&err))?;
    let snapshot = match known {
        Some(snapshot) if !refresh && Some(snapshot.taken_at) == status.snapshot_taken_at => {
            snapshot
        }
        _ => {
            let snapshot = client.snapshot().await.map_err(|err| Hold::from(&err))?;
            if Some(snapshot.taken_at) != status.snapshot_taken_at {
                return Err(Hold::new(
                    HoldReason::NoSnapshot,
                    "status-api re-baselined while the snapshot was read; reading it again",
                ));
            }
            Arc::new(snapshot)
        }
    };
    let observed = Observed::try_from(status).map_err(|err| {
        Hold::new(
            HoldReason::BadAnswer,
            format!("status-api reports a scope the controller cannot read: {err}"),
        )
    })?;
    Ok(View { snapshot, observed })
}

/// One readiness check: whether it passes, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

/// A container in quarantine, as `/actions` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineView {
    pub container: String,
    /// Until when it is left alone.
    pub until: DateTime<Utc>,
    /// Attempts before it was quarantined.
    pub attempts: u32,
}

/// What the loop tells the HTTP server: readiness, progress and quarantines. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControllerState {
    inner: Arc<Mutex<StateInner>>,
}

#[derive(Debug)]
struct StateInner {
    snapshot: Option<(DateTime<Utc>, usize)>,
    view: ViewState,
    last_progress: Instant,
    quarantined: Vec<QuarantineView>,
}

#[derive(Debug, Clone)]
enum ViewState {
    Starting,
    Fresh { revision: u64 },
    Held(Hold),
}

impl Default for ControllerState {
    fn default() -> Self {
        Self::new()
    }
}

impl ControllerState {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(StateInner {
                snapshot: None,
                view: ViewState::Starting,
                last_progress: Instant::now(),
                quarantined: Vec::new(),
            })),
        }
    }

    /// Ready when the snapshot is loaded and the latest view was complete and fresh. The checks say why not.
    pub fn readiness(&self) -> (bool, BTreeMap<&'static str, Check>) {
        let inner = self.lock();
        let snapshot = match inner.snapshot {
            Some((taken_at, members)) => Check {
                ok: true,
                detail: format!(
                    "{}, taken at {}",
                    shared::count_of(members, "container"),
                    taken_at.to_rfc3339()
                ),
            },
            None => Check {
                ok: false,
                detail: "not read from status-api yet".into(),
            },
        };
        let view = match &inner.view {
            ViewState::Starting => Check {
                ok: false,
                detail: "status-api not asked yet".into(),
            },
            ViewState::Fresh { revision } => Check {
                ok: true,
                detail: format!("complete and fresh at revision {revision}"),
            },
            ViewState::Held(hold) => Check {
                ok: false,
                detail: format!("holding: {hold}"),
            },
        };
        let ready = snapshot.ok && view.ok;
        (
            ready,
            BTreeMap::from([("snapshot", snapshot), ("status_api", view)]),
        )
    }

    /// How long since the loop last got somewhere (an answer, a pass, or a hold).
    pub fn since_progress(&self) -> Duration {
        self.lock().last_progress.elapsed()
    }

    pub fn quarantined(&self) -> Vec<QuarantineView> {
        self.lock().quarantined.clone()
    }

    /// Records a hold; true when it is news (the first, or another reason than before).
    fn hold(&self, hold: Hold) -> bool {
        let mut inner = self.lock();
        inner.last_progress = Instant::now();
        let news =
            !matches!(&inner.view, ViewState::Held(previous) if previous.reason == hold.reason);
        inner.view = ViewState::Held(hold);
        news
    }

    /// Records a fresh view; true when it ends a hold.
    fn fresh(&self, view: &View) -> bool {
        let mut inner = self.lock();
        inner.last_progress = Instant::now();
        inner.snapshot = Some((view.snapshot.taken_at, view.snapshot.containers.len()));
        let recovered = matches!(inner.view, ViewState::Held(_));
        inner.view = ViewState::Fresh {
            revision: view.observed.revision,
        };
        recovered
    }

    /// Pretends the loop last made progress at `at`, to test what `/health` says about a stalled loop.
    #[cfg(test)]
    pub(crate) fn set_last_progress(&self, at: Instant) {
        self.lock().last_progress = at;
    }

    fn holding(&self) -> bool {
        matches!(self.lock().view, ViewState::Held(_))
    }

    fn set_quarantined(&self, quarantined: Vec<QuarantineView>) {
        self.lock().quarantined = quarantined;
    }

    fn lock(&self) -> MutexGuard<'_, StateInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the loop needs besides its collaborators.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub interval: Duration,
    pub dry_run: bool,
    pub plan: PlanSettings,
    pub limits: HealLimits,
}

/// The loop's own memory between passes. Nothing here is shared: the loop is its only user.
#[derive(Debug)]
pub struct Reconciler {
    client: StatusClient,
    executor: Executor,
    state: ControllerState,
    metrics: Metrics,
    journal: Journal,
    settings: LoopSettings,
    guard: HealGuard,
    snapshot: Option<Arc<SnapshotSummary>>,
    /// What was last recorded for containers whose actions are not carried out (reports, dry run,
    /// quarantine), so each is recorded once per appearance.
    announced: HashMap<String, (ActionKind, Option<DriftKind>, ActionResult)>,
    /// When each drift was first seen, for the heal-time metric.
    first_seen: HashMap<(String, ActionKind), Instant>,
    /// The earliest moment a held-back action may go ahead.
    next_wake: Option<Instant>,
}

/// What woke the loop.
enum Wakeup {
    /// The long poll answered: a change, or its wait ran out.
    Answer(Result<StatusResponse, StatusError>),
    /// `--interval` passed: a full pass, snapshot re-read.
    Interval,
    /// A held-back action may go ahead, or an action ended.
    Timer,
}

/// A fresh view, and why the loop looked.
struct Observation {
    view: View,
    /// The revision differs from the last one seen.
    changed: bool,
    /// A full pass: the snapshot was re-read.
    full: bool,
    /// Not the long poll's answer: plan even if nothing changed.
    forced: bool,
}

impl Reconciler {
    pub fn new(
        client: StatusClient,
        executor: Executor,
        state: ControllerState,
        metrics: Metrics,
        journal: Journal,
        settings: LoopSettings,
    ) -> Self {
        Self {
            guard: HealGuard::new(settings.limits),
            client,
            executor,
            state,
            metrics,
            journal,
            settings,
            snapshot: None,
            announced: HashMap::new(),
            first_seen: HashMap::new(),
            next_wake: None,
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
        let finished = self.executor.finished();

        loop {
            let wake = self.next_wake;
            let wakeup = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                _ = interval.tick() => Wakeup::Interval,
                () = sleep_until(wake) => Wakeup::Timer,
                () = finished.notified() => Wakeup::Timer,
                answer = self.client.status(since, LONG_POLL_WAIT) => Wakeup::Answer(answer),
            };
            let started = Instant::now();
            let was_holding = self.state.holding();
            // A hung status-api must not hold up a shutdown: what follows races the stop signal too.
            let observed = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                observed = self.observe(wakeup, since) => observed,
            };
            match observed {
                Ok(Observation {
                    view,
                    changed,
                    full,
                    forced,
                }) => {
                    since = Some(view.observed.revision);
                    api_backoff.reset();
                    if self.state.fresh(&view) {
                        tracing::info!(
                            revision = view.observed.revision,
                            "status-api's view is fresh again: acting"
                        );
                    }
                    self.metrics.set_ready(true);
                    self.snapshot = Some(view.snapshot.clone());
                    if changed || forced || full || was_holding {
                        self.pass(&view, started);
                    }
                }
                Err(hold) => {
                    self.hold(hold);
                    since = None;
                    if !pause(&mut api_backoff, &mut stop).await {
                        break;
                    }
                }
            }
        }

        if !self.executor.drain(DRAIN_TIMEOUT).await {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "actions still under way at shutdown were abandoned");
        }
        tracing::info!("reconcile loop stopped");
    }

    /// Turns a wake-up into a complete, fresh view (asking status-api at once unless the long poll just
    /// answered), or the reason to hold.
    async fn observe(&self, wakeup: Wakeup, since: Option<u64>) -> Result<Observation, Hold> {
        let (answer, full, forced) = match wakeup {
            Wakeup::Answer(answer) => (answer, since.is_none(), false),
            Wakeup::Interval => (self.client.status(None, Duration::ZERO).await, true, true),
            Wakeup::Timer => (self.client.status(None, Duration::ZERO).await, false, true),
        };
        let status = answer.map_err(|err| Hold::from(&err))?;
        let changed = since != Some(status.revision);
        let view = complete_view(&self.client, status, self.snapshot.clone(), full).await?;
        Ok(Observation {
            view,
            changed,
            full,
            forced,
        })
    }

    /// Plans from `view` and dispatches what may go ahead now.
    fn pass(&mut self, view: &View, started: Instant) {
        let now = Instant::now();
        let actions = plan(
            &view.snapshot.containers,
            &view.observed,
            &self.settings.plan,
        );
        let context = Arc::new(view.context(self.settings.plan.own_container_id.as_deref()));
        tracing::debug!(
            revision = view.observed.revision,
            actions = actions.len(),
            "pass"
        );
        self.dispatch(actions, &context, now);
        self.guard.forget_quiet(now);
        self.publish_quarantines(now);
        let ended_at = Utc::now();
        let unix = ended_at.timestamp_micros() as f64 / 1e6;
        self.metrics.observe_pass(started.elapsed(), unix);
    }

    fn dispatch(&mut self, actions: Vec<Action>, context: &Arc<ActionContext>, now: Instant) {
        let keys: HashSet<(String, ActionKind)> = actions
            .iter()
            .map(|action| (action.container.clone(), action.kind))
            .collect();
        self.first_seen.retain(|key, _| keys.contains(key));
        let mut announced_now = HashSet::new();
        let mut next_wake: Option<Instant> = None;

        for action in actions {
            let seen_at = *self
                .first_seen
                .entry((action.container.clone(), action.kind))
                .or_insert(now);
            if action.kind == ActionKind::Wait {
                continue;
            }
            if !action.kind.changes_host() {
                self.announce(&action, ActionResult::Reported, None);
                announced_now.insert(action.container);
                continue;
            }
            if self.settings.dry_run {
                self.announce(
                    &action,
                    ActionResult::DryRun,
                    Some("dry run: not carried out".into()),
                );
                announced_now.insert(action.container);
                continue;
            }
            if self.executor.is_busy(&action.container) {
                continue;
            }
            match self.guard.check(&action.container, now) {
                Gate::Go => {}
                Gate::Wait { until } => {
                    tracing::debug!(container = %action.container, action = %action.kind, wait = ?(until - now), "backing off");
                    next_wake = earliest(next_wake, until);
                    continue;
                }
                Gate::Quarantined { until, .. } => {
                    let attempts = self.guard.attempts(&action.container);
                    let detail = format!(
                        "{attempts} attempts without {}s of quiet: left alone for {}s; restart status-controller to retry sooner",
                        self.guard.limits().backoff.reset_after.as_secs(),
                        (until - now).as_secs()
                    );
                    self.announce(&action, ActionResult::Quarantined, Some(detail));
                    announced_now.insert(action.container);
                    next_wake = earliest(next_wake, until);
                    continue;
                }
            }
            self.guard
                .record_attempt(&action.container, now, rand::random::<f64>());
            self.executor.spawn(action, context.clone(), seen_at);
        }

        self.announced
            .retain(|container, _| announced_now.contains(container));
        self.next_wake = next_wake;
    }

    /// Records an action that is not carried out, once per appearance.
    fn announce(&mut self, action: &Action, result: ActionResult, detail: Option<String>) {
        let key = (action.kind, action.drift, result);
        if self.announced.get(&action.container) == Some(&key) {
            return;
        }
        self.announced.insert(action.container.clone(), key);
        self.metrics.count_action(action.kind, result);
        tracing::info!(
            container = %action.container, action = %action.kind, result = %result,
            reason = %action.reason, detail = detail.as_deref().unwrap_or(""), "not acting"
        );
        self.journal.push(ActionRecord {
            time: Utc::now(),
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
        self.metrics.count_hold(hold.reason.as_str());
        self.metrics.set_ready(false);
        let detail = hold.detail.clone();
        let reason = hold.reason.as_str();
        if self.state.hold(hold) {
            tracing::warn!(
                reason,
                detail,
                "holding: no action until status-api's view is complete and fresh"
            );
        } else {
            tracing::debug!(reason, detail, "still holding");
        }
    }

    fn publish_quarantines(&self, now: Instant) {
        let utc_now = Utc::now();
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
        self.metrics.set_quarantined(quarantined.len());
        self.state.set_quarantined(quarantined);
    }
}

fn earliest(current: Option<Instant>, candidate: Instant) -> Option<Instant> {
    Some(current.map_or(candidate, |current| current.min(candidate)))
}

/// Sleeps until `at`, or forever when there is nothing to wake for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Waits out the next backoff step; false when `stop` came first.
async fn pause(backoff: &mut Backoff, stop: &mut watch::Receiver<bool>) -> bool {
    let delay = backoff.fail(Instant::now(), rand::random::<f64>());
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        _ = stop.wait_for(|stop| *stop) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> StatusResponse {
        StatusResponse {
            revision: 4,
            observed_at: Utc::now(),
            snapshot_taken_at: Some(Utc::now()),
            scope: None,
            events_live: true,
            resync_interval_seconds: 30,
            server_container_id: None,
            containers: vec![],
        }
    }

    #[test]
    fn a_live_recent_view_with_a_snapshot_is_fresh() {
        assert_eq!(check_fresh(&status(), Utc::now()), Ok(()));
        let almost_stale = status().observed_at + chrono::Duration::seconds(59);
        assert_eq!(check_fresh(&status(), almost_stale), Ok(()));
    }

    #[test]
    fn a_view_older_than_twice_the_resync_interval_is_stale() {
        let later = Utc::now() + chrono::Duration::seconds(61);
        let hold = check_fresh(&status(), later).expect_err("stale");
        assert_eq!(hold.reason, HoldReason::Stale);
        assert!(hold.detail.contains("30s"), "{}", hold.detail);
    }

    #[test]
    fn a_view_without_events_or_snapshot_is_held() {
        let no_events = StatusResponse {
            events_live: false,
            ..status()
        };
        assert_eq!(
            check_fresh(&no_events, Utc::now()).map_err(|hold| hold.reason),
            Err(HoldReason::EventsDown)
        );
        let no_snapshot = StatusResponse {
            snapshot_taken_at: None,
            ..status()
        };
        assert_eq!(
            check_fresh(&no_snapshot, Utc::now()).map_err(|hold| hold.reason),
            Err(HoldReason::NoSnapshot)
        );
    }

    #[test]
    fn hold_reasons_are_the_metric_labels() {
        let reasons = [
            HoldReason::ApiUnreachable,
            HoldReason::ApiNotReady,
            HoldReason::EventsDown,
            HoldReason::Stale,
            HoldReason::NoSnapshot,
            HoldReason::BadAnswer,
        ];
        let labels: Vec<&str> = reasons.iter().map(|reason| reason.as_str()).collect();
        assert_eq!(labels, crate::metrics::HOLD_REASONS);
        assert_eq!(
            Hold::from(&StatusError::NotReady {
                detail: "events: down".into()
            })
            .reason,
            HoldReason::ApiNotReady
        );
    }

    #[test]
    fn readiness_needs_the_snapshot_and_a_fresh_view() {
        let state = ControllerState::new();
        assert!(!state.readiness().0, "not ready before anything is known");
        let view = View {
            snapshot: Arc::new(SnapshotSummary {
                taken_at: Utc::now(),
                scope: None,
                containers: vec![],
            }),
            observed: Observed::try_from(status()).expect("no scope"),
        };
        assert!(!state.fresh(&view), "not a recovery");
        let (ready, checks) = state.readiness();
        assert!(ready, "{checks:?}");
        assert!(state.hold(Hold::new(HoldReason::ApiUnreachable, "down")));
        assert!(
            !state.hold(Hold::new(HoldReason::ApiUnreachable, "still down")),
            "not news"
        );
        let (ready, checks) = state.readiness();
        assert!(!ready);
        assert!(
            checks["status_api"].detail.contains("api_unreachable"),
            "{checks:?}"
        );
        assert!(checks["snapshot"].ok, "the snapshot stays known");
        assert!(state.fresh(&view), "a recovery");
    }
}
