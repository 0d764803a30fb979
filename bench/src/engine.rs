//! The engine side of the benchmark: creating the workload fast, and an event recorder whose engine
//! timestamps (`timeNano`) time everything, so polling never adds to a measured latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{CreateContainerOptions, EventsOptions, StartContainerOptions};
use bollard::Docker;
use futures::StreamExt;
use test_support::BUSYBOX_IMAGE;
use tokio::task::JoinHandle;

/// The engine, through the same client as dockstate's programs (connections kept open between requests), so
/// the floor the benchmark measures with its own calls is not slowed by a connect per request that
/// dockstate does not pay.
pub async fn connect() -> anyhow::Result<Docker> {
    shared::runtime::engine::docker_client(None, Duration::from_secs(120))?
        .negotiate_version()
        .await
        .context("the Docker engine does not answer")
}

pub async fn version(docker: &Docker) -> anyhow::Result<String> {
    Ok(docker.version().await?.version.unwrap_or_default())
}

/// Nanoseconds since the epoch, the unit of the engine's event times.
pub fn now_nanos() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

/// How a benchmark container is made.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub label: &'a str,
    pub start: bool,
    pub restart_always: bool,
    /// `Some(seconds)`: the main process ignores SIGTERM and the stop timeout is `seconds`, so every stop
    /// really waits it out before the engine kills.
    pub slow_stop: Option<i64>,
}

/// A main process that ignores SIGTERM (the shell traps it to nothing) and sleeps until killed.
const IGNORES_TERM: [&str; 4] = [
    "/bin/busybox",
    "sh",
    "-c",
    "trap '' TERM; while true; do sleep 1; done",
];

/// Creates (and maybe starts) `names`, eight at a time; answers their ids in order.
pub async fn create_many(
    docker: &Docker,
    names: &[String],
    spec: Spec<'_>,
) -> anyhow::Result<Vec<String>> {
    let (key, value) = spec.label.split_once('=').context("label is KEY=VALUE")?;
    let labels = HashMap::from([(key.to_owned(), value.to_owned())]);
    let ids = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let labels = labels.clone();
            async move {
                let body = ContainerCreateBody {
                    image: Some(BUSYBOX_IMAGE.to_owned()),
                    labels: Some(labels),
                    cmd: spec
                        .slow_stop
                        .map(|_| IGNORES_TERM.iter().map(|arg| (*arg).to_owned()).collect()),
                    stop_timeout: spec.slow_stop,
                    host_config: Some(HostConfig {
                        restart_policy: spec.restart_always.then_some(RestartPolicy {
                            name: Some(RestartPolicyNameEnum::ALWAYS),
                            maximum_retry_count: None,
                        }),
                        ..HostConfig::default()
                    }),
                    ..ContainerCreateBody::default()
                };
                let options = CreateContainerOptions {
                    name: Some(name.clone()),
                    ..CreateContainerOptions::default()
                };
                let id = docker
                    .create_container(Some(options), body)
                    .await
                    .with_context(|| format!("create {name}"))?
                    .id;
                if spec.start {
                    docker
                        .start_container(&id, None::<StartContainerOptions>)
                        .await
                        .with_context(|| format!("start {name}"))?;
                }
                anyhow::Ok(id)
            }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    ids.into_iter().collect()
}

/// One engine event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub name: String,
    pub action: String,
    pub time_nanos: i64,
}

/// Records every container event carrying a label, from the moment it starts.
#[derive(Debug)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    pub async fn start(docker: &Docker, label: &str) -> anyhow::Result<Self> {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), vec![label.to_owned()]),
        ]);
        let mut stream = Box::pin(docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..EventsOptions::default()
        })));
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = events.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let actor = message.actor.unwrap_or_default();
                let event = Event {
                    id: actor.id.unwrap_or_default(),
                    name: actor
                        .attributes
                        .and_then(|attributes| attributes.get("name").cloned())
                        .unwrap_or_default(),
                    action: message.action.unwrap_or_default(),
                    time_nanos: message.time_nano.unwrap_or_default(),
                };
                if let Ok(mut events) = sink.lock() {
                    events.push(event);
                }
            }
        });
        // The stream starts when first polled; give it a moment to be in place before anything happens.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(Self { events, task })
    }

    /// Every event recorded with an engine time in `[from, to)`, in the order the engine sent them.
    pub fn events_between(&self, from: i64, to: i64) -> Vec<Event> {
        self.events
            .lock()
            .map(|events| {
                events
                    .iter()
                    .filter(|event| (from..to).contains(&event.time_nanos))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first event after `after_nanos` that matches, waiting up to `timeout` for it.
    pub async fn wait_for(
        &self,
        what: &str,
        after_nanos: i64,
        timeout: Duration,
        matches: impl Fn(&Event) -> bool,
    ) -> anyhow::Result<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self.events.lock().ok().and_then(|events| {
                events
                    .iter()
                    .find(|event| event.time_nanos > after_nanos && matches(event))
                    .cloned()
            });
            if let Some(event) = found {
                return Ok(event);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The main process of a running container, for `kill -9` from the host.
pub async fn main_pid(docker: &Docker, id: &str) -> anyhow::Result<i64> {
    let inspect = docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await?;
    let pid = inspect.state.and_then(|state| state.pid).unwrap_or(0);
    anyhow::ensure!(pid > 0, "container {id} is not running");
    Ok(pid)
}

/// `kill -9 <pid>` — the way a process dies without Docker's knowledge, which keeps its restart policy on
/// (`docker kill` and `docker stop` switch it off).
pub async fn kill_9(pid: i64) -> anyhow::Result<()> {
    kill_9_all(&[pid]).await
}

/// `kill -9 <pid>...` in one command: every process dies within the same moment.
pub async fn kill_9_all(pids: &[i64]) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .arg("-9")
        .args(pids.iter().map(i64::to_string))
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill -9 {pids:?} failed");
    Ok(())
}
