//! Spawning the real server for a test, and talking to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use reqwest::StatusCode;
use serde_json::Value;
use status_api::{Application, Settings};
use tempfile::TempDir;
use test_support::{wait_until, TestScope};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TOKEN: &str = "s3cret-token-for-tests";

/// How the server under test is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Configure a token file holding [`TOKEN`].
    pub token: bool,
    /// Reuse this state directory (to prove restarts), else a fresh one.
    pub state_dir: Option<PathBuf>,
    /// Reach the engine here instead of the local socket.
    pub docker_host: Option<String>,
}

/// A running status-api.
#[derive(Debug)]
pub struct TestApi {
    pub base: String,
    pub client: reqwest::Client,
    pub state_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Keeps temporary directories alive as long as the server.
    _dirs: Vec<TempDir>,
}

pub fn settings(scope: &TestScope, state_dir: &Path, token_file: Option<&Path>) -> Settings {
    settings_with(scope, state_dir, token_file, None)
}

pub fn settings_with(
    scope: &TestScope,
    state_dir: &Path,
    token_file: Option<&Path>,
    docker_host: Option<&str>,
) -> Settings {
    let state_dir = state_dir.to_string_lossy().into_owned();
    let scope = scope.scope();
    let mut args = vec![
        "status-api",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        &state_dir,
        "--scope",
        &scope,
        "--resync-interval",
        "1h",
    ];
    let token_file = token_file.map(|path| path.to_string_lossy().into_owned());
    if let Some(path) = &token_file {
        args.extend(["--token-file", path]);
    }
    if let Some(host) = docker_host {
        args.extend(["--docker-host", host]);
    }
    Settings::parse_from(args)
}

/// Starts status-api scoped to `scope` and waits until it is ready.
pub async fn spawn_api(scope: &TestScope, options: Options) -> anyhow::Result<TestApi> {
    let mut dirs = Vec::new();
    let state_dir = match options.state_dir {
        Some(dir) => dir,
        None => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("state");
            dirs.push(dir);
            path
        }
    };
    let token_file = if options.token {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n"))?;
        dirs.push(dir);
        Some(path)
    } else {
        None
    };
    let settings = settings_with(
        scope,
        &state_dir,
        token_file.as_deref(),
        options.docker_host.as_deref(),
    );
    let application = Application::build(&settings)
        .await
        .context("status-api builds")?;
    let base = format!("http://{}", application.address());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        application
            .run_until_stopped(async move {
                let _ = stopped.await;
            })
            .await
            .map_err(anyhow::Error::from)
    });
    let api = TestApi {
        base,
        client: reqwest::Client::new(),
        state_dir,
        stop: Some(stop),
        server: Some(server),
        _dirs: dirs,
    };
    api.wait_ready().await?;
    Ok(api)
}

impl TestApi {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET `path`, answering the status and the body as JSON (or a JSON string when it is not JSON).
    pub async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.client.get(self.url(path)).send().await?;
        answer(response).await
    }

    pub async fn get_ok(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.get(path).await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET {path} answered {status}: {body}"
        );
        Ok(body)
    }

    pub async fn text(&self, path: &str) -> anyhow::Result<(StatusCode, String)> {
        let response = self.client.get(self.url(path)).send().await?;
        Ok((response.status(), response.text().await?))
    }

    pub async fn revision(&self) -> anyhow::Result<u64> {
        let body = self.get_ok("/status").await?;
        body["revision"].as_u64().context("revision is a number")
    }

    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        wait_until(
            "status-api to be ready",
            Duration::from_secs(20),
            || async { Ok(self.get("/ready").await?.0 == StatusCode::OK) },
        )
        .await?;
        Ok(())
    }

    /// Waits until `/drift` has an item of `kind` for `name`, answering how long that took.
    pub async fn wait_for_drift(
        &self,
        name: &str,
        kind: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        wait_until(&format!("{kind} drift of {name}"), timeout, || async {
            let drift = self.get_ok("/drift").await?;
            Ok(drift_kinds(&drift, name).contains(&kind.to_owned()))
        })
        .await
    }

    /// Stops the server as SIGTERM would, and waits for it to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .context("status-api stops within 5 s")???;
        }
        Ok(())
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

pub async fn answer(response: reqwest::Response) -> anyhow::Result<(StatusCode, Value)> {
    let status = response.status();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

/// The kinds of drift reported for `name`.
pub fn drift_kinds(drift: &Value, name: &str) -> Vec<String> {
    drift["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["name"] == name)
        .filter_map(|item| item["kind"].as_str().map(ToOwned::to_owned))
        .collect()
}

/// The container of `name` in a `/status` answer.
pub fn find<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["containers"]
        .as_array()?
        .iter()
        .find(|container| container["name"] == name)
}

/// Asserts that a body is the JSON error shape `{error, message}` with a useful message.
pub fn assert_error_shape(body: &Value, context: &str) {
    assert!(
        body["error"].is_string(),
        "{context}: no `error` code in {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.len() > 20,
        "{context}: message too thin to act on: {body}"
    );
}
