//! The two programs under measurement, run as the release binaries (as users run them), each stopped
//! with SIGTERM when its guard drops.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::trace::{self, TraceLog};

/// A running program.
#[derive(Debug)]
pub struct Program {
    pub base: String,
    child: Child,
    /// Its heal-trace events, when it was started with them on.
    pub trace: Option<TraceLog>,
}

impl Program {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resident memory now, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.proc_status("VmRSS:")
    }

    /// The most it has been resident since it started (the kernel's high-water mark), from /proc.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.proc_status("VmHWM:")
    }

    /// A field of /proc/<pid>/status in bytes (`RssAnon:`, `RssFile:`).
    pub fn proc_status(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|line| line.starts_with(field))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Stops it with SIGTERM and waits (at most 30 s) until it has exited, so that another can take its
    /// state directory.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }

    /// Waits for `/ready` to answer 200; answers how long that took from `since`.
    pub async fn wait_ready(&self, since: Instant, timeout: Duration) -> anyhow::Result<Duration> {
        self.wait_ready_every(since, timeout, Duration::from_millis(5))
            .await
    }

    /// [`wait_ready`](Self::wait_ready), asking every `every`: each `/ready` builds status-api's view when it
    /// changed, which costs in proportion to the containers, so at thousands a tight poll would slow what it
    /// measures.
    pub async fn wait_ready_every(
        &self,
        since: Instant,
        timeout: Duration,
        every: Duration,
    ) -> anyhow::Result<Duration> {
        let client = reqwest::Client::new();
        let url = format!("{}/ready", self.base);
        loop {
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(since.elapsed());
                }
            }
            anyhow::ensure!(
                since.elapsed() < timeout,
                "{url} not ready after {timeout:?}"
            );
            tokio::time::sleep(every).await;
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Files the programs need: a state directory and a token file.
#[derive(Debug)]
pub struct Workdir {
    dir: TempDir,
}

impl Workdir {
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("token"), "bench-token\n")?;
        Ok(Self { dir })
    }

    pub fn token(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    pub fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Whether a program writes its heal-trace events (read back into a [`TraceLog`]) or warnings only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    Warnings,
    HealTrace,
}

fn spawn(binary: &Path, args: &[String], logs: Logs) -> anyhow::Result<(Child, Option<TraceLog>)> {
    let traced = logs == Logs::HealTrace;
    let mut child = Command::new(binary)
        .args(args)
        .env("RUST_LOG", if traced { trace::RUST_LOG } else { "warn" })
        // The logs go to stdout: read back when traced, else only warnings, which are of no use here.
        .stdout(if traced {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let trace = child.stdout.take().map(|stdout| {
        let log = TraceLog::default();
        log.follow(stdout);
        log
    });
    Ok((child, trace))
}

/// Starts status-api on a free port; answers at once (see [`Program::wait_ready`]).
pub fn status_api(
    bin_dir: &Path,
    scope: &str,
    state_dir: &Path,
    token: &Path,
    logs: Logs,
) -> anyhow::Result<Program> {
    status_api_with(bin_dir, scope, state_dir, token, logs, &[])
}

/// [`status_api`] with more arguments (`--docker-host …`).
pub fn status_api_with(
    bin_dir: &Path,
    scope: &str,
    state_dir: &Path,
    token: &Path,
    logs: Logs,
    more: &[String],
) -> anyhow::Result<Program> {
    let port = free_port()?;
    let mut args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--scope".to_owned(),
        scope.to_owned(),
        "--state-dir".to_owned(),
        state_dir.display().to_string(),
        "--token-file".to_owned(),
        token.display().to_string(),
        "--resync-interval".to_owned(),
        "1h".to_owned(),
        "--log-format".to_owned(),
        "json".to_owned(),
    ];
    args.extend_from_slice(more);
    let (child, trace) = spawn(&bin_dir.join("status-api"), &args, logs)?;
    Ok(Program {
        base: format!("http://127.0.0.1:{port}"),
        child,
        trace,
    })
}

/// Starts status-controller against `api`, with the periodic pass an hour away so the long poll is
/// what is measured.
pub fn controller(
    bin_dir: &Path,
    api: &Program,
    token: &Path,
    logs: Logs,
) -> anyhow::Result<Program> {
    controller_with(bin_dir, api, token, logs, &[], "1h")
}

/// [`controller`] with more arguments (`--docker-host …`, `--dry-run`) and a pass every `interval`.
pub fn controller_with(
    bin_dir: &Path,
    api: &Program,
    token: &Path,
    logs: Logs,
    more: &[String],
    interval: &str,
) -> anyhow::Result<Program> {
    let port = free_port()?;
    let mut args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--api-url".to_owned(),
        api.base.clone(),
        "--token-file".to_owned(),
        token.display().to_string(),
        "--interval".to_owned(),
        interval.to_owned(),
        "--log-format".to_owned(),
        "json".to_owned(),
    ];
    args.extend_from_slice(more);
    let (child, trace) = spawn(&bin_dir.join("status-controller"), &args, logs)?;
    Ok(Program {
        base: format!("http://127.0.0.1:{port}"),
        child,
        trace,
    })
}
