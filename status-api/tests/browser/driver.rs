//! Headless Chromium over WebDriver for one test: Debian's `chromedriver` on a free loopback port, a session
//! that records the console and every network request, and a guard that ends both even when the test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;
use test_support::wait_until;
use tokio::process::{Child, Command};

const INSTALL_HINT: &str = "the browser test needs headless Chromium and its WebDriver: \
     `apt-get install --no-install-recommends chromium chromium-driver` (.ci/run installs them)";

/// The same window on every machine, so that screenshots compare.
const WINDOW_SIZE: &str = "--window-size=1280,1600";

/// Where the browser and its driver are: `CHROMIUM` and `CHROMEDRIVER` when set, else Debian's paths.
#[derive(Debug)]
pub struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Tools {
    /// Finds both, or fails saying what to install: a test never skips for want of a tool.
    pub fn find() -> anyhow::Result<Self> {
        let pick = |variable: &str, candidates: &[&str]| {
            let path = match std::env::var_os(variable) {
                Some(path) => PathBuf::from(path),
                None => candidates
                    .iter()
                    .map(PathBuf::from)
                    .find(|path| path.is_file())
                    .with_context(|| {
                        format!(
                            "no {} (set {variable}); {INSTALL_HINT}",
                            candidates.join(" or ")
                        )
                    })?,
            };
            anyhow::ensure!(
                path.is_file(),
                "{variable}={} is not a file; {INSTALL_HINT}",
                path.display()
            );
            Ok(path)
        };
        Ok(Self {
            // The binary itself: Debian's /usr/bin/chromium is a shell wrapper that chromedriver need not go through.
            chromium: pick(
                "CHROMIUM",
                &["/usr/lib/chromium/chromium", "/usr/bin/chromium"],
            )?,
            chromedriver: pick("CHROMEDRIVER", &["/usr/bin/chromedriver"])?,
        })
    }
}

/// A running chromedriver with one Chromium session.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    /// chromedriver's own URL, for the one command fantoccini does not have (reading a log).
    driver_url: String,
    session: String,
    _driver: Driver,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session that logs the console (`browser`) and the DevTools
    /// network events (`performance`).
    pub async fn start(tools: &Tools) -> anyhow::Result<Self> {
        let port = free_port()?;
        let driver = Driver::spawn(&tools.chromedriver, port)?;
        let driver_url = format!("http://127.0.0.1:{port}");
        let status = format!("{driver_url}/status");
        wait_until(
            "chromedriver to answer",
            Duration::from_secs(20),
            || async { Ok(reqwest::get(&status).await?.status().is_success()) },
        )
        .await?;
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&tools.chromium, driver.profile.path()))
            .connect(&driver_url)
            .await
            .with_context(|| {
                format!("starting {} through chromedriver", tools.chromium.display())
            })?;
        let session = client
            .session_id()
            .await?
            .context("the session has no id")?;
        Ok(Self {
            client,
            driver_url,
            session,
            _driver: driver,
        })
    }

    /// The console messages since the last call, e.g. `{level: "SEVERE", message: "... 404 (Not Found)"}`.
    pub async fn console(&self) -> anyhow::Result<Vec<Value>> {
        self.log("browser").await
    }

    /// Every URL the page requested since the last call (navigations, scripts, fetches, the favicon), from the
    /// DevTools network events, so that a request that failed is listed too.
    pub async fn requested_urls(&self) -> anyhow::Result<Vec<String>> {
        let entries = self.log("performance").await?;
        Ok(entries
            .iter()
            .filter_map(|entry| serde_json::from_str::<Value>(entry["message"].as_str()?).ok())
            .filter(|event| event["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|event| {
                event["message"]["params"]["request"]["url"]
                    .as_str()
                    .map(ToOwned::to_owned)
            })
            .collect())
    }

    /// chromedriver's `POST /session/{id}/se/log`: the entries of one log since it was last read.
    async fn log(&self, kind: &str) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session);
        let answer: Value = reqwest::Client::new()
            .post(&url)
            .json(&json!({"type": kind}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("reading the {kind} log"))?
            .json()
            .await?;
        match &answer["value"] {
            Value::Array(entries) => Ok(entries.clone()),
            other => bail!("the {kind} log is not a list: {other}"),
        }
    }

    /// Makes the page's viewport `width` × `height` CSS pixels, as a phone (`mobile`: the viewport meta tag
    /// applies) or a desktop window, through DevTools' device emulation: a window cannot be made as narrow as a
    /// phone.
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) -> anyhow::Result<()> {
        self.devtools(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await
    }

    /// chromedriver's `POST /session/{id}/goog/cdp/execute`: one DevTools command.
    async fn devtools(&self, command: &str, params: Value) -> anyhow::Result<()> {
        let url = format!(
            "{}/session/{}/goog/cdp/execute",
            self.driver_url, self.session
        );
        reqwest::Client::new()
            .post(&url)
            .json(&json!({"cmd": command, "params": params}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("DevTools {command}"))?;
        Ok(())
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot")?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Ends the session (the browser quits), then chromedriver.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client
            .clone()
            .close()
            .await
            .context("ending the WebDriver session")
    }
}

/// chromedriver in a process group of its own, which the browser's processes share, and the browser's
/// profile. Dropping it ends the whole group, also when the test failed.
#[derive(Debug)]
struct Driver {
    child: Child,
    group: u32,
    profile: TempDir,
}

impl Driver {
    fn spawn(chromedriver: &Path, port: u16) -> anyhow::Result<Self> {
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}; {INSTALL_HINT}", chromedriver.display()))?;
        let group = child.id().context("chromedriver exited at once")?;
        Ok(Self {
            child,
            group,
            profile: tempfile::tempdir()?,
        })
    }
}

impl Drop for Driver {
    /// SIGKILL to the group: chromedriver, Chromium and its helpers (the crash handlers, which leave the group,
    /// exit with the browser they watch).
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.group)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.start_kill();
    }
}

fn capabilities(chromium: &Path, profile: &Path) -> Capabilities {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                // CI runs as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                // Nothing that would reach out on its own (updates, sync, field trials, safe browsing).
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                WINDOW_SIZE,
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    match capabilities {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// A free loopback port for chromedriver (which cannot be told to pick one and report it), or for a server the
/// page must know the address of before it starts.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
