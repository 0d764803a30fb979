//! A real status-controller, started in this process on a free port against a test's status-api and stopped
//! with it (`Application::build` → `address()` → `run_until_stopped`, as `main` does): for tests outside
//! status-controller's own crate that need drift healed as it is in production.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{wait_until, StatusApiServer};

/// How long a controller may take to become ready on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A status-controller running in this process. Dropping it aborts it.
#[derive(Debug)]
pub struct StatusControllerServer {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), status_controller::startup::StartupError>>,
}

impl StatusControllerServer {
    /// Starts a controller against `api` — `--interval 1h`, so every heal is driven by the long poll, and
    /// `api`'s token file when it has one — with `extra` flags (`--docker-host`, `--dry-run`, ...), and waits
    /// until its `/ready` answers 200. It listens on a free loopback port unless `extra` gives `--listen`.
    pub async fn start(api: &StatusApiServer, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_against(&api.base(), api.token_file.as_deref(), extra).await
    }

    /// Starts a controller as [`StatusControllerServer::start`] does, against the status-api at `api_url`
    /// (one running as a process of its own, say) with `token_file` when given.
    pub async fn start_against(
        api_url: &str,
        token_file: Option<&Path>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let token = token_file.map(|path| path.to_string_lossy().into_owned());
        let mut args = vec![
            "status-controller",
            "--api-url",
            api_url,
            "--interval",
            "1h",
        ];
        if !extra.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        if let Some(token) = &token {
            args.extend(["--token-file", token]);
        }
        args.extend_from_slice(extra);
        let settings = status_controller::Settings::try_parse_from(args)?;
        let application = status_controller::Application::build(&settings).await?;
        let address = application.address();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let controller = Self {
            address,
            stop: Some(stop),
            task,
        };
        let ready = controller.url("/ready");
        wait_until("status-controller to be ready", READY_TIMEOUT, || async {
            Ok(reqwest::get(&ready).await?.status().is_success())
        })
        .await?;
        Ok(controller)
    }

    /// `http://<address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops it as SIGTERM would and waits up to 10 s until it has.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let limit = Duration::from_secs(10);
        tokio::time::timeout(limit, &mut self.task)
            .await
            .map_err(|_| anyhow::anyhow!("status-controller did not stop within {limit:?}"))???;
        Ok(())
    }
}

impl Drop for StatusControllerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
