//! A real Prometheus (Debian's `prometheus` package) for the tests of the shipped rules and dashboard: it scrapes
//! the test's own servers every second, evaluates the rules every second, keeps its data in a temporary
//! directory and listens on a free loopback port. Dropping it kills it (and removes its data), also when the
//! test failed; it prints the end of its log when it would not start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::wait_until;

/// What to install when it is missing.
pub const PROMETHEUS_INSTALL: &str = "apt-get install prometheus (it brings promtool)";

/// How long Prometheus may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One scrape target: the job it belongs to, its address, and the `host` label it carries.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub job: String,
    pub address: SocketAddr,
    pub host: String,
}

/// A running Prometheus. See the module documentation.
#[derive(Debug)]
pub struct Prometheus {
    address: SocketAddr,
    client: reqwest::Client,
    child: Child,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus over `rule_files` (absolute paths) scraping `targets` every second, and returns once
    /// it is ready. The binary is `$PROMETHEUS`, else `prometheus` on the `PATH`.
    pub async fn start(rule_files: &[PathBuf], targets: &[ScrapeTarget]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_text(rule_files, targets))?;
        let address = free_address()?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let binary = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".to_owned());
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {binary} ({PROMETHEUS_INSTALL})"))?;
        let prometheus = Self {
            address,
            client: reqwest::Client::new(),
            child,
            dir,
        };
        let ready = prometheus.url("/-/ready");
        let waited = wait_until("Prometheus to be ready", READY_TIMEOUT, || async {
            Ok(prometheus
                .client
                .get(&ready)
                .send()
                .await?
                .status()
                .is_success())
        })
        .await;
        if let Err(err) = waited {
            bail!("{err:#}\nits log:\n{}", prometheus.log_tail());
        }
        Ok(prometheus)
    }

    /// `http://<address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The instant vector `expr` evaluates to now (`/api/v1/query`): its samples, each `{metric, value}`.
    /// An error when Prometheus refuses the expression or fails to evaluate it, with its own words.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await?;
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"].as_array().cloned().unwrap_or_default()),
            // A scalar or a string is one value: keep its shape, with no labels.
            Some("scalar" | "string") => Ok(vec![serde_json::json!({
                "metric": {},
                "value": data["result"],
            })]),
            _ => bail!("{expr} answered {data}"),
        }
    }

    /// The rule groups Prometheus has loaded and evaluated (`/api/v1/rules`): each rule with its `name`,
    /// `query`, `type`, `labels`, `annotations`, `health` and `lastError`.
    pub async fn rules(&self) -> anyhow::Result<Vec<Value>> {
        let data = self.api("/api/v1/rules", &[]).await?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// The alerts that are pending or firing (`/api/v1/alerts`).
    pub async fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        let data = self.api("/api/v1/alerts", &[]).await?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    /// The end of its log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The pid of the Prometheus process.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let body: Value = self
            .client
            .get(self.url(path))
            .query(query)
            .send()
            .await?
            .json()
            .await?;
        if body["status"] != "success" {
            bail!(
                "{path} {query:?}: {} ({})",
                body["error"].as_str().unwrap_or_default(),
                body["errorType"].as_str().unwrap_or_default()
            );
        }
        Ok(body["data"].clone())
    }
}

/// The configuration: everything every second, one static config per target so each carries its `host`.
fn config_text(rule_files: &[PathBuf], targets: &[ScrapeTarget]) -> String {
    let mut text = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n",
    );
    for file in rule_files {
        text.push_str(&format!("  - {}\n", quoted(file)));
    }
    text.push_str("scrape_configs:\n");
    let mut jobs: Vec<&str> = Vec::new();
    for target in targets {
        if !jobs.contains(&target.job.as_str()) {
            jobs.push(&target.job);
        }
    }
    for job in jobs {
        text.push_str(&format!("  - job_name: {job}\n    static_configs:\n"));
        for target in targets.iter().filter(|target| target.job == job) {
            text.push_str(&format!(
                "      - targets: ['{}']\n        labels: {{host: '{}'}}\n",
                target.address, target.host
            ));
        }
    }
    text
}

fn quoted(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// A loopback address no one listens on now.
fn free_address() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}
