//! The live view: every container in scope, kept current by the engine's event stream, with a full re-list
//! on start, after every reconnect and every `--resync-interval` as a safety net. Requests read an immutable
//! [`View`] of one revision; nothing on the request path calls the engine.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::models::EventMessage;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use shared::backoff::Backoff;
use shared::{drift, in_scope, ContainerState, ContainerStatus, DriftItem, Scope, SnapshotMember};
use tokio::sync::watch;

use crate::docker::{status_from_inspect, DockerError, DockerReader};
use crate::snapshot::Snapshot;

/// How many inspects a full re-list runs at once.
const INSPECT_CONCURRENCY: usize = 16;

/// A cheap-to-clone handle to the live view.
#[derive(Debug, Clone)]
pub struct Inventory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    scope: Scope,
    /// The container status-api runs in, if any.
    own_container_id: Option<String>,
    resync_interval: Duration,
    state: RwLock<State>,
    /// The newest revision, for long polls to wait on.
    revision: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    containers: HashMap<String, ContainerStatus>,
    snapshot: Option<Arc<Snapshot>>,
    revision: u64,
    observed_at: Option<DateTime<Utc>>,
    events_live: bool,
    docker: Check,
    events_seen: u64,
    /// The view of the current revision, built on first request.
    view: Option<Arc<View>>,
}

/// One readiness check: whether it passes, and a sentence on why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

/// Everything a request needs, frozen at one revision. Serialised bodies and drift are computed once per
/// revision, on first use, and shared by every request that follows.
#[derive(Debug)]
pub struct View {
    pub revision: u64,
    pub observed_at: DateTime<Utc>,
    pub events_live: bool,
    pub scope: Scope,
    pub resync_interval: Duration,
    pub own_container_id: Option<String>,
    pub snapshot: Option<Arc<Snapshot>>,
    /// Every container in scope, sorted by name, with `in_snapshot` set.
    pub containers: Vec<ContainerStatus>,
    members: Vec<SnapshotMember>,
    drift: OnceLock<Vec<DriftItem>>,
    running_body: OnceLock<Bytes>,
    all_body: OnceLock<Bytes>,
}

impl View {
    /// The drift of this revision (empty until a snapshot exists).
    pub fn drift(&self) -> &[DriftItem] {
        self.drift.get_or_init(|| {
            if self.snapshot.is_none() {
                return Vec::new();
            }
            drift(&self.members, &self.containers, &self.scope)
        })
    }

    /// The cached body of `/status` (running only) or `/status?all=true`.
    pub fn cached_body(&self, all: bool, render: impl FnOnce(&Self) -> Bytes) -> Bytes {
        let cell = if all {
            &self.all_body
        } else {
            &self.running_body
        };
        cell.get_or_init(|| render(self)).clone()
    }

    pub fn count_by_state(&self) -> BTreeMap<ContainerState, usize> {
        let mut counts: BTreeMap<ContainerState, usize> = ContainerState::ALL
            .into_iter()
            .map(|state| (state, 0))
            .collect();
        for container in &self.containers {
            *counts.entry(container.state).or_default() += 1;
        }
        counts
    }
}

impl Inventory {
    pub fn new(scope: Scope, resync_interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                scope,
                own_container_id: shared::runtime::own_container_id(),
                resync_interval,
                state: RwLock::new(State {
                    docker: Check {
                        ok: false,
                        detail: "not contacted yet".into(),
                    },
                    ..State::default()
                }),
                revision: watch::Sender::new(0),
            }),
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.inner.scope
    }

    /// A receiver that sees every new revision.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.revision.subscribe()
    }

    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.read().snapshot.clone()
    }

    /// Installs a new baseline. Every container's `in_snapshot` and the drift change with it.
    pub fn set_snapshot(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        let snapshot = Arc::new(snapshot);
        let mut state = self.write();
        state.snapshot = Some(snapshot.clone());
        self.bump(&mut state);
        snapshot
    }

    /// The readiness checks: docker, snapshot, events.
    pub fn checks(&self) -> BTreeMap<&'static str, Check> {
        let state = self.read();
        let snapshot = match &state.snapshot {
            Some(snapshot) => Check {
                ok: true,
                detail: format!(
                    "{}, taken at {}",
                    shared::count_of(snapshot.containers.len(), "container"),
                    snapshot.taken_at.to_rfc3339()
                ),
            },
            None => Check {
                ok: false,
                detail: "no snapshot yet: it is taken as soon as Docker answers".into(),
            },
        };
        let events = Check {
            ok: state.events_live,
            detail: if state.events_live {
                "event stream connected".into()
            } else {
                "event stream not connected".into()
            },
        };
        BTreeMap::from([
            ("docker", state.docker.clone()),
            ("snapshot", snapshot),
            ("events", events),
        ])
    }

    pub fn docker_ok(&self) -> bool {
        self.read().docker.ok
    }

    /// How many engine events have been received.
    pub fn events_seen(&self) -> u64 {
        self.read().events_seen
    }

    /// The view of the current revision.
    pub fn view(&self) -> Arc<View> {
        if let Some(view) = self.read().view.clone() {
            return view;
        }
        let mut state = self.write();
        if let Some(view) = state.view.clone() {
            return view;
        }
        let view = Arc::new(self.build_view(&state));
        state.view = Some(view.clone());
        view
    }

    fn build_view(&self, state: &State) -> View {
        let members = state
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.summary().containers)
            .unwrap_or_default();
        let names: HashSet<&str> = members.iter().map(|member| member.name.as_str()).collect();
        let mut containers: Vec<ContainerStatus> = state
            .containers
            .values()
            .map(|container| ContainerStatus {
                in_snapshot: names.contains(container.name.as_str()),
                ..container.clone()
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        View {
            revision: state.revision,
            observed_at: state.observed_at.unwrap_or_else(Utc::now),
            events_live: state.events_live,
            scope: self.inner.scope.clone(),
            resync_interval: self.inner.resync_interval,
            own_container_id: self.inner.own_container_id.clone(),
            snapshot: state.snapshot.clone(),
            containers,
            members,
            drift: OnceLock::new(),
            running_body: OnceLock::new(),
            all_body: OnceLock::new(),
        }
    }

    /// Follows the engine until `shutdown` turns true: re-list, stream events, re-list on a timer; on any
    /// failure mark the view not live, back off (jittered, capped) and start over with a fresh re-list.
    pub async fn watch(self, docker: DockerReader, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        loop {
            let outcome = tokio::select! {
                outcome = self.follow(&docker, &mut backoff) => outcome,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let reason = match outcome {
                Ok(()) => "the engine closed the event stream".to_owned(),
                Err(err) => error_chain(&err),
            };
            let delay = backoff.fail(Instant::now(), rand::random::<f64>());
            tracing::warn!(reason = %reason, retry_in = ?delay, "lost the Docker engine; will re-list and resubscribe");
            self.set_disconnected(reason);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// One connection's life: returns when the stream ends or anything fails.
    async fn follow(
        &self,
        docker: &DockerReader,
        backoff: &mut Backoff,
    ) -> Result<(), DockerError> {
        docker.negotiate().await?;
        // Events are asked for from a moment before the re-list, so nothing that happens while it runs is
        // missed; replaying a few is harmless, as every event leads to a fresh inspect.
        let since = unix_seconds(SystemTime::now() - Duration::from_secs(1));
        self.resync(docker).await?;
        let mut events = Box::pin(docker.events(&self.inner.scope, Some(since)));
        self.set_events_live(true);
        let mut resync = tokio::time::interval_at(
            tokio::time::Instant::now() + self.inner.resync_interval,
            self.inner.resync_interval,
        );
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let connected = Instant::now();
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => self.apply_event(docker, event).await?,
                    Some(Err(err)) => return Err(DockerError::EventsFailed(err)),
                    None => return Ok(()),
                },
                _ = resync.tick() => self.resync(docker).await?,
            }
            // A connection that has stayed up a while proves the trouble is over.
            if connected.elapsed() > Duration::from_secs(60) && backoff.failures() > 0 {
                backoff.reset();
            }
        }
    }

    /// Re-reads every container in scope and replaces the view with what the engine says.
    #[tracing::instrument(skip_all)]
    pub async fn resync(&self, docker: &DockerReader) -> Result<(), DockerError> {
        let result = self.read_all(docker).await;
        match result {
            Ok(containers) => {
                let mut state = self.write();
                state.docker = Check {
                    ok: true,
                    detail: "the engine answers".into(),
                };
                state.observed_at = Some(Utc::now());
                state.view = None;
                if state.containers != containers {
                    state.containers = containers;
                    self.bump(&mut state);
                }
                Ok(())
            }
            Err(err) => {
                self.write().docker = Check {
                    ok: false,
                    detail: error_chain(&err),
                };
                Err(err)
            }
        }
    }

    async fn read_all(
        &self,
        docker: &DockerReader,
    ) -> Result<HashMap<String, ContainerStatus>, DockerError> {
        let ids: Vec<String> = docker
            .list(&self.inner.scope, true)
            .await?
            .into_iter()
            .filter_map(|summary| summary.id)
            .collect();
        // Each inspect answer (kilobytes) becomes its status (a few hundred bytes) as soon as it arrives, so
        // a re-list of 1,000 containers never holds 1,000 inspect answers at once.
        let statuses: Vec<Option<ContainerStatus>> = futures::stream::iter(ids)
            .map(|id| async move {
                let inspected = docker.inspect(&id).await?;
                Ok::<_, DockerError>(inspected.as_ref().and_then(status_from_inspect))
            })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(statuses
            .into_iter()
            .flatten()
            .filter(|status| in_scope(&self.inner.scope, &status.labels))
            .map(|status| (status.id.clone(), status))
            .collect())
    }

    /// Brings one container up to date after an event about it.
    async fn apply_event(
        &self,
        docker: &DockerReader,
        event: EventMessage,
    ) -> Result<(), DockerError> {
        self.write().events_seen += 1;
        let Some(id) = event.actor.and_then(|actor| actor.id) else {
            return Ok(());
        };
        let action = event.action.unwrap_or_default();
        tracing::debug!(container = %id, action = %action, "engine event");
        if action.starts_with("exec_") {
            return Ok(());
        }
        let current = if action == "destroy" {
            None
        } else {
            docker
                .inspect(&id)
                .await?
                .as_ref()
                .and_then(status_from_inspect)
                .filter(|status| in_scope(&self.inner.scope, &status.labels))
        };
        let mut state = self.write();
        let changed = match current {
            Some(status) => state.containers.insert(id, status.clone()).as_ref() != Some(&status),
            None => state.containers.remove(&id).is_some(),
        };
        if changed {
            self.bump(&mut state);
        }
        Ok(())
    }

    fn set_events_live(&self, live: bool) {
        let mut state = self.write();
        if state.events_live != live {
            state.events_live = live;
            self.bump(&mut state);
        }
    }

    fn set_disconnected(&self, reason: String) {
        let mut state = self.write();
        state.docker = Check {
            ok: false,
            detail: reason,
        };
        if state.events_live {
            state.events_live = false;
            self.bump(&mut state);
        }
    }

    /// A new revision: drop the cached view and wake every long poll.
    fn bump(&self, state: &mut State) {
        state.revision += 1;
        state.view = None;
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

fn unix_seconds(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{:09}",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    )
}

pub use shared::error_chain;
