//! The status-api binary as its own process, for tests that need what only a process has: a pid another
//! instance can name, another user to run as, and `kill -9`. Shared by the api tests and `faults.rs`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::Value;
use test_support::wait_until;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How the binary is started.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    pub state_dir: &'a Path,
    /// `--scope`, e.g. `TestScope::scope`.
    pub scope: &'a str,
    pub token_file: Option<&'a Path>,
    /// Run as this uid and gid instead of the test's own (needs root).
    pub run_as: Option<(u32, u32)>,
}

/// A running status-api process, killed when dropped.
#[derive(Debug)]
pub struct StatusApiProcess {
    child: tokio::process::Child,
    pub base: String,
    pub pid: u32,
    pub client: reqwest::Client,
}

impl StatusApiProcess {
    /// Starts the binary and returns once it listens (ready or not); an error with its exit status if it
    /// stops before.
    pub async fn start(launch: Launch<'_>) -> anyhow::Result<Self> {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_status-api"));
        command
            .args(["--listen", "127.0.0.1:0", "--resync-interval", "1h"])
            .args(["--scope", launch.scope, "--log-format", "json"])
            .arg("--state-dir")
            .arg(launch.state_dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(token) = launch.token_file {
            command.arg("--token-file").arg(token);
        }
        if let Some((uid, gid)) = launch.run_as {
            command.uid(uid).gid(gid);
        }
        let mut child = command.spawn().context("spawning status-api")?;
        let pid = child.id().context("no pid")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(line) = lines.next_line().await? {
                let event: Value = serde_json::from_str(&line).unwrap_or_default();
                if let Some(address) = event["address"].as_str() {
                    return Ok(address.to_owned());
                }
            }
            anyhow::bail!("status-api exited before it listened")
        })
        .await
        .context("status-api did not listen within 15 s")??;
        // Keep reading its log, so a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            base: format!("http://{address}"),
            pid,
            client: reqwest::Client::new(),
        })
    }

    /// GET `path`: the status and the body as JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        Ok((response.status(), response.json().await.unwrap_or_default()))
    }

    /// `POST /snapshot` with `token`.
    pub async fn retake(&self, token: &str) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .client
            .post(format!("{}/snapshot", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        Ok((response.status(), response.json().await.unwrap_or_default()))
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        wait_until(
            "status-api to be ready",
            Duration::from_secs(20),
            || async { Ok(self.get("/ready").await?.0 == StatusCode::OK) },
        )
        .await?;
        Ok(())
    }

    /// `kill -9`, and waits for it to be gone.
    // Only `faults.rs` kills; the api tests include this module too.
    #[allow(dead_code)]
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM, and waits up to 10 s for a clean exit.
    pub async fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.pid);
        Ok(tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await??)
    }
}

/// Runs the binary with `launch` expecting it to refuse to start: its exit status and stderr.
// Only the api tests expect refusals; `faults.rs` includes this module too.
#[allow(dead_code)]
pub async fn refused(launch: Launch<'_>) -> anyhow::Result<(std::process::ExitStatus, String)> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_status-api"));
    command
        .args(["--listen", "127.0.0.1:0", "--resync-interval", "1h"])
        .args(["--scope", launch.scope])
        .arg("--state-dir")
        .arg(launch.state_dir)
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Some((uid, gid)) = launch.run_as {
        command.uid(uid).gid(gid);
    }
    let output = tokio::time::timeout(Duration::from_secs(10), command.output())
        .await
        .context("status-api did not stop by itself within 10 s")??;
    Ok((
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}
