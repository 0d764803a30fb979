//! Start-up and shutdown. [`Application::build`] is the one way in: it checks what can be checked before
//! running (the token file, the Docker client settings, the state directory — checked and locked — with the
//! maintenance hold and the action journal it keeps) and binds the port, so tests and `main` learn the real
//! address first; [`Application::run_until_stopped`] then runs the reconcile loop and the HTTP server until
//! the shutdown future resolves, finishes the action in hand, starts no new one, and returns within 10 s.
//! Tests that need a crash loop to end sooner build with [`Application::build_with_limits`], the same way.
//! [`Components`] are the parts `build` wires together; `--once` runs over them without a loop or a port,
//! so `main` builds them the same way for it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shared::runtime::connections::ConnectionLimits;
use shared::runtime::hosts::HostCheck;
use shared::runtime::http::HttpAcceptor;
use shared::runtime::own_container::OwnContainer;
use shared::runtime::secret::Secret;
use tokio::sync::watch;

use crate::backoff::HealLimits;
use crate::clock::{Clock, SystemClock};
use crate::config::{Settings, ALLOWED_HOSTS_ENV};
use crate::cors::ReadOnlyCors;
use crate::docker::{DockerWriter, EngineWriter};
use crate::executor::Executor;
use crate::hold_file::HoldFile;
use crate::journal::Journal;
use crate::maintenance::{Ended, HoldChange, HoldMetrics, Maintenance};
use crate::metrics::Metrics;
use crate::notify::sender::local_host_name;
use crate::notify::{Delivery, NotificationCounter, Notifications, Notifier, FLUSH_TIMEOUT};
use crate::plan::PlanSettings;
use crate::reconcile::{LoopSettings, Reconciler, Wiring};
use crate::server::{app, ServerState};
use crate::state::ControllerState;
use crate::state_dir::{ControllerDir, ControllerDirError};
use crate::status_client::StatusClient;

/// How long HTTP requests in flight get after the shutdown signal.
pub const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Why status-controller could not start: the shared shape, plus its state directory (`--state-dir`).
pub type StartupError = shared::runtime::startup::StartupError<ControllerDirError>;

/// What an empty `--token-file` is told to hold.
const EMPTY_TOKEN_HINT: &str =
    "put status-api's token in it (the same file status-api's --token-file reads)";

/// The controller's parts, not yet running: built one way, from the settings, for the loop
/// ([`Application::build`]) and for `--once` (which `main` hands them to).
#[derive(Debug, Clone)]
pub struct Components {
    /// The bearer token from `--token-file`: status-api's, and the one `POST /hold` and `DELETE /hold` take.
    pub token: Option<Secret>,
    pub client: StatusClient,
    pub docker: DockerWriter,
    pub executor: Executor<DockerWriter, StatusClient>,
    pub journal: Journal,
    pub metrics: Metrics,
    /// The maintenance hold, as `--state-dir` left it: the loop and `--once` alike dispatch nothing while
    /// it lasts.
    pub maintenance: Maintenance,
    pub plan: PlanSettings,
    /// `--state-dir`, checked; for the loop also locked, until the last clone of this is dropped.
    pub state_dir: Option<Arc<ControllerDir>>,
}

impl Components {
    /// Reads the token file (if any), checks `--state-dir` (and, for the loop, locks it) and reads the
    /// maintenance hold and the action journal kept there, and sets up the clients; makes no request yet.
    /// `--once` only reads the hold: it takes no lock (a controller may be running beside it) and keeps no
    /// journal file (its table is its record).
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let token = settings.token_file.as_deref().map(read_token).transpose()?;
        let client = StatusClient::new(settings.api_url.clone(), token.clone());
        let docker = DockerWriter::connect(settings.docker_host.as_deref())?;
        let metrics = Metrics::new();
        let state_dir = open_state_dir(settings)
            .map_err(StartupError::Program)?
            .map(Arc::new);
        let journal = match &state_dir {
            Some(dir) if dir.holds_lock() => Journal::kept_in(dir, metrics.journal_problems()),
            _ => Journal::new(),
        };
        let maintenance = start_maintenance(state_dir.as_deref(), &metrics);
        let executor = Executor::new(
            docker.clone(),
            client.clone(),
            journal.clone(),
            metrics.clone(),
            maintenance.clone(),
        );
        let own = OwnContainer::detect();
        OwnContainer::log(own.as_ref());
        let plan = PlanSettings {
            unexpected: settings.unexpected,
            can_recreate: client.has_token(),
            own_container_id: own.as_ref().map(|own| own.id.clone()),
            own_network_owner: own.and_then(|own| own.network_owner),
        };
        Ok(Self {
            token,
            client,
            docker,
            executor,
            journal,
            metrics,
            maintenance,
            plan,
            state_dir,
        })
    }
}

/// `--state-dir`, checked: taken (created when missing, locked) for the loop, only inspected for `--once`
/// (which finds no hold in a directory that does not exist yet).
fn open_state_dir(settings: &Settings) -> Result<Option<ControllerDir>, ControllerDirError> {
    let Some(path) = settings.state_dir.as_deref() else {
        return Ok(None);
    };
    if !settings.once {
        return ControllerDir::take(path).map(Some);
    }
    match ControllerDir::inspect(path) {
        Err(ControllerDirError::InspectFailed { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        inspected => inspected.map(Some),
    }
}

/// The bearer token in `path`, trimmed; an empty file is an error, not "no token".
pub fn read_token(path: &Path) -> Result<Secret, StartupError> {
    Ok(shared::runtime::token::read_token_file(
        path,
        EMPTY_TOKEN_HINT,
    )?)
}

/// Notifies the operator's hold as it is set, ended by `DELETE /hold` or runs out.
fn tell_maintenance(maintenance: &Maintenance, notifier: Notifier) {
    maintenance.on_change(move |change| match change {
        HoldChange::Set { hold, .. } => {
            notifier.maintenance_hold_set(&format!("{} (by {})", hold.reason, hold.by), hold.until);
        }
        HoldChange::Ended { ended, by } => {
            let reason = match ended {
                Ended::Hold(hold) => hold.reason.clone(),
                Ended::DamagedFile(problem) => format!("a damaged hold file: {problem}"),
            };
            notifier.maintenance_hold_ended(&reason, &format!("lifted by DELETE /hold (by {by})"));
        }
        HoldChange::Expired { hold } => notifier.maintenance_hold_ended(&hold.reason, "expired"),
    });
}

/// The maintenance hold as `--state-dir` left it (free without one).
fn start_maintenance(state_dir: Option<&ControllerDir>, metrics: &Metrics) -> Maintenance {
    let (set, until) = metrics.maintenance();
    Maintenance::start(
        state_dir.map(|dir| HoldFile::in_dir(dir.path(), dir.user())),
        HoldMetrics { set, until },
        SystemClock.utc(),
    )
}

/// A bound, not yet running, status-controller.
pub struct Application {
    acceptor: HttpAcceptor,
    address: SocketAddr,
    reconciler: Reconciler<StatusClient, Executor<DockerWriter, StatusClient>, SystemClock>,
    docker: DockerWriter,
    server: ServerState,
    notifications: Notifications,
    /// Holds the state directory's lock while the application runs.
    state_dir: Option<Arc<ControllerDir>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Builds the controller `settings` describe, with the product's crash-loop backoff and quarantine
    /// ([`HealLimits::default`]), and binds its port.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        Self::build_with_limits(settings, HealLimits::default()).await
    }

    /// [`Self::build`] with other crash-loop limits than the product's: they are no flag, because the
    /// defaults are the product, but a test may tighten them to see a quarantine in seconds.
    pub async fn build_with_limits(
        settings: &Settings,
        limits: HealLimits,
    ) -> Result<Self, StartupError> {
        let components = Components::build(settings)?;
        if !components.client.has_token() {
            tracing::info!("no --token-file: removed containers will be reported, not recreated, and POST /hold is refused");
        }
        if components.state_dir.is_none() {
            tracing::info!(
                "no --state-dir: the action journal (/actions) and a maintenance hold (POST /hold) are kept in \
                 memory only and end when status-controller restarts"
            );
        }
        let maintenance = components.maintenance;
        let state = ControllerState::new();
        let server = ServerState {
            state: state.clone(),
            journal: components.journal.clone(),
            metrics: components.metrics.clone(),
            maintenance: maintenance.clone(),
            token: components.token.clone(),
            hosts: HostCheck::new(settings.allowed_hosts(), ALLOWED_HOSTS_ENV),
            cors: ReadOnlyCors::new(settings.cors_origins()),
        };
        let docker = components.docker.clone();
        let (notifier, notifications) = Notifications::start(
            settings.notify_targets(),
            settings.notify_options(),
            Delivery::default(),
            NotificationCounter::new(components.metrics.notifications()),
            async move {
                docker
                    .host_name(Duration::from_secs(10))
                    .await
                    .unwrap_or_else(local_host_name)
            },
        );
        tell_maintenance(&maintenance, notifier.clone());
        let loop_settings = LoopSettings {
            scope: settings.scope(),
            interval: settings.interval,
            dry_run: settings.dry_run,
            plan: components.plan,
            limits,
        };
        let reconciler = Reconciler::new(
            Wiring {
                source: components.client,
                executor: components.executor,
                state,
                metrics: components.metrics,
                journal: components.journal,
                notifier,
                maintenance,
                clock: SystemClock,
            },
            loop_settings,
        );

        let (acceptor, address) = shared::runtime::http::bind_http(
            settings.listen,
            ConnectionLimits::new(settings.max_connections),
        )
        .await?;
        Ok(Self {
            acceptor,
            address,
            reconciler,
            docker: components.docker,
            server,
            notifications,
            state_dir: components.state_dir,
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
        let server = shared::runtime::serve::serve(
            self.acceptor,
            app(self.server),
            async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            },
            HTTP_DRAIN_TIMEOUT,
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
        self.notifications.finish(FLUSH_TIMEOUT).await;
        // Lets go of the state directory's lock: a controller started next may take it at once.
        drop(self.state_dir);
        tracing::info!("status-controller stopped");
        match served {
            Ok(result) => result.map_err(StartupError::ServeFailed),
            Err(join) => Err(StartupError::ServeFailed(std::io::Error::other(join))),
        }
    }
}
