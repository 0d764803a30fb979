//! The compose stack end to end, as a user runs it. `make demo` builds the static binaries and the images,
//! starts the demo workload and then the pair under this test's own project name, scope, ports and token, and
//! waits until both answer ready. Then: a killed workload is healed, an unexpected container is stopped, the
//! API answers through the published ports, and `down -v` leaves nothing of the project behind.

use std::time::Duration;

use e2e::{
    build_images, Stack, API_SERVICE, CONTROLLER_SERVICE, DEMO_SERVICE, IMAGES, IMAGE_MAX_BYTES,
};
use serde_json::Value;
use test_support::{
    container_health, container_state, docker, ensure_test_images, inspect_json, wait_until,
    TestScope, BUSYBOX_IMAGE,
};

/// How long a heal may take. The controller reacts to the long poll within milliseconds; this is slack for a
/// loaded CI machine, not an expectation.
const HEAL_TIMEOUT: Duration = Duration::from_secs(30);

async fn get(url: &str) -> anyhow::Result<reqwest::Response> {
    Ok(reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await?)
}

async fn get_json(url: &str) -> anyhow::Result<Value> {
    let response = get(url).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    Ok(response.json().await?)
}

/// `State.StartedAt` of a container: changes each time it is started.
async fn started_at(name: &str) -> anyhow::Result<String> {
    Ok(inspect_json(name).await?["State"]["StartedAt"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Kills `name` and waits until something starts it again.
async fn kill_and_wait_for_heal(name: &str) -> anyhow::Result<Duration> {
    let before = started_at(name).await?;
    docker(&["kill", name]).await?;
    wait_until(
        &format!("{name} to be started again"),
        HEAL_TIMEOUT,
        || async {
            Ok(container_state(name).await?.as_deref() == Some("running")
                && started_at(name).await? != before)
        },
    )
    .await
}

#[tokio::test]
async fn the_compose_stack_heals_stops_the_unexpected_and_leaves_nothing_behind(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    build_images().await?;
    // Declared first, so it is dropped last: the stack's guard runs `down -v` before the scope's guard removes
    // the test's own containers (the demo carries the scope's label too).
    let scope = TestScope::new();
    let workload = scope.name("web");
    scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    let mut stack = Stack::new(&scope)?;

    // Arrange: what a user types. The workload and the demo run before the pair's first start, so both are in
    // the snapshot; `make demo` waits until both programs are ready.
    let printed = stack.make("demo").await?;
    assert!(
        printed.contains(&format!("{}/docs", stack.api_url)),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("{}/actions", stack.controller_url)),
        "{printed}"
    );
    let demo = stack.container(DEMO_SERVICE).await?;
    assert!(printed.contains("is in the snapshot"), "{printed}");

    let snapshot = get_json(&format!("{}/snapshot", stack.api_url)).await?;
    let members: Vec<&str> = snapshot["containers"]
        .as_array()
        .map(|all| all.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(snapshot["scope"], scope.scope(), "{snapshot}");
    assert!(members.contains(&workload.as_str()), "{members:?}");
    assert!(members.contains(&demo.as_str()), "{members:?}");
    assert_eq!(members.len(), 2, "only the scope's containers: {members:?}");

    // The pair as compose runs it: numeric user, the socket's group, read-only root, restart policy, labels,
    // and healthy by their own HEALTHCHECK.
    let socket_gid = std::fs::metadata("/var/run/docker.sock")
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m).to_string())
        .ok();
    for service in [API_SERVICE, CONTROLLER_SERVICE] {
        let name = stack.container(service).await?;
        let inspected = inspect_json(&name).await?;
        assert_eq!(inspected["Config"]["User"], "10001:10001", "{service}");
        assert_eq!(inspected["HostConfig"]["ReadonlyRootfs"], true, "{service}");
        assert_eq!(
            inspected["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped",
            "{service}"
        );
        assert_eq!(
            inspected["Config"]["Labels"]["dockstate.policy"], "ignore",
            "{service}"
        );
        if let Some(gid) = &socket_gid {
            assert_eq!(
                inspected["HostConfig"]["GroupAdd"][0],
                gid.as_str(),
                "{service}"
            );
        }
        wait_until(
            &format!("{service} to be healthy"),
            Duration::from_secs(60),
            || async { Ok(container_health(&name).await?.as_deref() == Some("healthy")) },
        )
        .await?;
    }

    // Act and assert: a killed workload is healed, and so is the demo, which then serves again.
    kill_and_wait_for_heal(&workload).await?;
    kill_and_wait_for_heal(&demo).await?;
    wait_until(
        "the demo to serve again",
        Duration::from_secs(10),
        || async { Ok(get(&stack.demo_url).await?.status().is_success()) },
    )
    .await?;

    // An unexpected container in scope is stopped (the default, --unexpected stop), not removed.
    let intruder = scope.name("intruder");
    scope.run("intruder", BUSYBOX_IMAGE, &[]).await?;
    wait_until(
        "the unexpected container to be stopped",
        HEAL_TIMEOUT,
        || async { Ok(container_state(&intruder).await?.as_deref() == Some("exited")) },
    )
    .await?;

    // The API through the published ports.
    let docs = get(&format!("{}/docs", stack.api_url)).await?;
    assert!(docs.status().is_success(), "/docs: {}", docs.status());
    let content_type = docs
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/html"),
        "/docs is {content_type}"
    );
    let status = get_json(&format!("{}/status", stack.api_url)).await?;
    let running: Vec<&str> = status["containers"]
        .as_array()
        .map(|all| all.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(running.contains(&workload.as_str()), "{status}");
    assert!(running.contains(&demo.as_str()), "{status}");
    assert!(!running.contains(&intruder.as_str()), "{status}");
    wait_until("the drift to settle", HEAL_TIMEOUT, || async {
        Ok(get_json(&format!("{}/drift", stack.api_url)).await?["in_sync"] == true)
    })
    .await?;

    // The controller's own record, through its published port.
    let actions = get(&format!("{}/actions", stack.controller_url))
        .await?
        .text()
        .await?;
    for name in [&workload, &demo, &intruder] {
        assert!(
            actions.contains(name.as_str()),
            "{name} not in /actions: {actions}"
        );
    }

    // `make plan` runs one dry pass in the running controller; the host is in sync again.
    let (code, plan) = stack.make_status("plan").await?;
    assert_eq!(code, 0, "make plan: {plan}");

    // The stack comes down, and nothing of the project is left; the workload (not the project's) stays.
    stack.down().await?;
    assert_eq!(stack.leftovers().await?, Vec::<String>::new());
    assert_eq!(
        container_state(&workload).await?.as_deref(),
        Some("running")
    );
    Ok(())
}

#[tokio::test]
async fn the_images_are_small_non_root_labelled_and_check_their_own_health() -> anyhow::Result<()> {
    build_images().await?;
    for (image, program) in IMAGES {
        let inspected = inspect_json(image).await?;
        let size = inspected["Size"].as_u64().unwrap_or(u64::MAX);
        assert!(size < IMAGE_MAX_BYTES, "{image} is {size} bytes");
        let config = &inspected["Config"];
        assert_eq!(config["User"], "10001:10001", "{image}");
        assert_eq!(
            config["Entrypoint"],
            serde_json::json!([format!("/{program}")])
        );
        assert_eq!(
            config["Healthcheck"]["Test"],
            serde_json::json!(["CMD", format!("/{program}"), "healthcheck"]),
            "{image}"
        );
        let labels = &config["Labels"];
        for key in [
            "title",
            "description",
            "version",
            "revision",
            "created",
            "source",
            "licenses",
        ] {
            let value = labels[format!("org.opencontainers.image.{key}")]
                .as_str()
                .unwrap_or_default();
            assert!(
                !value.is_empty(),
                "{image} has no org.opencontainers.image.{key}"
            );
        }
        assert_eq!(
            labels["org.opencontainers.image.version"],
            env!("CARGO_PKG_VERSION"),
            "{image}"
        );
        assert_eq!(labels["dockstate.policy"], "ignore", "{image}");

        // The static binary runs in scratch; its healthcheck fails (exit 1) when nothing serves.
        let version = docker(&["run", "--rm", "--network", "none", image, "--version"]).await?;
        assert_eq!(version, format!("{program} {}", env!("CARGO_PKG_VERSION")));
        let probe = docker(&["run", "--rm", "--network", "none", image, "healthcheck"]).await;
        let err = probe
            .expect_err("healthcheck with nothing serving must fail")
            .to_string();
        assert!(err.contains("exit status: 1"), "{image}: {err}");
    }
    Ok(())
}

#[tokio::test]
async fn the_compose_file_is_valid_with_and_without_the_demo_profile() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let mut stack = Stack::new(&scope)?;
    // docker-compose 1.29 lists profiled services too; `docker compose` v2 leaves them out.
    let services = stack.compose(&["config", "--services"]).await?;
    let services: Vec<&str> = services.lines().collect();
    assert!(services.contains(&API_SERVICE), "{services:?}");
    assert!(services.contains(&CONTROLLER_SERVICE), "{services:?}");
    assert!(
        services.len() == 2 || services.contains(&DEMO_SERVICE),
        "{services:?}"
    );

    let with_demo = stack
        .compose(&["--profile", "demo", "config", "--services"])
        .await?;
    let mut with_demo: Vec<&str> = with_demo.lines().collect();
    with_demo.sort_unstable();
    assert_eq!(with_demo, [DEMO_SERVICE, API_SERVICE, CONTROLLER_SERVICE]);

    // status-api's baseline, and the controller's maintenance hold.
    let volumes = stack.compose(&["config", "--volumes"]).await?;
    let mut volumes: Vec<&str> = volumes.lines().map(str::trim).collect();
    volumes.sort_unstable();
    assert_eq!(volumes, ["controller-state", "state"]);

    // The scope reaches status-api, and the demo carries the scope's label so that it is in scope.
    let config = stack.compose(&["--profile", "demo", "config"]).await?;
    let (key, value) = scope
        .scope()
        .split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .unwrap_or_default();
    assert!(
        config.contains(&format!("STATUS_API_SCOPE: {}", scope.scope())),
        "{config}"
    );
    assert!(config.contains(&format!("{key}: {value}")), "{config}");
    assert!(config.contains("condition: service_healthy"), "{config}");
    assert!(
        config.contains("profiles:"),
        "the demo is behind a profile: {config}"
    );
    Ok(())
}
