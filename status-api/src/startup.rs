//! Start-up and shutdown. [`Application::build`] checks everything that can be checked before serving
//! (the state directory, the snapshot file, the token) and binds the port, so tests and `main` both learn
//! the real address before anything runs; [`Application::run_until_stopped`] then serves until the
//! shutdown future resolves, and drains within five seconds. A status-api whose state directory is locked by
//! another one serves too, not ready, and takes the baseline over when the lock is let go.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::backoff::Backoff;
use shared::runtime::connections::ConnectionLimits;
use shared::runtime::hosts::HostCheck;
use shared::runtime::http::HttpAcceptor;
use shared::runtime::origin::BaseUrl;
use shared::runtime::secret::Secret;
use tokio::sync::{oneshot, watch};

use shared::error_chain;

use crate::api::{app, ApiState, FilterWorkers};
use crate::baseline::{BaselineKeeper, SnapshotError, SnapshotFile};
use crate::config::{Settings, ALLOWED_HOSTS_ENV};
use crate::docker::{DockerReader, EngineReader};
use crate::image_tags::ImageTagWatch;
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::snapshot::Member;
use crate::state_dir::{Access, StateDir, StateDirError};
use crate::store::{Store, Writer};
use crate::view::scope_mismatch;

/// How long in-flight requests get to finish after the shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// What an empty `--token-file` is told to hold.
const EMPTY_TOKEN_HINT: &str =
    "put a secret in it, e.g. the output of `head -c 32 /dev/urandom | base64`";

/// Why status-api could not start: the shared shape, plus what only status-api checks (its state directory
/// and snapshot file).
pub type StartupError = shared::runtime::startup::StartupError<SnapshotError>;

/// A bound, not yet running, status-api.
pub struct Application {
    acceptor: HttpAcceptor,
    address: SocketAddr,
    inventory: Inventory,
    image_tags: ImageTagWatch,
    keeper: Arc<BaselineKeeper>,
    state_dir: Arc<StateDir>,
    metrics: Metrics,
    token: Option<Secret>,
    hosts: HostCheck,
    /// `--controller-url`: the controller the live page shows.
    controller_url: Option<BaseUrl>,
    /// On a first start, the members the inventory's first re-list reads for the first snapshot.
    first_members: Option<oneshot::Receiver<Vec<Member>>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let token = settings.token_file.as_deref().map(read_token).transpose()?;
        let program = |err: SnapshotError| StartupError::Program(err);
        let state_dir =
            Arc::new(StateDir::prepare(&settings.state_dir()).map_err(|err| program(err.into()))?);
        let access = state_dir.try_lock().map_err(|err| program(err.into()))?;
        let file = SnapshotFile::new(state_dir.clone());
        // Read even when another status-api holds the lock: a file this build cannot use stops start-up now,
        // not at the takeover.
        let loaded = file.load().map_err(program)?;
        let scope = settings.scope();
        // A first start: the first snapshot is taken from the inspects that fill the view.
        let first_start = matches!(access, Access::Held { .. }) && loaded.is_none();
        let loaded = match access {
            Access::ReadOnly { uid, .. } if loaded.is_none() => {
                return Err(program(
                    StateDirError::ReadOnlyAndEmpty {
                        path: state_dir.path().to_path_buf(),
                        uid,
                    }
                    .into(),
                ))
            }
            Access::ReadOnly { .. } | Access::Held { .. } => loaded,
            Access::Locked { lock, holder } => {
                tracing::warn!(lock = %lock.display(), holder, "another status-api holds the state directory: waiting, not ready, until it exits");
                None
            }
        };
        if let Some(snapshot) = &loaded {
            tracing::info!(path = %file.path().display(), containers = snapshot.containers.len(), "snapshot loaded");
        }

        let docker: Arc<dyn EngineReader> =
            Arc::new(DockerReader::connect(settings.docker_host.as_deref())?);
        let keeper = Arc::new(BaselineKeeper::new(
            file,
            docker.clone(),
            scope.clone(),
            loaded,
        ));
        if let Some(mismatch) = scope_mismatch(keeper.current().as_deref(), &scope) {
            tracing::error!(
                snapshot_scope = keeper
                    .current()
                    .and_then(|b| b.scope().map(ToOwned::to_owned)),
                scope = scope.as_ref().map(ToString::to_string),
                "not ready: {mismatch}"
            );
        }
        let writer = Writer::new(scope, settings.resync_interval, keeper.subscribe());
        writer.follow_state_dir(state_dir.subscribe());
        let metrics = Metrics::new().with_container_series(settings.container_metrics);
        let image_tags = ImageTagWatch::new(
            docker.clone(),
            writer.image_tags(),
            settings.resync_interval,
        );
        let mut inventory = Inventory::new(writer, docker).reporting_to(&metrics);
        let mut first_members = None;
        if first_start {
            let (members, received) = oneshot::channel();
            inventory = inventory.recording_first_snapshot(members);
            first_members = Some(received);
        }

        let (acceptor, address) = shared::runtime::http::bind_http(
            settings.listen,
            ConnectionLimits::new(settings.max_connections),
        )
        .await?;
        Ok(Self {
            acceptor,
            address,
            inventory,
            image_tags,
            keeper,
            state_dir,
            metrics,
            token,
            hosts: HostCheck::new(settings.allowed_hosts(), ALLOWED_HOSTS_ENV),
            controller_url: settings.controller_url(),
            first_members,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves: follows the engine, takes the first snapshot when there is none,
    /// and answers HTTP. On shutdown, long polls answer at once and in-flight requests get [`DRAIN_TIMEOUT`].
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let store = self.inventory.store();
        let watcher = tokio::spawn(self.inventory.watch(stop_rx.clone()));
        let tag_watch = tokio::spawn(self.image_tags.watch(stop_rx.clone()));
        // Set when the state directory, taken over from another status-api, cannot be used: serving stops.
        let fatal = Arc::new(Mutex::new(None));
        let first_snapshot = tokio::spawn(keep_state(
            self.state_dir.clone(),
            self.keeper.clone(),
            (store.clone(), self.first_members),
            stop_rx.clone(),
            (stop_tx.clone(), fatal.clone()),
        ));

        let state = ApiState {
            store,
            keeper: self.keeper,
            metrics: self.metrics,
            token: self.token,
            shutdown: stop_rx.clone(),
            workers: FilterWorkers::for_this_machine(),
            hosts: self.hosts,
            controller_url: self.controller_url,
        };
        tracing::info!(address = %self.address, "status-api listening");
        let mut stopping = stop_rx.clone();
        let signal = async move {
            tokio::select! {
                () = shutdown => {}
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            let _ = stop_tx.send(true);
        };
        let served =
            shared::runtime::serve::serve(self.acceptor, app(state), signal, DRAIN_TIMEOUT).await;
        watcher.abort();
        tag_watch.abort();
        first_snapshot.abort();
        // Let a waiting status-api take over now, not when the last request handle goes away.
        self.state_dir.release();
        tracing::info!("status-api stopped");
        if let Some(err) = fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(StartupError::Program(err));
        }
        served.map_err(StartupError::ServeFailed)
    }
}

/// The state directory's side of serving: when another status-api holds the lock, wait for it, then load what
/// it left; then take the first snapshot if there is none (from `first_members` when the inventory reads
/// them). A file that cannot be used after a takeover stops the server with the reason, as it would have
/// stopped start-up.
async fn keep_state(
    state_dir: Arc<StateDir>,
    keeper: Arc<BaselineKeeper>,
    (store, first_members): (Store, Option<oneshot::Receiver<Vec<Member>>>),
    mut stop: watch::Receiver<bool>,
    (stop_tx, fatal): (watch::Sender<bool>, Arc<Mutex<Option<SnapshotError>>>),
) {
    if matches!(state_dir.access(), Access::Locked { .. }) {
        let taken_over = async {
            state_dir.wait_for_lock().await?;
            tracing::info!(path = %state_dir.path().display(), "the other status-api let go of the state directory: taking over");
            keeper.load().await
        };
        let outcome = tokio::select! {
            outcome = taken_over => outcome,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        if let Err(err) = outcome {
            tracing::error!(error = %error_chain(&err), "cannot take the state directory over: stopping");
            *fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
            let _ = stop_tx.send(true);
            return;
        }
    }
    if let Some(first_members) = first_members {
        if keep_first(&keeper, first_members, &mut stop).await {
            return;
        }
    }
    take_first_snapshot(keeper, store, stop).await;
}

/// Takes the first snapshot from the members the inventory's first re-list reads; whether that is done
/// (or status-api stops). Not done when the inventory could not read every container or the file could not
/// be written: the first snapshot is then taken with inspects of its own ([`take_first_snapshot`]).
async fn keep_first(
    keeper: &BaselineKeeper,
    first_members: oneshot::Receiver<Vec<Member>>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let members = tokio::select! {
        members = first_members => members,
        _ = stop.wait_for(|stop| *stop) => return true,
    };
    let Ok(members) = members else {
        return false;
    };
    match keeper.keep_first(members).await {
        Ok(_) => {
            released();
            true
        }
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "cannot take the first snapshot");
            false
        }
    }
}

/// Hands the memory the first snapshot used back to the system, once: its members are made one inspect answer
/// at a time, but the answers, the specs and the file's text leave the heap holey, and glibc returns such
/// memory by itself only from the heap's top ([`shared::runtime::process::release_free_memory`]). Measured at
/// 20,000 containers (the synthetic bench's engine, the re-list's own trim kept, this one skipped through an
/// `LD_PRELOAD`ed `malloc_trim`): 183–186 MB resident at the first ready without it, 169–170 MB with it.
fn released() {
    shared::runtime::process::release_free_memory();
}

/// Waits for the engine, then takes the first snapshot if none was loaded; retries with backoff.
async fn take_first_snapshot(
    keeper: Arc<BaselineKeeper>,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    if keeper.current().is_some() {
        return;
    }
    let mut revisions = store.subscribe();
    let mut backoff = Backoff::default();
    loop {
        if store.engine_reachable() {
            match keeper.take_if_missing().await {
                Ok(_) => return released(),
                Err(err) => {
                    let delay = backoff.fail(Instant::now(), rand::random::<f64>());
                    tracing::error!(error = %error_chain(&err), retry_in = ?delay, "cannot take the first snapshot");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        _ = stop.wait_for(|stop| *stop) => return,
                    }
                }
            }
        }
        tokio::select! {
            changed = revisions.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// What `status-api baseline-scope` found in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredScope {
    /// No snapshot yet: the first one will be taken in whatever scope status-api starts with.
    NoSnapshot,
    /// A snapshot taken in `scope` (normalised; `None` for the whole host), and, when that is not the
    /// configured scope, the sentence `/ready` would give.
    Taken {
        scope: Option<String>,
        mismatch: Option<String>,
    },
}

/// Reads the snapshot stored under `--state-dir` (and nothing else: no engine, no port, no write) and compares
/// its scope with `--scope`.
pub fn stored_scope(settings: &Settings) -> Result<StoredScope, SnapshotError> {
    let state_dir = settings.state_dir();
    if !state_dir.exists() {
        return Ok(StoredScope::NoSnapshot);
    }
    let state_dir = Arc::new(StateDir::existing(&state_dir)?);
    let Some(snapshot) = SnapshotFile::new(state_dir).load()? else {
        return Ok(StoredScope::NoSnapshot);
    };
    let baseline = crate::baseline::Baseline::new(snapshot);
    Ok(StoredScope::Taken {
        scope: baseline.scope().map(ToOwned::to_owned),
        mismatch: scope_mismatch(Some(&baseline), &settings.scope()),
    })
}

fn read_token(path: &Path) -> Result<Secret, StartupError> {
    Ok(shared::runtime::token::read_token_file(
        path,
        EMPTY_TOKEN_HINT,
    )?)
}
