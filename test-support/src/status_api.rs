//! A real status-api, started in this process on a free port for a test, and stopped with it: the one way
//! both status-api's and status-controller's tests start it (`Application::build` → `address()` →
//! `run_until_stopped`, as `main` does).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::wait_until;

/// How a test's status-api is started. Always `--resync-interval 1h`, so whatever a test sees was driven by
/// the event stream, never by a timer.
#[derive(Debug, Clone)]
pub struct StatusApiOptions {
    /// `--scope`, e.g. [`TestScope::scope`](crate::TestScope::scope).
    pub scope: String,
    /// `--listen`; port 0 picks a free port.
    pub listen: String,
    /// `--state-dir`; a fresh temporary one when `None`.
    pub state_dir: Option<PathBuf>,
    /// `--token-file`: this file, when given.
    pub token_file: Option<PathBuf>,
    /// Write this token to a temporary file and pass it as `--token-file` (ignored when `token_file` is set).
    pub token: Option<String>,
    /// `--docker-host`.
    pub docker_host: Option<String>,
    /// `--allowed-hosts`: the host names it answers to besides IP addresses and localhost.
    pub allowed_hosts: Option<String>,
    /// `--controller-url`: the controller its live page shows.
    pub controller_url: Option<String>,
}

impl StatusApiOptions {
    /// Scoped to `scope`, on a free loopback port, everything else fresh or default.
    pub fn scoped(scope: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            listen: "127.0.0.1:0".into(),
            state_dir: None,
            token_file: None,
            token: None,
            docker_host: None,
            allowed_hosts: None,
            controller_url: None,
        }
    }

    /// The settings these options stand for, over `state_dir` and `token_file`.
    pub fn settings(
        &self,
        state_dir: &Path,
        token_file: Option<&Path>,
    ) -> anyhow::Result<status_api::Settings> {
        let state_dir = state_dir.to_string_lossy().into_owned();
        let mut args = vec![
            "status-api",
            "--listen",
            &self.listen,
            "--state-dir",
            &state_dir,
            "--scope",
            &self.scope,
            "--resync-interval",
            "1h",
        ];
        let token_file = token_file.map(|path| path.to_string_lossy().into_owned());
        if let Some(path) = &token_file {
            args.extend(["--token-file", path]);
        }
        if let Some(host) = &self.docker_host {
            args.extend(["--docker-host", host]);
        }
        if let Some(hosts) = &self.allowed_hosts {
            args.extend(["--allowed-hosts", hosts]);
        }
        if let Some(url) = &self.controller_url {
            args.extend(["--controller-url", url]);
        }
        Ok(status_api::Settings::try_parse_from(args)?)
    }
}

/// A status-api running in this process. Dropping it aborts it; [`StatusApiServer::stop`] stops it as
/// SIGTERM would.
#[derive(Debug)]
pub struct StatusApiServer {
    pub address: SocketAddr,
    /// Its `--state-dir`.
    pub state_dir: PathBuf,
    /// Its `--token-file`, when it has one.
    pub token_file: Option<PathBuf>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), status_api::startup::StartupError>>>,
    /// Temporary directories made for it; removed with it.
    _dirs: Vec<TempDir>,
}

impl StatusApiServer {
    /// Starts status-api with `options` and waits until its `/ready` answers 200 (snapshot taken or loaded).
    pub async fn start(options: StatusApiOptions) -> anyhow::Result<Self> {
        let server = Self::launch(options).await?;
        server.wait_ready().await?;
        Ok(server)
    }

    /// Starts status-api with `options` and returns once it listens, ready or not: for tests of a
    /// status-api that must not become ready.
    pub async fn launch(options: StatusApiOptions) -> anyhow::Result<Self> {
        let mut dirs = Vec::new();
        let state_dir = match &options.state_dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("state");
                dirs.push(dir);
                path
            }
        };
        let token_file = match (&options.token_file, &options.token) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(token)) => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("token");
                std::fs::write(&path, format!("{token}\n"))?;
                dirs.push(dir);
                Some(path)
            }
            (None, None) => None,
        };
        let settings = options.settings(&state_dir, token_file.as_deref())?;
        let application = status_api::Application::build(&settings)
            .await
            .context("status-api builds")?;
        let address = application.address();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            address,
            state_dir,
            token_file,
            stop: Some(stop),
            task: Some(task),
            _dirs: dirs,
        })
    }

    /// `http://<address>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let ready = format!("{}/ready", self.base());
        wait_until(
            "status-api to be ready",
            Duration::from_secs(20),
            || async { Ok(reqwest::get(&ready).await?.status().is_success()) },
        )
        .await?;
        Ok(())
    }

    /// Stops it as SIGTERM would and waits up to 10 s until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_within(Duration::from_secs(10)).await
    }

    /// Stops it as SIGTERM would; an error if it has not stopped within `limit`.
    pub async fn stop_within(mut self, limit: Duration) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(limit, task)
                .await
                .with_context(|| format!("status-api did not stop within {limit:?}"))???;
        }
        Ok(())
    }
}

impl Drop for StatusApiServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
