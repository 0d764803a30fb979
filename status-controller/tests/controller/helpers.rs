//! Running the pair for real, in-process, on port 0: status-api (`--resync-interval 1h`) and status-controller
//! (`--interval 1h`), so that every heal a test sees was driven by the long poll, never by a timer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use shared::runtime::telemetry::{init_telemetry, LogFormat};
use status_controller::backoff::HealLimits;
use tempfile::TempDir;
use test_support::{
    container_state, docker, inspect_json, wait_until, StatusApiOptions, StatusApiServer, TestScope,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any expected change may take before a test fails. Generous: tests share two cores.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The token both servers read in tests that recreate.
const TOKEN: &str = "test-token-0123456789";

/// Quiet logs unless `TEST_LOG` is set (then to stderr, at `RUST_LOG` or info).
pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            init_telemetry(LogFormat::Pretty, "info", std::io::stderr);
        } else {
            init_telemetry(LogFormat::Pretty, "info", std::io::sink);
        }
    });
}

/// status-api, started the way every test in the workspace starts it: over a state directory of its own,
/// scoped to `scope`, without a token — the usual arrangement when a test needs only a live status-api.
pub async fn api_for_scope(scope: &TestScope) -> anyhow::Result<StatusApiServer> {
    StatusApiServer::start(StatusApiOptions::scoped(scope.scope())).await
}

/// status-api on `listen` over `state_dir` (kept between restarts), scoped to `scope`.
pub async fn api_at(
    state_dir: &Path,
    scope: &TestScope,
    listen: &str,
) -> anyhow::Result<StatusApiServer> {
    StatusApiServer::start(StatusApiOptions {
        listen: listen.to_owned(),
        state_dir: Some(state_dir.to_owned()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await
}

/// A status-controller running in this process.
#[derive(Debug)]
pub struct Controller {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), status_controller::startup::StartupError>>,
}

impl Controller {
    /// Starts a controller against the status-api at `api` with `--interval 1h` and `extra` flags. It is not
    /// waited for: a test that needs it ready says so.
    pub async fn start(
        api: SocketAddr,
        extra: &[&str],
        limits: Option<HealLimits>,
    ) -> anyhow::Result<Self> {
        let url = format!("http://{api}");
        let mut args = vec![
            "status-controller",
            "--listen",
            "127.0.0.1:0",
            "--api-url",
            &url,
            "--interval",
            "1h",
        ];
        args.extend_from_slice(extra);
        let settings = status_controller::Settings::try_parse_from(args)?;
        let app = status_controller::Application::build_with_limits(
            &settings,
            limits.unwrap_or_default(),
        )
        .await?;
        let address = app.address();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            address,
            stop: Some(stop),
            task,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The status code of `/ready`.
    pub async fn ready_status(&self) -> anyhow::Result<u16> {
        Ok(reqwest::get(self.url("/ready")).await?.status().as_u16())
    }

    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        wait_until("the controller to be ready", PATIENCE, || async {
            Ok(self.ready_status().await? == 200)
        })
        .await?;
        Ok(())
    }

    /// `GET /actions`.
    pub async fn actions(&self) -> anyhow::Result<serde_json::Value> {
        Ok(reqwest::get(self.url("/actions")).await?.json().await?)
    }

    /// The records of `/actions` for `container`, newest first.
    pub async fn actions_for(&self, container: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let all = self.actions().await?;
        Ok(all["actions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|record| record["container"] == container)
            .collect())
    }

    /// Waits until `/actions` holds a record for `container` with this action and result.
    pub async fn wait_for_record(
        &self,
        container: &str,
        action: &str,
        result: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let what = format!("a {action}/{result} record for {container} in /actions");
        let found = std::sync::Mutex::new(None);
        wait_until(&what, PATIENCE, || async {
            let record = self
                .actions_for(container)
                .await?
                .into_iter()
                .find(|record| record["action"] == action && record["result"] == result);
            let seen = record.is_some();
            *found.lock().expect("not poisoned") = record;
            Ok(seen)
        })
        .await?;
        found.into_inner()?.context("just found")
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(self.url("/metrics")).await?.text().await?)
    }

    /// The value of one sample in `/metrics`, e.g. `dockstate_controller_quarantined`; 0 when absent.
    pub async fn metric(&self, sample: &str) -> anyhow::Result<f64> {
        let text = self.metrics().await?;
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0))
    }

    /// Stops it (finishing the actions in hand) and waits until it has.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .context("the controller did not stop within 10 s")???;
        Ok(())
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        // A test that failed part-way: stop acting before its scope's containers are removed.
        self.task.abort();
    }
}

/// The built `status-controller` binary.
pub const BINARY: &str = env!("CARGO_BIN_EXE_status-controller");

/// The built binary running as a child process (killed when dropped), as it runs in production: JSON logs on
/// stdout, which are kept.
#[derive(Debug)]
pub struct Binary {
    pub child: tokio::process::Child,
    pub pid: u32,
    /// Where it listens, from the log line that says so.
    pub address: String,
    logs: JoinHandle<Vec<String>>,
}

impl Binary {
    /// Starts the binary with `--listen 127.0.0.1:0 --log-format json` and `args`, and waits until it
    /// listens. It is not waited for beyond that: a test that needs it ready says so.
    pub async fn start(args: &[&str]) -> anyhow::Result<Self> {
        use tokio::io::{AsyncBufReadExt, BufReader};

        let mut child = tokio::process::Command::new(BINARY)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("running")?;
        let mut lines = BufReader::new(child.stdout.take().context("piped")?).lines();
        let mut before = Vec::new();
        let address = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await? {
                let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                before.push(line);
                if log["message"] == "status-controller listening" {
                    return Ok::<_, anyhow::Error>(
                        log["address"].as_str().unwrap_or_default().to_owned(),
                    );
                }
            }
            bail!("the controller exited before it listened")
        })
        .await??;
        // Keep reading its logs, so a full pipe never blocks it, and keep them for the end.
        let logs = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                before.push(line);
            }
            before
        });
        Ok(Self {
            child,
            pid,
            address,
            logs,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let ready = self.url("/ready");
        wait_until("the binary to be ready", PATIENCE, || async {
            Ok(reqwest::get(&ready).await?.status().is_success())
        })
        .await?;
        Ok(())
    }

    /// Every log line it wrote, once it has exited (it must have been stopped or killed first).
    pub async fn logs(self) -> anyhow::Result<Vec<String>> {
        Ok(self.logs.await?)
    }
}

/// What a [`Pair`] is started with.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Both servers get the same token file, so removed containers can be recreated.
    pub token: bool,
    /// Extra controller flags, e.g. `--unexpected remove`, `--dry-run`.
    pub flags: Vec<&'static str>,
    pub limits: Option<HealLimits>,
}

/// status-api and status-controller over one scope, both ready.
#[derive(Debug)]
pub struct Pair {
    pub api: Option<StatusApiServer>,
    pub controller: Controller,
    /// Holds the snapshot and the token; removed when the pair is dropped.
    state_dir: TempDir,
    token: bool,
}

impl Pair {
    /// Starts status-api (which takes the snapshot of what runs in `scope` now), then the controller, and
    /// waits until the controller is ready.
    pub async fn start(scope: &TestScope, options: Options) -> anyhow::Result<Self> {
        init_logs();
        let state_dir = tempfile::tempdir()?;
        let token_file = if options.token {
            let path = state_dir.path().join("token");
            std::fs::write(&path, TOKEN)?;
            Some(path)
        } else {
            None
        };
        let api = StatusApiServer::start(StatusApiOptions {
            state_dir: Some(state_dir.path().join("state")),
            token_file: token_file.clone(),
            ..StatusApiOptions::scoped(scope.scope())
        })
        .await?;
        let mut flags: Vec<String> = options.flags.iter().map(|flag| flag.to_string()).collect();
        if let Some(token_file) = &token_file {
            flags.push("--token-file".into());
            flags.push(token_file.to_string_lossy().into_owned());
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let controller = Controller::start(api.address, &flags, options.limits).await?;
        controller.wait_ready().await?;
        Ok(Self {
            api: Some(api),
            controller,
            state_dir,
            token: options.token,
        })
    }

    /// The token file both servers read, when the pair was started with one.
    pub fn token_file(&self) -> Option<PathBuf> {
        self.token.then(|| self.state_dir.path().join("token"))
    }

    /// Stops the controller first (so nothing acts while the scope is cleaned up), then status-api.
    pub async fn stop(self) -> anyhow::Result<()> {
        let Self {
            api, controller, ..
        } = self;
        controller.stop().await?;
        match api {
            Some(api) => api.stop().await,
            None => Ok(()),
        }
    }
}

/// Waits until `name` is in `state` (`running`, `exited`, …).
/// Runs a busybox container `<scope>-<suffix>` in the scope and waits until it runs: the member most tests
/// start from. Answers its name.
pub async fn run_member(scope: &TestScope, suffix: &str) -> anyhow::Result<String> {
    let name = scope.name(suffix);
    scope.run(suffix, test_support::BUSYBOX_IMAGE, &[]).await?;
    wait_for_state(&name, "running").await?;
    Ok(name)
}

pub async fn wait_for_state(name: &str, state: &str) -> anyhow::Result<Duration> {
    wait_until(&format!("{name} to be {state}"), PATIENCE, || async {
        Ok(container_state(name).await?.as_deref() == Some(state))
    })
    .await
}

/// Waits until `name` is running again after `previous_start` (its `State.StartedAt` before the test acted).
pub async fn wait_for_restart(name: &str, previous_start: &str) -> anyhow::Result<Duration> {
    wait_until(&format!("{name} to run again"), PATIENCE, || async {
        let inspected = inspect_json(name).await?;
        Ok(inspected["State"]["Status"] == "running"
            && inspected["State"]["StartedAt"] != previous_start)
    })
    .await
}

/// `State.StartedAt` of a container.
pub async fn started_at(name: &str) -> anyhow::Result<String> {
    let inspected = inspect_json(name).await?;
    inspected["State"]["StartedAt"]
        .as_str()
        .map(str::to_owned)
        .context("no StartedAt")
}

/// Checks for `window` that `check` stays true: for "nothing happened" assertions, which cannot be proven
/// by waiting for a change.
pub async fn stays(
    what: &str,
    window: Duration,
    check: impl AsyncFn() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + window;
    loop {
        if !check().await? {
            bail!("{what} did not hold");
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seconds since the epoch, as `docker events --since/--until` take them.
pub fn unix(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
}

/// The engine's events for one container between two moments: `(action, nanoseconds since the epoch)`.
pub async fn engine_events(
    container_id: &str,
    from: SystemTime,
    to: SystemTime,
) -> anyhow::Result<Vec<(String, u128)>> {
    let filter = format!("container={container_id}");
    let out = docker(&[
        "events",
        "--since",
        &unix(from),
        "--until",
        &unix(to),
        "--filter",
        &filter,
        "--format",
        "{{.Action}} {{.TimeNano}}",
    ])
    .await?;
    out.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            // An action may hold spaces itself (`exec_start: /bin/busybox test …`): the time is last.
            let (action, nanos) = line.rsplit_once(' ').context("action and time")?;
            Ok((action.to_owned(), nanos.parse()?))
        })
        .collect()
}

/// Kills a container's main process from the host with SIGKILL: the most realistic death.
pub async fn kill_main_process(name: &str) -> anyhow::Result<()> {
    let pid = test_support::main_pid(name).await?;
    let status = tokio::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .await?;
    if !status.success() {
        bail!("kill -9 {pid} failed: {status}");
    }
    Ok(())
}

/// Volumes a test re-attached by name: `docker rm -v` (the scope's clean-up) leaves a volume mounted by name,
/// so they are removed here. Declare it before the [`TestScope`], so it is dropped after the containers.
#[derive(Debug, Default)]
pub struct Volumes(pub std::sync::Mutex<Vec<String>>);

impl Volumes {
    pub fn keep(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(name.to_owned());
    }
}

impl Drop for Volumes {
    fn drop(&mut self) {
        let names = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if !names.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["volume", "rm", "-f"])
                .args(&names)
                .output();
        }
    }
}

/// The name of the volume mounted at `destination` in `name`.
pub async fn volume_at(name: &str, destination: &str) -> anyhow::Result<String> {
    let inspected = inspect_json(name).await?;
    inspected["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|mount| mount["Destination"] == destination)
        .and_then(|mount| mount["Name"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no volume at {destination} in {name}"))
}

/// Asserts that the text at JSON `pointer` (e.g. `/reason`, `/checks/status_api/detail`) in `value` mentions
/// `needle`; the failure shows the whole value.
#[track_caller]
pub fn assert_mentions(value: &serde_json::Value, pointer: &str, needle: &str) {
    let text = value.pointer(pointer).and_then(serde_json::Value::as_str);
    assert!(
        text.is_some_and(|text| text.contains(needle)),
        "{pointer} should mention {needle:?}: {value}"
    );
}
