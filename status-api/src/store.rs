//! The live view's state, split as kube-runtime's reflector splits it: one [`Writer`], owned by the watch loop,
//! applies what the engine says; [`Store`], cheap to clone, is what handlers and metrics read. Every change —
//! a container, the event stream, the engine's reachability, the baseline in force, what we may do in the state
//! directory — is a new revision, and
//! requests read an immutable [`View`] of one revision. Nothing here calls the engine.

mod drifts;
mod listing;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::{ContainerStatus, Engine, Scope};
use tokio::sync::watch;

use crate::baseline::{Baseline, BaselineReceiver};
use crate::onsets::DriftOnsets;
use crate::state_dir::Access;
use crate::view::{scope_mismatch, ReadinessCheck, View, ViewParts};

use drifts::Drifts;
pub use listing::ImageTags;
use listing::{Decor, Listing};

/// The read side. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The write side: only the watch loop holds it. Not `Clone`, so there is one.
#[derive(Debug)]
pub struct Writer {
    store: Store,
}

/// The write side of one more piece of state, which image each image reference in use names now: only the
/// image tag watch ([`crate::image_tags`]) holds it. Not `Clone`, so there is one.
#[derive(Debug)]
pub struct ImageTagsWriter {
    store: Store,
}

#[derive(Debug)]
struct Inner {
    scope: Scope,
    /// The container status-api runs in, if any.
    own_container_id: Option<String>,
    resync_interval: Duration,
    /// The baseline in force, as its keeper publishes it.
    baselines: BaselineReceiver,
    /// What this status-api may do in its state directory, once start-up says ([`Writer::follow_state_dir`]).
    state_dir: OnceLock<watch::Receiver<Access>>,
    state: RwLock<State>,
    /// Held while a view is built, outside the state's lock: one build at a time, so the event applier
    /// never waits for one, and a request that waited here finds the view the build before it made. It
    /// holds the last view's drift, which the next view's is worked out from.
    building: Mutex<Drifts>,
    /// The newest revision, for long polls to wait on.
    revision: watch::Sender<u64>,
}

#[derive(Debug)]
struct State {
    /// Every container, decorated for `baseline` and `image_tags`.
    containers: Listing,
    /// Which image each reference the containers were created from names now.
    image_tags: ImageTags,
    /// The baseline the current revision is compared with.
    baseline: Option<Arc<Baseline>>,
    /// The state directory's access the current revision reports.
    state_dir: Option<Access>,
    revision: u64,
    /// When the revision last rose.
    changed_at: DateTime<Utc>,
    observed_at: Option<DateTime<Utc>>,
    events_live: bool,
    engine: ReadinessCheck,
    /// Which engine answered `GET /version` last.
    identity: Option<Engine>,
    events_seen: u64,
    /// Events received and not yet applied, and the engine time of the oldest of them (`/status`'s
    /// `event_backlog` and `event_lag_seconds`).
    event_backlog: usize,
    oldest_pending_event: Option<DateTime<Utc>>,
    /// The view of the current revision, built on first request.
    view: Option<Arc<View>>,
    /// Rises whenever `view` is dropped: a view built from an older generation is served but not kept.
    generation: u64,
    /// When each drift of the last view built began, for the next view to carry on.
    onsets: Arc<DriftOnsets>,
}

impl Writer {
    /// An empty store in `scope` (nothing listed, the engine not contacted yet) that follows `baselines`.
    pub fn new(scope: Scope, resync_interval: Duration, baselines: BaselineReceiver) -> Self {
        let baseline = baselines.borrow().clone();
        let state = State {
            containers: Listing::default(),
            image_tags: ImageTags::new(),
            baseline,
            state_dir: None,
            revision: 0,
            changed_at: Utc::now(),
            observed_at: None,
            events_live: false,
            engine: ReadinessCheck::down("not contacted yet"),
            identity: None,
            events_seen: 0,
            event_backlog: 0,
            oldest_pending_event: None,
            view: None,
            generation: 0,
            onsets: Arc::default(),
        };
        let own = shared::runtime::own_container::OwnContainer::detect();
        shared::runtime::own_container::OwnContainer::log(own.as_ref());
        Self {
            store: Store {
                inner: Arc::new(Inner {
                    scope,
                    own_container_id: own.map(|own| own.id),
                    resync_interval,
                    baselines,
                    state_dir: OnceLock::new(),
                    state: RwLock::new(state),
                    building: Mutex::new(Drifts::default()),
                    revision: watch::Sender::new(0),
                }),
            },
        }
    }

    /// Reports what `access` says of the state directory (the `state_dir` readiness check); a change is a
    /// new revision. Set once, at start-up; later calls are ignored.
    pub fn follow_state_dir(&self, access: watch::Receiver<Access>) {
        let _ = self.store.inner.state_dir.set(access);
        let mut state = self.store.write();
        self.store.commit(&mut state, false);
    }

    /// A reader of what this writer writes.
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// The writer of the image tags. Call once: the tag watch is their one owner.
    pub fn image_tags(&self) -> ImageTagsWriter {
        ImageTagsWriter {
            store: self.store.clone(),
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.store.inner.scope
    }

    pub fn resync_interval(&self) -> Duration {
        self.store.inner.resync_interval
    }

    /// Replaces every container with the result of a full re-list, which also proves the engine answers.
    /// The view is rebuilt (its `observed_at` moves) but the revision only rises if something changed.
    pub fn replace_all(&self, containers: HashMap<String, ContainerStatus>) {
        let mut guard = self.store.write();
        let state = &mut *guard;
        let mut changed = set_engine(state, ReadinessCheck::up("the engine answers"));
        state.observed_at = Some(Utc::now());
        invalidate(state);
        changed |= state
            .containers
            .replace_all(containers, decor(&state.baseline, &state.image_tags));
        self.store.commit(state, changed);
    }

    /// One container after an event: its new status, or `None` when it is gone or left the scope.
    pub fn apply(&self, id: String, status: Option<ContainerStatus>) {
        let mut guard = self.store.write();
        let state = &mut *guard;
        let changed = match status {
            Some(status) => {
                state
                    .containers
                    .set(id, status, decor(&state.baseline, &state.image_tags))
            }
            None => state.containers.remove(&id),
        };
        self.store.commit(state, changed);
    }

    /// Counts one event received from the engine (for `dockstate_docker_events_total`).
    pub fn count_event(&self) {
        self.store.write().events_seen += 1;
    }

    /// How many events wait to be applied, and the engine time of the oldest. Not a new revision (no
    /// container changed), but the next request sees it, as it sees a new `observed_at`.
    pub fn event_progress(&self, backlog: usize, oldest: Option<DateTime<Utc>>) {
        let mut state = self.store.write();
        if (state.event_backlog, state.oldest_pending_event) != (backlog, oldest) {
            state.event_backlog = backlog;
            state.oldest_pending_event = oldest;
            invalidate(&mut state);
        }
    }

    /// The engine answered (a ping): the `docker` check is up.
    pub fn engine_answered(&self) {
        let mut state = self.store.write();
        let changed = set_engine(&mut state, ReadinessCheck::up("the engine answers"));
        self.store.commit(&mut state, changed);
    }

    /// The engine said what it is (on every connection); a change is a new revision. Whether it changed.
    pub fn identified(&self, engine: Engine) -> bool {
        let mut state = self.store.write();
        let changed = state.identity.as_ref() != Some(&engine);
        state.identity = Some(engine);
        self.store.commit(&mut state, changed);
        changed
    }

    pub fn set_events_live(&self, live: bool) {
        let mut state = self.store.write();
        let changed = state.events_live != live;
        state.events_live = live;
        self.store.commit(&mut state, changed);
    }

    /// A call to the engine failed: the `docker` check is down with `reason`.
    pub fn engine_failed(&self, reason: String) {
        let mut state = self.store.write();
        let changed = set_engine(&mut state, ReadinessCheck::down(reason));
        self.store.commit(&mut state, changed);
    }

    /// The connection is lost: the engine check is down and the view is not live, in one revision.
    pub fn disconnected(&self, reason: String) {
        let mut state = self.store.write();
        let mut changed = set_engine(&mut state, ReadinessCheck::down(reason));
        changed |= std::mem::replace(&mut state.events_live, false);
        self.store.commit(&mut state, changed);
    }
}

impl ImageTagsWriter {
    /// Which image each reference in use names now; a change is a new revision.
    pub fn set(&self, tags: &ImageTags) {
        let mut guard = self.store.write();
        let state = &mut *guard;
        let changed = state.image_tags != *tags;
        if changed {
            state.image_tags = tags.clone();
            state
                .containers
                .redecorate(decor(&state.baseline, &state.image_tags));
        }
        self.store.commit(state, changed);
    }

    /// A reader of the store these tags go into.
    pub fn store(&self) -> Store {
        self.store.clone()
    }
}

/// What the containers are decorated with: the baseline and image tags in force.
fn decor<'a>(baseline: &'a Option<Arc<Baseline>>, image_tags: &'a ImageTags) -> Decor<'a> {
    Decor {
        baseline: baseline.as_deref(),
        image_tags,
    }
}

/// Drops the cached view: the next request builds one.
fn invalidate(state: &mut State) {
    state.view = None;
    state.generation += 1;
}

/// Sets the `docker` check; whether readiness changed.
fn set_engine(state: &mut State, check: ReadinessCheck) -> bool {
    let changed = state.engine != check;
    state.engine = check;
    changed
}

impl Store {
    pub fn scope(&self) -> &Scope {
        &self.inner.scope
    }

    /// A receiver that sees every new revision. A new baseline is seen here once a reader of the store
    /// ([`Store::revision`], [`Store::view`]) has noticed it; [`Store::wait_past`] does both.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.revision.subscribe()
    }

    pub fn revision(&self) -> u64 {
        self.in_step().revision
    }

    /// Whether the engine answered the last call made to it.
    pub fn engine_reachable(&self) -> bool {
        self.read().engine.ok
    }

    /// One container as the store holds it (before the baseline marks `in_snapshot`).
    pub fn container(&self, id: &str) -> Option<ContainerStatus> {
        self.read()
            .containers
            .get(id)
            .map(|status| ContainerStatus::clone(status))
    }

    /// The image references the containers were created from (image ids left out: they name one image for
    /// good). Asked at every revision, so each distinct reference is copied once, not once per container.
    pub fn image_references(&self) -> BTreeSet<String> {
        self.read().containers.image_references()
    }

    /// How many engine events have been received.
    pub fn events_seen(&self) -> u64 {
        self.read().events_seen
    }

    /// The view of the current revision. Built outside the state's lock, from shared statuses: the event
    /// applier goes on meanwhile, and the view is of the revision current when its build began.
    pub fn view(&self) -> Arc<View> {
        if let Some(view) = self.in_step().view.clone() {
            return view;
        }
        let mut drifts = self
            .inner
            .building
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (mut parts, generation) = {
            let mut state = self.write();
            self.adopt_baseline(&mut state);
            if let Some(view) = state.view.clone() {
                return view;
            }
            (self.parts(&state), state.generation)
        };
        parts.drift = match &parts.baseline {
            Some(baseline) if scope_mismatch(Some(baseline), &self.inner.scope).is_none() => {
                drifts.follow(baseline, parts.containers.clone(), &self.inner.scope)
            }
            _ => Vec::new(),
        };
        let view = Arc::new(View::new(parts));
        let mut state = self.write();
        // The next view's drift begins where this one's left off, kept or not.
        state.onsets = view.onsets().clone();
        if state.generation == generation {
            state.view = Some(view.clone());
        }
        view
    }

    /// What a view of the current revision is built from: shared pointers and small copies, taken under the
    /// lock.
    fn parts(&self, state: &State) -> ViewParts<'_> {
        ViewParts {
            revision: state.revision,
            observed_at: state.observed_at.unwrap_or_else(Utc::now),
            events_live: state.events_live,
            scope: &self.inner.scope,
            resync_interval: self.inner.resync_interval,
            own_container_id: self.inner.own_container_id.as_deref(),
            baseline: state.baseline.clone(),
            engine: state.engine.clone(),
            identity: state.identity.clone(),
            state_dir: state.state_dir.as_ref().map(|access| {
                let (ok, detail) = access.check();
                ReadinessCheck { ok, detail }
            }),
            event_backlog: state.event_backlog,
            oldest_pending_event: state.oldest_pending_event,
            containers: state.containers.sorted(),
            drift: Vec::new(),
            onsets: state.onsets.clone(),
            changed_at: state.changed_at,
        }
    }

    /// Returns once the revision is no longer `since`: at once if it already is not (also when `since` is
    /// ahead, from before a restart), else at the next change, a new baseline included.
    pub async fn wait_past(&self, since: u64) {
        let mut revisions = self.subscribe();
        let mut baselines = self.inner.baselines.clone();
        baselines.borrow_and_update();
        let mut access = self.inner.state_dir.get().cloned();
        if let Some(access) = &mut access {
            access.borrow_and_update();
        }
        loop {
            revisions.borrow_and_update();
            if self.revision() != since {
                return;
            }
            let new_baseline = async {
                if baselines.changed().await.is_err() {
                    // The keeper is gone: no baseline will come; wait for the containers alone.
                    std::future::pending::<()>().await;
                }
            };
            let new_access = async {
                let followed = match &mut access {
                    Some(access) => access.changed().await.is_ok(),
                    None => false,
                };
                if !followed {
                    // Nobody follows the state directory, or its owner is gone: nothing will change there.
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                changed = revisions.changed() => if changed.is_err() { return },
                () = new_baseline => {}
                () = new_access => {}
            }
        }
    }

    /// The state, with the baseline its keeper publishes and the state directory's access adopted: a change of
    /// either is a new revision.
    fn in_step(&self) -> RwLockReadGuard<'_, State> {
        let state = self.read();
        if same(&state.baseline, &self.inner.baselines.borrow()) && self.access_is(&state.state_dir)
        {
            return state;
        }
        drop(state);
        let mut state = self.write();
        self.adopt_baseline(&mut state);
        drop(state);
        self.read()
    }

    /// Whether `known` is what the state directory's owner says now, compared in place: every request
    /// asks, so it copies nothing.
    fn access_is(&self, known: &Option<Access>) -> bool {
        match self.inner.state_dir.get() {
            Some(access) => known.as_ref() == Some(&*access.borrow()),
            None => known.is_none(),
        }
    }

    fn adopt_baseline(&self, state: &mut State) {
        self.commit(state, false);
    }

    /// What the state directory's owner says now; `None` when nobody follows it (unit tests of the store).
    fn access(&self) -> Option<Access> {
        self.inner
            .state_dir
            .get()
            .map(|access| access.borrow().clone())
    }

    /// Ends a write: a change, or a baseline or state directory access published meanwhile, is a new revision
    /// (one, for all).
    fn commit(&self, state: &mut State, changed: bool) {
        let current = self.inner.baselines.borrow().clone();
        let mut adopted = !same(&state.baseline, &current);
        if adopted {
            state.baseline = current;
            state
                .containers
                .redecorate(decor(&state.baseline, &state.image_tags));
        }
        let access = self.access();
        if state.state_dir != access {
            state.state_dir = access;
            adopted = true;
        }
        if changed || adopted {
            self.bump(state);
        }
    }

    /// A new revision: drop the cached view and wake every long poll.
    fn bump(&self, state: &mut State) {
        state.revision += 1;
        state.changed_at = Utc::now();
        invalidate(state);
        self.inner.revision.send_replace(state.revision);
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way that matters more than
        // stopping to serve would: keep serving.
        self.inner
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn same(a: &Option<Arc<Baseline>>, b: &Option<Arc<Baseline>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}
