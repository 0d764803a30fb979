//! One of dockstate's binaries running as a process of its own, for tests that need the program exactly as it
//! ships (its `main`, its signal handling, its environment) rather than the in-process `Application`.
//!
//! The process logs JSON to a pipe that a task keeps reading, so a full pipe never blocks it; the newest lines
//! are kept for the error a failing test prints. Dropping it kills the process (SIGKILL), also when the test
//! failed; [`Program::stop`] stops it as SIGTERM would.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How many of the newest log lines a [`Program`] keeps.
const KEPT_LINES: usize = 200;

/// How long a program may take to say that it listens.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A running dockstate binary. See the module documentation.
#[derive(Debug)]
pub struct Program {
    /// The file name of the binary, for messages.
    name: String,
    child: Child,
    /// The address from its `... listening` log line.
    pub address: SocketAddr,
    logs: Arc<Mutex<VecDeque<String>>>,
}

impl Program {
    /// Runs `binary` with `args`, `--log-format json` and `envs` on top of this process's environment, and
    /// returns once its log says it listens (`status-api listening`, `status-controller listening`): pass
    /// `--listen 127.0.0.1:0` in `args` and read the port from [`Program::address`].
    pub async fn spawn(
        binary: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let name = binary.file_name().map_or_else(
            || binary.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let mut child = Command::new(binary)
            .args(args)
            .args(["--log-format", "json"])
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout is piped")?).lines();
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let keep = {
            let logs = Arc::clone(&logs);
            move |line: String| {
                let mut logs = logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if logs.len() == KEPT_LINES {
                    logs.pop_front();
                }
                logs.push_back(line);
            }
        };
        let listening = format!("{name} listening");
        let address = tokio::time::timeout(LISTEN_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                keep(line);
                if log["message"] == listening.as_str() {
                    let address = log["address"].as_str().unwrap_or_default();
                    return address.parse::<SocketAddr>().with_context(|| {
                        format!("{name} logged an address that is not one: {address:?}")
                    });
                }
            }
            bail!("{name} exited before it listened")
        })
        .await;
        let address = match address {
            Ok(Ok(address)) => address,
            Ok(Err(e)) => return Err(e.context(log_tail(&logs))),
            Err(_) => bail!(
                "{name} did not log `{listening}` within {LISTEN_TIMEOUT:?}; {}",
                log_tail(&logs)
            ),
        };
        // Keep reading, so that a full pipe never blocks it.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(line);
            }
        });
        Ok(Self {
            name,
            child,
            address,
            logs,
        })
    }

    /// `http://<address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The newest lines of its log, for an error message.
    pub fn logs(&self) -> String {
        log_tail(&self.logs)
    }

    /// Sends SIGTERM and waits up to `limit` for it to exit; its exit status, or an error with its log.
    pub async fn stop(mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(pid) = self.child.id() {
            let status = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .context("running kill")?;
            if !status.success() {
                bail!("kill -TERM {pid} ({}) failed: {status}", self.name);
            }
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => bail!(
                "{} did not exit within {limit:?} of SIGTERM; {}",
                self.name,
                self.logs()
            ),
        }
    }
}

fn log_tail(logs: &Mutex<VecDeque<String>>) -> String {
    let logs = logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let lines: Vec<&str> = logs.iter().map(String::as_str).collect();
    format!("its newest log lines:\n{}", lines.join("\n"))
}
