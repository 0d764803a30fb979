//! status-api against a real Podman (`podman system service` on a private socket, [`PrivatePodman`]), as a
//! user runs it with `DOCKER_HOST=unix:///…/podman.sock`: the engine named in `/ready` and `/status`,
//! `/status` equal to `podman ps`, and every event kind in `/status` within a second with
//! `--resync-interval 1h`. Fails, never skips, when Podman is not installed (the message says how to install
//! it). Workloads run with `--network none`: these tests need no network, and make no bridge on the host.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use test_support::{
    ensure_test_images, wait_until, PrivatePodman, StatusApiOptions, StatusApiServer, TestScope,
    BUSYBOX_IMAGE, HEALTH_IMAGE,
};

/// How soon an engine event must show in `/status` (the bar: within a second, on both engines).
const EVENT_BOUND: Duration = Duration::from_secs(1);

struct Rig {
    podman: PrivatePodman,
    scope: TestScope,
    api: StatusApiServer,
    client: reqwest::Client,
}

impl Rig {
    /// A private Podman with the test images, `before` run in it, and status-api on it, ready.
    async fn start(
        before: impl AsyncFnOnce(&PrivatePodman, &TestScope) -> anyhow::Result<()>,
    ) -> anyhow::Result<Self> {
        ensure_test_images().await?;
        let podman = PrivatePodman::start().await?;
        for image in [BUSYBOX_IMAGE, HEALTH_IMAGE] {
            podman.load_image(image).await?;
        }
        let scope = TestScope::new();
        before(&podman, &scope).await?;
        let api = StatusApiServer::start(StatusApiOptions {
            docker_host: Some(podman.host()),
            ..StatusApiOptions::scoped(scope.scope())
        })
        .await
        .context("status-api on Podman becomes ready")?;
        Ok(Self {
            podman,
            scope,
            api,
            client: reqwest::Client::new(),
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .client
            .get(format!("{}{path}", self.api.base()))
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await?))
    }

    /// `podman run -d` (or `create`) of a scoped container named `<scope id>-<suffix>`, no network.
    async fn container(&self, verb: &str, suffix: &str, image: &str) -> anyhow::Result<String> {
        run(&self.podman, &self.scope, verb, suffix, image).await
    }

    /// The state `/status?all=true` shows for `name` (`None` when it is not listed).
    async fn state(&self, name: &str) -> anyhow::Result<Option<String>> {
        let (_, all) = self.get("/status?all=true").await?;
        Ok(all["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .and_then(|c| c["state"].as_str().map(ToOwned::to_owned)))
    }

    /// Runs `podman <args>`, then waits (at most [`EVENT_BOUND`]) for `/status` to show `name` in `state`
    /// (`None`: gone). Returns how long it took after the command returned.
    async fn shows_within_bound(
        &self,
        args: &[&str],
        name: &str,
        state: Option<&str>,
    ) -> anyhow::Result<Duration> {
        self.podman.podman(args).await?;
        let what = format!("`podman {}` to show {name} as {state:?}", args.join(" "));
        wait_until(&what, EVENT_BOUND, || async {
            Ok(self.state(name).await?.as_deref() == state)
        })
        .await
    }
}

async fn run(
    podman: &PrivatePodman,
    scope: &TestScope,
    verb: &str,
    suffix: &str,
    image: &str,
) -> anyhow::Result<String> {
    let name = scope.name(suffix);
    let label = scope.label();
    let mut args = vec![
        verb,
        "--name",
        &name,
        "--label",
        &label,
        "--network",
        "none",
    ];
    if verb == "run" {
        args.push("-d");
    }
    args.push(image);
    podman.podman(&args).await?;
    Ok(name)
}

#[tokio::test]
async fn on_podman_the_engine_is_named_and_status_equals_podman_ps() -> anyhow::Result<()> {
    let rig = Rig::start(async |podman, scope| {
        run(podman, scope, "run", "a", BUSYBOX_IMAGE).await?;
        run(podman, scope, "run", "b", HEALTH_IMAGE).await?;
        run(podman, scope, "create", "c", BUSYBOX_IMAGE).await?;
        let d = run(podman, scope, "run", "d", BUSYBOX_IMAGE).await?;
        podman.podman(&["stop", &d]).await?;
        Ok(())
    })
    .await?;

    let (code, ready) = rig.get("/ready").await?;
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["engine"]["kind"], "podman", "{ready}");
    assert!(ready["engine"]["version"]
        .as_str()
        .is_some_and(|v| v.starts_with(char::is_numeric)));
    let (_, all) = rig.get("/status?all=true").await?;
    assert_eq!(all["engine"]["kind"], "podman");

    // `podman ps -a` for the scope: the same ids, names and states.
    let listed = rig
        .podman
        .podman(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={}", rig.scope.label()),
            "--format",
            "json",
        ])
        .await?;
    let listed: Vec<Value> = serde_json::from_str(&listed)?;
    let mut expected: Vec<(String, String, String)> = listed
        .iter()
        .map(|c| {
            (
                c["Id"].as_str().unwrap_or_default().to_owned(),
                c["Names"][0].as_str().unwrap_or_default().to_owned(),
                c["State"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    expected.sort();
    let mut shown: Vec<(String, String, String)> = all["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    shown.sort();
    assert_eq!(shown, expected);
    assert_eq!(shown.len(), 4);
    let states: Vec<&str> = shown.iter().map(|(_, _, state)| state.as_str()).collect();
    for state in ["running", "created", "exited"] {
        assert!(states.contains(&state), "{state} in {states:?}");
    }
    Ok(())
}

#[tokio::test]
async fn on_podman_every_event_kind_is_in_status_within_a_second() -> anyhow::Result<()> {
    let rig = Rig::start(async |_, _| Ok(())).await?;
    let name = rig.container("run", "web", BUSYBOX_IMAGE).await?;
    wait_until("the new container to show", EVENT_BOUND, || async {
        Ok(rig.state(&name).await?.as_deref() == Some("running"))
    })
    .await?;

    let mut took = Vec::new();
    for (args, state) in [
        (vec!["pause", name.as_str()], Some("paused")),
        (vec!["unpause", name.as_str()], Some("running")),
        // Between `died` and `cleanup` Podman says `stopped`: shown as exited, and the stream stays up.
        (vec!["stop", "-t", "1", name.as_str()], Some("exited")),
        (vec!["start", name.as_str()], Some("running")),
        (vec!["kill", name.as_str()], Some("exited")),
        (vec!["restart", "-t", "1", name.as_str()], Some("running")),
        (vec!["rm", "-f", "-t", "0", name.as_str()], None),
    ] {
        let started = Instant::now();
        rig.shows_within_bound(&args, &name, state).await?;
        took.push((args[0], started.elapsed()));
    }
    let created = rig.scope.name("job");
    rig.shows_within_bound(
        &[
            "create",
            "--name",
            &created,
            "--label",
            &rig.scope.label(),
            "--network",
            "none",
            BUSYBOX_IMAGE,
        ],
        &created,
        Some("created"),
    )
    .await?;
    let renamed = rig.scope.name("job2");
    rig.shows_within_bound(&["rename", &created, &renamed], &renamed, Some("created"))
        .await?;
    assert_eq!(rig.state(&created).await?, None, "the old name is gone");
    println!("podman command + event → /status: {took:?}");

    // Nothing of that dropped the event stream: ready throughout, and the view is live.
    let (code, ready) = rig.get("/ready").await?;
    assert_eq!(code, 200, "{ready}");
    let (_, status) = rig.get("/status").await?;
    assert_eq!(status["events_live"], true);
    Ok(())
}
