//! Start-up and shutdown. [`Application::build`] checks everything that can be checked before serving
//! (the state directory, the snapshot file, the token) and binds the port, so tests and `main` both learn
//! the real address before anything runs; [`Application::run_until_stopped`] then serves until the
//! shutdown future resolves, and drains within five seconds.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::listener::TcpAcceptor;
use shared::backoff::Backoff;
use tokio::sync::watch;

use shared::error_chain;

use crate::api::{app, ApiState};
use crate::baseline::BaselineKeeper;
use crate::config::Settings;
use crate::docker::{DockerReader, EngineReader};
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::snapshot::{SnapshotError, SnapshotFile};
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
    acceptor: TcpAcceptor,
    address: SocketAddr,
    inventory: Inventory,
    keeper: Arc<BaselineKeeper>,
    metrics: Metrics,
    token: Option<Arc<str>>,
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
        let file = SnapshotFile::new(&settings.state_dir());
        file.prepare().map_err(StartupError::Program)?;
        let loaded = file.load().map_err(StartupError::Program)?;
        let scope = settings.scope();
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
        let metrics = Metrics::new();
        let inventory = Inventory::new(writer, docker).reporting_to(&metrics);

        let (acceptor, address) = shared::runtime::http::bind_http(settings.listen).await?;
        Ok(Self {
            acceptor,
            address,
            inventory,
            keeper,
            metrics,
            token,
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
        let first_snapshot = tokio::spawn(take_first_snapshot(
            self.keeper.clone(),
            store.clone(),
            stop_rx.clone(),
        ));

        let state = ApiState {
            store,
            keeper: self.keeper,
            metrics: self.metrics,
            token: self.token,
            shutdown: stop_rx,
        };
        tracing::info!(address = %self.address, "status-api listening");
        let signal = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let served = poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app(state), signal, Some(DRAIN_TIMEOUT))
            .await;
        watcher.abort();
        first_snapshot.abort();
        tracing::info!("status-api stopped");
        served.map_err(StartupError::ServeFailed)
    }
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
                Ok(_) => return,
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
    let Some(snapshot) = SnapshotFile::new(&settings.state_dir()).load()? else {
        return Ok(StoredScope::NoSnapshot);
    };
    let baseline = crate::baseline::Baseline::new(snapshot);
    Ok(StoredScope::Taken {
        scope: baseline.scope().map(ToOwned::to_owned),
        mismatch: scope_mismatch(Some(&baseline), &settings.scope()),
    })
}

fn read_token(path: &Path) -> Result<Arc<str>, StartupError> {
    Ok(shared::runtime::token::read_token_file(
        path,
        EMPTY_TOKEN_HINT,
    )?)
}
