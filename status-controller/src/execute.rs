//! Carrying actions out against Docker. [`DockerWriter`] is the only handle in dockstate that can start,
//! stop, create and remove containers; [`Executor`] is the only code that uses it.
//!
//! Actions run as tasks, at most one per container at a time, in two lanes with their own bounds — heals
//! (start, unpause, restart, recreate) and clean-ups (stop, remove) — so a slow stop never delays a heal.
//! Right before anything that stops or removes a container, the engine is asked again what the container is
//! (name, labels, scope, policy, state): an action planned from a view a few milliseconds old must still be
//! right for what is there now. "Already started" (304) and "no such container" (404) are outcomes, not
//! errors.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, EndpointSettings, HealthStatusEnum,
    NetworkConnectRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions,
    RestartContainerOptions, StartContainerOptions, StopContainerOptions,
};
use chrono::Utc;
use shared::{in_scope, Policy, Scope};
use tokio::sync::{watch, Notify, OnceCell, Semaphore};
use tokio::task::JoinHandle;

use crate::error_chain;
use crate::journal::{ActionRecord, ActionResult, Journal};
use crate::metrics::Metrics;
use crate::plan::{Action, ActionKind};
use crate::recreate::{recreation, Recreation};
use crate::status_client::{StatusClient, StatusError};

/// How many heals run at once.
pub const HEAL_CONCURRENCY: usize = 8;
/// How many stops and removals run at once, apart from the heals.
pub const CLEANUP_CONCURRENCY: usize = 4;

/// How long a Docker call may take: a stop or restart waits out the container's own stop timeout (10 s
/// unless it sets one), so this is generous.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// What went wrong talking to the engine. 304 and 404 are not errors: see [`Applied`].
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot set up a Docker client (check DOCKER_HOST)")]
    ConnectFailed(#[source] bollard::errors::Error),
    #[error("the Docker engine did not answer the version negotiation")]
    NegotiateFailed(#[source] bollard::errors::Error),
    #[error("{op} {container}: the Docker engine could not be reached (check DOCKER_HOST / --docker-host and the socket)")]
    EngineUnreachable {
        op: &'static str,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{op} {container}: the Docker engine refused")]
    CallFailed {
        op: &'static str,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{op} {container} conflicts with what the engine has: {message}")]
    Conflict {
        op: &'static str,
        container: String,
        message: String,
    },
    #[error(
        "image {image} is not on this host, and dockstate never pulls: pull or load it \
         (`docker pull {image}`), and the next attempt recreates {container}"
    )]
    ImageMissing { image: String, container: String },
}

pub type Result<T, E = DockerError> = std::result::Result<T, E>;

/// How a call that may legitimately find nothing to do went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// 304: already in the state asked for.
    AlreadyDone,
    /// 404: no such container.
    NoSuchContainer,
}

/// A Docker handle that can change the host. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerWriter {
    docker: bollard::Docker,
    /// Set once the API version is agreed on; retried by the next call until then.
    negotiated: Arc<OnceCell<()>>,
}

impl DockerWriter {
    /// A client for `host` (`unix:///…`, `tcp://…`), else the local socket. No request is made until the
    /// first call. A call that gets no answer within [`DOCKER_TIMEOUT`] fails.
    pub fn connect(host: Option<&str>) -> Result<Self> {
        let docker = shared::runtime::docker_client(host, DOCKER_TIMEOUT)
            .map_err(DockerError::ConnectFailed)?;
        Ok(Self {
            docker,
            negotiated: Arc::new(OnceCell::new()),
        })
    }

    /// Agrees on an API version with the engine, once: never pinned, so old engines (1.41) and new ones
    /// both work. Every action calls it; after the first success it costs nothing.
    pub async fn negotiate(&self) -> Result<()> {
        self.negotiated
            .get_or_try_init(|| async {
                self.docker
                    .clone()
                    .negotiate_version()
                    .await
                    .map(|_| ())
                    .map_err(DockerError::NegotiateFailed)
            })
            .await
            .copied()
    }

    /// One container by id, or `None` when the engine has no such container.
    #[tracing::instrument(skip_all, fields(container = %name))]
    pub async fn inspect(&self, name: &str, id: &str) -> Result<Option<ContainerInspectResponse>> {
        match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(found) => Ok(Some(found)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(err) => Err(failure("inspect", name, err)),
        }
    }

    #[tracing::instrument(skip_all, fields(container = %name))]
    pub async fn start(&self, name: &str, id: &str) -> Result<Applied> {
        let result = self
            .docker
            .start_container(id, None::<StartContainerOptions>)
            .await;
        applied("start", name, result)
    }

    #[tracing::instrument(skip_all, fields(container = %name))]
    pub async fn unpause(&self, name: &str, id: &str) -> Result<Applied> {
        match applied("unpause", name, self.docker.unpause_container(id).await) {
            // The engine answers 409 "is not paused" when someone unpaused it first.
            Err(DockerError::Conflict { message, .. }) if message.contains("not paused") => {
                Ok(Applied::AlreadyDone)
            }
            other => other,
        }
    }

    /// Restarts with the container's own stop timeout (the engine's default, 10 s, when it has none).
    #[tracing::instrument(skip_all, fields(container = %name))]
    pub async fn restart(&self, name: &str, id: &str) -> Result<Applied> {
        let result = self
            .docker
            .restart_container(id, None::<RestartContainerOptions>)
            .await;
        applied("restart", name, result)
    }

    /// Stops gracefully, with the container's own stop timeout.
    #[tracing::instrument(skip_all, fields(container = %name))]
    pub async fn stop(&self, name: &str, id: &str) -> Result<Applied> {
        let result = self
            .docker
            .stop_container(id, None::<StopContainerOptions>)
            .await;
        applied("stop", name, result)
    }

    /// Removes a stopped container. Never its volumes, never by force.
    #[tracing::instrument(skip_all, fields(container = %name))]
    pub async fn remove(&self, name: &str, id: &str) -> Result<Applied> {
        let options = RemoveContainerOptions {
            v: false,
            force: false,
            link: false,
        };
        match applied(
            "remove",
            name,
            self.docker.remove_container(id, Some(options)).await,
        ) {
            Err(DockerError::Conflict { message, .. })
                if message.contains("already in progress") =>
            {
                Ok(Applied::AlreadyDone)
            }
            other => other,
        }
    }

    /// Removes a container this controller has just created and could not finish setting up.
    #[tracing::instrument(skip_all, fields(container = %name))]
    async fn discard(&self, name: &str, id: &str) {
        let options = RemoveContainerOptions {
            v: false,
            force: true,
            link: false,
        };
        if let Err(err) = self.docker.remove_container(id, Some(options)).await {
            tracing::warn!(error = %err, id, "could not remove the half-made container");
        }
    }

    /// Creates the container (not started); returns its id.
    #[tracing::instrument(skip_all, fields(container = %recreation.name))]
    pub async fn create(&self, recreation: &Recreation) -> Result<String> {
        let options = CreateContainerOptions {
            name: Some(recreation.name.clone()),
            platform: String::new(),
        };
        match self
            .docker
            .create_container(Some(options), recreation.body.clone())
            .await
        {
            Ok(created) => {
                for warning in &created.warnings {
                    tracing::warn!(warning, "the engine warned on create");
                }
                Ok(created.id)
            }
            // 404 is "No such image: …" — or a network of the spec that no longer exists, which the engine's
            // own message says better than we could.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.contains("image") => Err(DockerError::ImageMissing {
                image: recreation.image.clone(),
                container: recreation.name.clone(),
            }),
            Err(err) => Err(failure("create", &recreation.name, err)),
        }
    }

    /// Connects a container to one more network.
    #[tracing::instrument(skip_all, fields(container = %name, network))]
    pub async fn connect_network(
        &self,
        name: &str,
        id: &str,
        network: &str,
        endpoint: EndpointSettings,
    ) -> Result<()> {
        let request = NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(endpoint),
        };
        self.docker
            .connect_network(network, request)
            .await
            .map_err(|err| failure("connecting a network to", name, err))
    }
}

/// 304 and 404 as outcomes; anything else as an error (see [`failure`]).
fn applied(
    op: &'static str,
    name: &str,
    result: std::result::Result<(), bollard::errors::Error>,
) -> Result<Applied> {
    match result {
        Ok(()) => Ok(Applied::Done),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304, ..
        }) => Ok(Applied::AlreadyDone),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(Applied::NoSuchContainer),
        Err(err) => Err(failure(op, name, err)),
    }
}

/// 409 as a conflict (the engine's state is not what the call expects), any other answer as a refusal, and
/// no answer at all as an unreachable engine.
fn failure(op: &'static str, name: &str, err: bollard::errors::Error) -> DockerError {
    let container = name.to_owned();
    match err {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message,
        } => DockerError::Conflict {
            op,
            container,
            message,
        },
        source @ bollard::errors::Error::DockerResponseServerError { .. } => {
            DockerError::CallFailed {
                op,
                container,
                source,
            }
        }
        source => DockerError::EngineUnreachable {
            op,
            container,
            source,
        },
    }
}

/// What an action may rely on, from the pass that planned it.
#[derive(Debug, Clone, Default)]
pub struct ActionContext {
    /// The scope status-api reports. Nothing outside it is touched.
    pub scope: Scope,
    /// The pair's own container ids: never touched.
    pub protected: Vec<String>,
    /// The names in the snapshot: an unexpected container is never one of them.
    pub members: HashSet<String>,
}

/// How an action went, and what there is to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: ActionResult,
    pub detail: Option<String>,
}

impl Outcome {
    fn ok(detail: Option<String>) -> Self {
        Self {
            result: ActionResult::Ok,
            detail,
        }
    }

    fn noop(detail: impl Into<String>) -> Self {
        Self {
            result: ActionResult::Noop,
            detail: Some(detail.into()),
        }
    }

    fn gone() -> Self {
        Self {
            result: ActionResult::Gone,
            detail: Some("no such container any more: the next change decides".into()),
        }
    }

    fn skipped(detail: impl Into<String>) -> Self {
        Self {
            result: ActionResult::Skipped,
            detail: Some(detail.into()),
        }
    }

    fn failed(err: &dyn std::error::Error) -> Self {
        Self {
            result: ActionResult::Failed,
            detail: Some(error_chain(err)),
        }
    }

    fn of(applied: Result<Applied>, already: &str) -> Self {
        match applied {
            Ok(Applied::Done) => Self::ok(None),
            Ok(Applied::AlreadyDone) => Self::noop(already),
            Ok(Applied::NoSuchContainer) => Self::gone(),
            Err(err) => Self::failed(&err),
        }
    }
}

/// What the engine says about a container right before a destructive action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    pub unhealthy: bool,
}

impl Seen {
    pub fn from_inspect(inspect: &ContainerInspectResponse) -> Self {
        let state = inspect.state.as_ref();
        Self {
            id: inspect.id.clone().unwrap_or_default(),
            name: inspect
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            labels: inspect
                .config
                .as_ref()
                .and_then(|config| config.labels.as_ref())
                .map(|labels| labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            running: state.and_then(|state| state.status)
                == Some(ContainerStateStatusEnum::RUNNING),
            unhealthy: state
                .and_then(|state| state.health.as_ref())
                .and_then(|health| health.status)
                == Some(HealthStatusEnum::UNHEALTHY),
        }
    }
}

/// Whether a stop, removal or restart planned as `action` is still right for the container the engine shows
/// now; `Err` is the outcome to report instead.
pub fn recheck(
    action: &Action,
    context: &ActionContext,
    seen: &Seen,
) -> std::result::Result<(), Outcome> {
    if context.protected.contains(&seen.id) {
        return Err(Outcome::skipped(
            "it is one of the pair's own containers: never touched",
        ));
    }
    if seen.name != action.container {
        return Err(Outcome::skipped(format!(
            "it is named {} now, not {}",
            seen.name, action.container
        )));
    }
    if !in_scope(&context.scope, &seen.labels) {
        let scope = context
            .scope
            .as_ref()
            .map_or_else(|| "(the whole host)".to_owned(), ToString::to_string);
        return Err(Outcome::skipped(format!(
            "its labels put it outside the scope {scope}"
        )));
    }
    let policy = Policy::from_labels(&seen.labels);
    if policy != Policy::Heal {
        return Err(Outcome::skipped(format!(
            "its policy is {}",
            policy.as_str()
        )));
    }
    match action.kind {
        ActionKind::Stop | ActionKind::Remove if context.members.contains(&seen.name) => Err(
            Outcome::skipped("it is in the snapshot now, not unexpected"),
        ),
        ActionKind::Stop if !seen.running => Err(Outcome::noop("it is not running any more")),
        ActionKind::Restart if !seen.running => Err(Outcome::skipped(
            "it is not running any more: the next change decides",
        )),
        ActionKind::Restart if !seen.unhealthy => Err(Outcome::noop("it is healthy again")),
        _ => Ok(()),
    }
}

/// Runs actions as tasks: bounded, one per container at a time, drained on shutdown. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    docker: DockerWriter,
    client: StatusClient,
    journal: Journal,
    metrics: Metrics,
    heal_lane: Semaphore,
    cleanup_lane: Semaphore,
    /// Containers with an action under way.
    busy: Mutex<HashSet<String>>,
    /// How many actions are under way, for the drain to wait on.
    in_flight: watch::Sender<usize>,
    /// Set on shutdown: queued actions are not started.
    stopping: AtomicBool,
    /// Told whenever an action ends, so the loop can look again at once.
    finished: Arc<Notify>,
}

/// A container's place in the busy set, released however its action ends (a panic included).
#[derive(Debug)]
struct Claim {
    inner: Arc<Inner>,
    container: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.inner.busy().remove(&self.container);
        self.inner.in_flight.send_modify(|count| *count -= 1);
        self.inner.finished.notify_one();
    }
}

impl Inner {
    fn busy(&self) -> MutexGuard<'_, HashSet<String>> {
        self.busy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Executor {
    pub fn new(
        docker: DockerWriter,
        client: StatusClient,
        journal: Journal,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                docker,
                client,
                journal,
                metrics,
                heal_lane: Semaphore::new(HEAL_CONCURRENCY),
                cleanup_lane: Semaphore::new(CLEANUP_CONCURRENCY),
                busy: Mutex::new(HashSet::new()),
                in_flight: watch::Sender::new(0),
                stopping: AtomicBool::new(false),
                finished: Arc::new(Notify::new()),
            }),
        }
    }

    pub fn docker(&self) -> &DockerWriter {
        &self.inner.docker
    }

    /// Notified whenever an action ends (a permit is kept if nobody is waiting at that moment).
    pub fn finished(&self) -> Arc<Notify> {
        self.inner.finished.clone()
    }

    /// Whether an action on `container` is under way.
    pub fn is_busy(&self, container: &str) -> bool {
        self.inner.busy().contains(container)
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
        Some(tokio::spawn(async move {
            executor.carry_out(claim, action, &context, seen_at).await
        }))
    }

    /// Stops starting queued actions and waits up to `timeout` for those under way; false if some were
    /// still running then.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let mut in_flight = self.inner.in_flight.subscribe();
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
        if !self.inner.busy().insert(container.to_owned()) {
            return None;
        }
        self.inner.in_flight.send_modify(|count| *count += 1);
        Some(Claim {
            inner: self.inner.clone(),
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
        let lane = if action.kind.heals() {
            &self.inner.heal_lane
        } else {
            &self.inner.cleanup_lane
        };
        // The lanes are never closed, so acquiring cannot fail.
        let _permit = lane.acquire().await.ok();
        let time = Utc::now();
        let started = Instant::now();
        let outcome = if self.inner.stopping.load(Ordering::SeqCst) {
            Outcome::skipped("shutting down: not started")
        } else {
            self.apply(&action, context).await
        };
        let elapsed = started.elapsed();

        let metrics = &self.inner.metrics;
        metrics.count_action(action.kind, outcome.result);
        metrics.observe_action(action.kind, elapsed);
        if outcome.result == ActionResult::Ok && action.kind.heals() {
            metrics.observe_heal(seen_at.elapsed());
        }
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
        let (name, id) = (action.container.as_str(), action.id.as_str());
        match action.kind {
            ActionKind::Start => Outcome::of(docker.start(name, id).await, "already running (304)"),
            ActionKind::Unpause => {
                Outcome::of(docker.unpause(name, id).await, "not paused any more")
            }
            ActionKind::Restart => match self.recheck(action, context).await {
                Err(outcome) => outcome,
                Ok(()) => Outcome::of(docker.restart(name, id).await, "already restarted"),
            },
            ActionKind::Stop => match self.recheck(action, context).await {
                Err(outcome) => outcome,
                Ok(()) => Outcome::of(docker.stop(name, id).await, "already stopped (304)"),
            },
            ActionKind::Remove => match self.recheck(action, context).await {
                Err(outcome) => outcome,
                Ok(()) => match docker.stop(name, id).await {
                    Ok(Applied::Done | Applied::AlreadyDone) => {
                        Outcome::of(docker.remove(name, id).await, "already being removed")
                    }
                    Ok(Applied::NoSuchContainer) => Outcome::gone(),
                    Err(err) => Outcome::failed(&err),
                },
            },
            ActionKind::Recreate => self.recreate(action, context).await,
            ActionKind::Report | ActionKind::Wait => Outcome::skipped("nothing to carry out"),
        }
    }

    /// Asks the engine about the container again and applies [`recheck`].
    async fn recheck(
        &self,
        action: &Action,
        context: &ActionContext,
    ) -> std::result::Result<(), Outcome> {
        match self
            .inner
            .docker
            .inspect(&action.container, &action.id)
            .await
        {
            Ok(Some(found)) => recheck(action, context, &Seen::from_inspect(&found)),
            Ok(None) => Err(Outcome::gone()),
            Err(err) => Err(Outcome::failed(&err)),
        }
    }

    /// Reads the spec from status-api, checks it is still ours to recreate, creates, connects, starts. A
    /// container left half made is removed again, so the next attempt starts clean.
    async fn recreate(&self, action: &Action, context: &ActionContext) -> Outcome {
        let name = action.container.as_str();
        let spec = match self.inner.client.spec(name).await {
            Ok(spec) => spec,
            Err(StatusError::NotInSnapshot(_)) => {
                return Outcome::skipped("it is no longer in the snapshot")
            }
            Err(err) => return Outcome::failed(&err),
        };
        let labels = spec.member().labels;
        if !in_scope(&context.scope, &labels) {
            return Outcome::skipped("its snapshot labels put it outside status-api's scope");
        }
        let policy = Policy::from_labels(&labels);
        if policy != Policy::Heal {
            return Outcome::skipped(format!("its policy is {}", policy.as_str()));
        }
        let recreation = match recreation(&spec) {
            Ok(recreation) => recreation,
            Err(err) => return Outcome::failed(&err),
        };

        let docker = &self.inner.docker;
        let id = match docker.create(&recreation).await {
            Ok(id) => id,
            Err(DockerError::Conflict { .. }) => {
                return Outcome::skipped(format!(
                    "a container named {name} exists again: the next change decides"
                ))
            }
            Err(err) => return Outcome::failed(&err),
        };
        for (network, endpoint) in recreation.extra_networks {
            if let Err(err) = docker.connect_network(name, &id, &network, endpoint).await {
                docker.discard(name, &id).await;
                return Outcome::failed(&err);
            }
        }
        match docker.start(name, &id).await {
            Ok(Applied::Done | Applied::AlreadyDone) => {
                Outcome::ok(Some(format!("recreated as {}", &id[..id.len().min(12)])))
            }
            Ok(Applied::NoSuchContainer) => Outcome::gone(),
            Err(err) => {
                docker.discard(name, &id).await;
                Outcome::failed(&err)
            }
        }
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

#[cfg(test)]
mod tests {
    use shared::{ContainerState, DriftKind, POLICY_LABEL};

    use super::*;

    fn action(kind: ActionKind) -> Action {
        Action {
            container: "web".into(),
            id: "a".repeat(64),
            kind,
            drift: Some(DriftKind::Unexpected),
            policy: Policy::Heal,
            state: Some(ContainerState::Running),
            reason: "running from busybox but not in the snapshot".into(),
        }
    }

    fn context() -> ActionContext {
        ActionContext {
            scope: Some("team=a".parse().expect("selector")),
            protected: vec!["f".repeat(64)],
            members: HashSet::from(["db".to_owned()]),
        }
    }

    fn seen() -> Seen {
        Seen {
            id: "a".repeat(64),
            name: "web".into(),
            labels: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
            running: true,
            unhealthy: false,
        }
    }

    fn refused(kind: ActionKind, seen: &Seen) -> Option<Outcome> {
        recheck(&action(kind), &context(), seen).err()
    }

    #[test]
    fn a_container_still_as_planned_may_be_stopped_or_removed() {
        assert_eq!(refused(ActionKind::Stop, &seen()), None);
        assert_eq!(refused(ActionKind::Remove, &seen()), None);
        let stopped = Seen {
            running: false,
            ..seen()
        };
        assert_eq!(
            refused(ActionKind::Remove, &stopped),
            None,
            "removing a stopped one is fine"
        );
        let sick = Seen {
            unhealthy: true,
            ..seen()
        };
        assert_eq!(refused(ActionKind::Restart, &sick), None);
    }

    #[test]
    fn out_of_scope_other_policies_and_renamed_containers_are_refused() {
        let mut outside = seen();
        outside.labels.insert("team".into(), "b".into());
        let mut observed = seen();
        observed
            .labels
            .insert(POLICY_LABEL.into(), "observe".into());
        let mut ignored = seen();
        ignored.labels.insert(POLICY_LABEL.into(), "ignore".into());
        let renamed = Seen {
            name: "web-old".into(),
            ..seen()
        };
        for (case, expected) in [
            (&outside, "outside the scope team=a"),
            (&observed, "policy is observe"),
            (&ignored, "policy is ignore"),
            (&renamed, "named web-old now"),
        ] {
            for kind in [ActionKind::Stop, ActionKind::Remove, ActionKind::Restart] {
                let outcome = refused(kind, case).expect("refused");
                assert_eq!(outcome.result, ActionResult::Skipped);
                let detail = outcome.detail.unwrap_or_default();
                assert!(detail.contains(expected), "{kind}: {detail}");
            }
        }
    }

    #[test]
    fn the_pair_s_own_containers_are_refused_whatever_their_labels() {
        let status_api = Seen {
            id: "f".repeat(64),
            ..seen()
        };
        let outcome = refused(ActionKind::Stop, &status_api).expect("refused");
        assert!(outcome.detail.unwrap_or_default().contains("pair's own"));
    }

    #[test]
    fn a_snapshot_member_is_never_stopped_as_unexpected() {
        let member = Seen {
            name: "db".into(),
            ..seen()
        };
        let mut stop = action(ActionKind::Stop);
        stop.container = "db".into();
        let outcome = recheck(&stop, &context(), &member).expect_err("refused");
        assert!(outcome
            .detail
            .unwrap_or_default()
            .contains("in the snapshot"));
    }

    #[test]
    fn what_already_changed_is_a_noop() {
        let stopped = Seen {
            running: false,
            ..seen()
        };
        assert_eq!(
            refused(ActionKind::Stop, &stopped).map(|o| o.result),
            Some(ActionResult::Noop)
        );
        assert_eq!(
            refused(ActionKind::Restart, &seen()).map(|o| o.result),
            Some(ActionResult::Noop),
            "healthy again"
        );
        assert_eq!(
            refused(ActionKind::Restart, &stopped).map(|o| o.result),
            Some(ActionResult::Skipped)
        );
    }

    #[test]
    fn the_whole_host_scope_takes_any_labels() {
        let context = ActionContext {
            scope: None,
            ..context()
        };
        let unlabelled = Seen {
            labels: BTreeMap::new(),
            ..seen()
        };
        assert_eq!(
            recheck(&action(ActionKind::Stop), &context, &unlabelled),
            Ok(())
        );
    }

    #[test]
    fn seen_reads_the_inspect_answer() {
        let inspect: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "a".repeat(64), "Name": "/web",
            "State": {"Status": "running", "Health": {"Status": "unhealthy"}},
            "Config": {"Labels": {"team": "a"}},
        }))
        .expect("valid inspect");
        let seen = Seen::from_inspect(&inspect);
        assert_eq!(seen.name, "web");
        assert!(seen.running && seen.unhealthy);
        assert_eq!(seen.labels.get("team").map(String::as_str), Some("a"));
    }

    #[test]
    fn status_codes_that_are_outcomes() {
        let server = |status_code| {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code,
                message: "x".into(),
            })
        };
        assert_eq!(applied("start", "web", Ok(())).ok(), Some(Applied::Done));
        assert_eq!(
            applied("start", "web", server(304)).ok(),
            Some(Applied::AlreadyDone)
        );
        assert_eq!(
            applied("start", "web", server(404)).ok(),
            Some(Applied::NoSuchContainer)
        );
        assert!(matches!(
            applied("start", "web", server(409)),
            Err(DockerError::Conflict { .. })
        ));
        assert!(matches!(
            applied("start", "web", server(500)),
            Err(DockerError::CallFailed { .. })
        ));
        let unreachable = applied(
            "start",
            "web",
            Err(bollard::errors::Error::RequestTimeoutError),
        );
        let Err(err @ DockerError::EngineUnreachable { .. }) = unreachable else {
            panic!("{unreachable:?}");
        };
        assert!(err.to_string().contains("could not be reached"), "{err}");
    }
}
