//! Spawning the real server for a test, and talking to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::Value;
use status_api::Settings;
use test_support::{wait_until, StatusApiOptions, StatusApiServer, TestScope};

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
    /// `--allowed-hosts`.
    pub allowed_hosts: Option<String>,
}

/// A running status-api: the shared [`StatusApiServer`] with a client and request helpers.
#[derive(Debug)]
pub struct TestApi {
    pub base: String,
    pub client: reqwest::Client,
    pub state_dir: PathBuf,
    server: StatusApiServer,
}

pub fn settings(scope: &TestScope, state_dir: &Path, token_file: Option<&Path>) -> Settings {
    StatusApiOptions::scoped(scope.scope())
        .settings(state_dir, token_file)
        .expect("valid test settings")
}

/// Starts status-api scoped to `scope` and waits until it is ready.
pub async fn spawn_api(scope: &TestScope, options: Options) -> anyhow::Result<TestApi> {
    let server = StatusApiServer::start(StatusApiOptions {
        state_dir: options.state_dir,
        token: options.token.then(|| TOKEN.to_owned()),
        docker_host: options.docker_host,
        allowed_hosts: options.allowed_hosts,
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    Ok(TestApi {
        base: server.base(),
        client: reqwest::Client::new(),
        state_dir: server.state_dir.clone(),
        server,
    })
}

impl TestApi {
    /// The address it listens on.
    pub fn address(&self) -> std::net::SocketAddr {
        self.server.address
    }

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
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop_within(Duration::from_secs(5)).await
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
