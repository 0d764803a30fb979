//! Start-up and shutdown. [`Application::build`] checks what can be checked before running (the token file,
//! the Docker client settings) and binds the port, so tests and `main` learn the real address first;
//! [`Application::run_until_stopped`] then runs the reconcile loop and the HTTP server until the shutdown
//! future resolves, finishes the action in hand, starts no new one, and returns within 10 s.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::TcpAcceptor;
use tokio::sync::watch;

use crate::api::{app, ApiState};
use crate::config::Settings;
use crate::execute::{DockerError, DockerWriter, Executor};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::plan::PlanSettings;
use crate::reconcile::{ControllerState, LoopSettings, Reconciler};
use crate::status_client::StatusClient;

/// How long HTTP requests in flight get after the shutdown signal.
pub const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What an empty `--token-file` is told to hold.
const EMPTY_TOKEN_HINT: &str =
    "put status-api's token in it (the same file status-api's --token-file reads)";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Token(#[from] shared::runtime::TokenFileError),
    #[error(transparent)]
    Bind(#[from] shared::runtime::BindError),
    #[error("the HTTP server failed")]
    ServeFailed(#[source] std::io::Error),
}

/// A bound, not yet running, status-controller.
pub struct Application {
    acceptor: TcpAcceptor,
    address: SocketAddr,
    reconciler: Reconciler,
    docker: DockerWriter,
    api: ApiState,
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
        if token.is_none() {
            tracing::info!("no --token-file: removed containers will be reported, not recreated");
        }
        let client = StatusClient::new(settings.api_url.clone(), token);
        let docker = DockerWriter::connect(settings.docker_host.as_deref())?;
        let journal = Journal::new();
        let metrics = Metrics::new();
        let state = ControllerState::new();
        let executor = Executor::new(
            docker.clone(),
            client.clone(),
            journal.clone(),
            metrics.clone(),
        );
        let loop_settings = LoopSettings {
            interval: settings.interval,
            dry_run: settings.dry_run,
            plan: plan_settings(settings, client.has_token()),
            limits: settings.limits,
        };
        let reconciler = Reconciler::new(
            client,
            executor,
            state.clone(),
            metrics.clone(),
            journal.clone(),
            loop_settings,
        );

        let (acceptor, address) = shared::runtime::bind_http(settings.listen).await?;
        Ok(Self {
            acceptor,
            address,
            reconciler,
            docker,
            api: ApiState {
                state,
                journal,
                metrics,
            },
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Runs the loop and the HTTP server until `shutdown` resolves.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Agree on the API version now, so the first heal does not pay for it; an action retries if this fails.
        let docker = self.docker.clone();
        tokio::spawn(async move {
            if let Err(err) = docker.negotiate().await {
                tracing::warn!(error = %crate::error_chain(&err), "the Docker engine does not answer yet; actions will retry");
            }
        });
        let reconciler = tokio::spawn(self.reconciler.run(stop_rx.clone()));

        let mut server_stop = stop_rx;
        let server = poem::Server::new_with_acceptor(self.acceptor).run_with_graceful_shutdown(
            app(self.api),
            async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            },
            Some(HTTP_DRAIN_TIMEOUT),
        );
        let mut server = tokio::spawn(server);
        tracing::info!(address = %self.address, "status-controller listening");

        let early_end = tokio::select! {
            () = shutdown => None,
            served = &mut server => Some(served),
        };
        let _ = stop_tx.send(true);
        let served = match early_end {
            Some(served) => served,
            None => server.await,
        };
        if let Err(err) = reconciler.await {
            tracing::error!(error = %err, "the reconcile loop panicked");
        }
        tracing::info!("status-controller stopped");
        match served {
            Ok(result) => result.map_err(StartupError::ServeFailed),
            Err(join) => Err(StartupError::ServeFailed(std::io::Error::other(join))),
        }
    }
}

/// The plan settings `settings` ask for, given whether a token was read.
pub fn plan_settings(settings: &Settings, has_token: bool) -> PlanSettings {
    PlanSettings {
        unexpected: settings.unexpected,
        can_recreate: has_token,
        own_container_id: shared::runtime::own_container_id(),
    }
}

/// The bearer token in `path`, trimmed; an empty file is an error, not "no token".
pub fn read_token(path: &Path) -> Result<Arc<str>, StartupError> {
    Ok(shared::runtime::read_token_file(path, EMPTY_TOKEN_HINT)?)
}
