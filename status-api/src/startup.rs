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

use crate::api::{app, ApiState};
use crate::config::Settings;
use crate::docker::{DockerError, DockerReader};
use crate::inventory::{error_chain, Inventory};
use crate::metrics::Metrics;
use crate::snapshot::{Baseline, SnapshotError, SnapshotFile};

/// How long in-flight requests get to finish after the shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// What an empty `--token-file` is told to hold.
const EMPTY_TOKEN_HINT: &str =
    "put a secret in it, e.g. the output of `head -c 32 /dev/urandom | base64`";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Token(#[from] shared::runtime::TokenFileError),
    #[error(transparent)]
    Bind(#[from] shared::runtime::BindError),
    #[error("the HTTP server failed")]
    ServeFailed(#[source] std::io::Error),
}

/// A bound, not yet running, status-api.
pub struct Application {
    acceptor: TcpAcceptor,
    address: SocketAddr,
    docker: DockerReader,
    inventory: Inventory,
    baseline: Arc<Baseline>,
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
        file.prepare()?;
        let loaded = file.load()?;
        let scope = settings.scope();
        if let Some(snapshot) = &loaded {
            let configured = scope.as_ref().map(ToString::to_string);
            if snapshot.scope != configured {
                tracing::warn!(
                    snapshot_scope = ?snapshot.scope,
                    scope = ?configured,
                    "the snapshot was taken in another scope; drift only considers containers in the current scope"
                );
            }
            tracing::info!(path = %file.path().display(), containers = snapshot.containers.len(), "snapshot loaded");
        }

        let docker = DockerReader::connect(settings.docker_host.as_deref())?;
        let inventory = Inventory::new(scope, settings.resync_interval);
        if let Some(snapshot) = loaded {
            inventory.set_snapshot(snapshot);
        }
        let baseline = Arc::new(Baseline::new(file, docker.clone(), inventory.clone()));

        let (acceptor, address) = shared::runtime::bind_http(settings.listen).await?;
        Ok(Self {
            acceptor,
            address,
            docker,
            inventory,
            baseline,
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
        let watcher = tokio::spawn(
            self.inventory
                .clone()
                .watch(self.docker.clone(), stop_rx.clone()),
        );
        let first_snapshot = tokio::spawn(take_first_snapshot(
            self.baseline.clone(),
            self.inventory.clone(),
            stop_rx.clone(),
        ));

        let state = ApiState {
            inventory: self.inventory,
            baseline: self.baseline,
            metrics: Metrics::new(),
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
    baseline: Arc<Baseline>,
    inventory: Inventory,
    mut stop: watch::Receiver<bool>,
) {
    if inventory.snapshot().is_some() {
        return;
    }
    let mut revisions = inventory.subscribe();
    let mut backoff = Backoff::default();
    loop {
        if inventory.docker_ok() {
            match baseline.take_if_missing().await {
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

fn read_token(path: &Path) -> Result<Arc<str>, StartupError> {
    Ok(shared::runtime::read_token_file(path, EMPTY_TOKEN_HINT)?)
}
