//! status-api and status-controller against a real Podman ([`PrivatePodman`]: `podman system service` on a
//! private socket), both with `--docker-host` on it, at `--resync-interval 1h` and `--interval 1h`: every
//! heal seen here was driven by Podman's event stream. Fails, never skips, when Podman is not installed.
//!
//! The workloads run on Podman's default network (`podman`, which Docker calls `bridge`), on that and a
//! network of the test's own with an alias, or with `--network none`, and each is recreated as it was.
//!
//! What does not apply to Podman here, and why:
//! - **a HEALTHCHECK that fails on its own schedule**: Podman runs healthchecks from systemd timers; with no
//!   systemd (a CI container, this private service) they never run by themselves and health stays
//!   `starting`, which status-api reports truthfully (`on_podman_health_is_reported_as_podman_has_it`). The
//!   check is run here with `podman healthcheck run`, as a systemd timer would run it, and an unhealthy
//!   member is restarted (`on_podman_an_unhealthy_member_is_restarted`).

mod fidelity;

use std::process::Output;
use std::time::Duration;

use anyhow::Context;
use test_support::{
    ensure_test_images, wait_until, PrivatePodman, StatusApiOptions, StatusApiServer,
    StatusControllerServer, TestScope, BUSYBOX_IMAGE, HEALTH_IMAGE,
};
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_status-controller");

/// How long a heal may take here: generous, as the machine is shared; the event stream makes it fast.
const PATIENCE: Duration = Duration::from_secs(20);

async fn state(podman: &PrivatePodman, name: &str) -> anyhow::Result<String> {
    Ok(podman.inspect(name).await?["State"]["Status"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Runs a container of `scope` named `<scope>-<suffix>` on Podman's default network.
async fn run(
    podman: &PrivatePodman,
    scope: &TestScope,
    suffix: &str,
    image: &str,
) -> anyhow::Result<String> {
    run_with(podman, scope, suffix, &[], image).await
}

/// [`run`] with more `podman run` options (`--network`, `--network-alias`, ...).
async fn run_with(
    podman: &PrivatePodman,
    scope: &TestScope,
    suffix: &str,
    options: &[&str],
    image: &str,
) -> anyhow::Result<String> {
    run_command(podman, scope, suffix, options, image, &[]).await
}

/// [`run_with`] and a command after the image.
async fn run_command(
    podman: &PrivatePodman,
    scope: &TestScope,
    suffix: &str,
    options: &[&str],
    image: &str,
    command: &[&str],
) -> anyhow::Result<String> {
    let name = scope.name(suffix);
    let label = scope.label();
    let mut args = vec!["run", "-d", "--name", &name, "--label", &label];
    args.extend_from_slice(options);
    args.push(image);
    args.extend_from_slice(command);
    podman.podman(&args).await?;
    Ok(name)
}

async fn wait_state(podman: &PrivatePodman, name: &str, wanted: &str) -> anyhow::Result<Duration> {
    wait_until(&format!("{name} to be {wanted}"), PATIENCE, || async {
        Ok(state(podman, name).await? == wanted)
    })
    .await
}

/// A private Podman with the test images.
async fn podman() -> anyhow::Result<PrivatePodman> {
    ensure_test_images().await?;
    let podman = PrivatePodman::start().await?;
    podman.load_image(BUSYBOX_IMAGE).await?;
    podman.load_image(HEALTH_IMAGE).await?;
    Ok(podman)
}

/// status-api on `podman` over `scope` (its snapshot is what runs there now), ready, with a token.
async fn api_on(podman: &PrivatePodman, scope: &TestScope) -> anyhow::Result<StatusApiServer> {
    StatusApiServer::start(StatusApiOptions {
        docker_host: Some(podman.host()),
        token: Some("podman-test-token".to_owned()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await
    .context("status-api on Podman becomes ready")
}

/// A status-controller in this process on `podman`, against `api`, at `--interval 1h`, with `api`'s token;
/// stopped on drop.
async fn controller_on(
    podman: &PrivatePodman,
    api: &StatusApiServer,
) -> anyhow::Result<StatusControllerServer> {
    StatusControllerServer::start(api, &["--docker-host", &podman.host()]).await
}

/// Waits until the controller's `/actions` records `action` on `container` with result `ok`.
async fn wait_action(
    controller: &StatusControllerServer,
    container: &str,
    action: &str,
) -> anyhow::Result<()> {
    let recorded = wait_until(
        &format!("/actions to hold {action} {container}"),
        PATIENCE,
        || async {
            let actions: serde_json::Value = reqwest::get(controller.url("/actions"))
                .await?
                .json()
                .await?;
            Ok(actions["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|record| {
                    record["container"] == container
                        && record["action"] == action
                        && record["result"] == "ok"
                }))
        },
    )
    .await;
    if let Err(err) = recorded {
        let actions = reqwest::get(controller.url("/actions"))
            .await?
            .text()
            .await?;
        anyhow::bail!("{err}; the controller's actions: {actions}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_stopped_killed_and_paused_members_are_healed_and_an_unexpected_one_stopped(
) -> anyhow::Result<()> {
    let scope = TestScope::new();
    let podman = podman().await?;
    let stopped = run(&podman, &scope, "stopped", BUSYBOX_IMAGE).await?;
    let killed = run(&podman, &scope, "killed", BUSYBOX_IMAGE).await?;
    let paused = run(&podman, &scope, "paused", BUSYBOX_IMAGE).await?;
    let api = api_on(&podman, &scope).await?;
    let controller = controller_on(&podman, &api).await?;

    // `podman stop`: its `died` reaches status-api through the stream (not the 1 h re-list), and it runs again.
    podman.podman(&["stop", "-t", "1", &stopped]).await?;
    let took = wait_state(&podman, &stopped, "running").await?;
    podman.podman(&["kill", &killed]).await?;
    wait_state(&podman, &killed, "running").await?;
    podman.podman(&["pause", &paused]).await?;
    wait_state(&podman, &paused, "running").await?;
    println!("podman stop → running again after {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "healed by the event stream, not a timer: {took:?}"
    );

    // An unexpected container in scope: stopped.
    let stranger = run(&podman, &scope, "stranger", BUSYBOX_IMAGE).await?;
    wait_state(&podman, &stranger, "exited").await?;

    // Each action as /actions records it (the stop is recorded when the engine's answer is in).
    for (name, action) in [
        (&stopped, "start"),
        (&killed, "start"),
        (&paused, "unpause"),
        (&stranger, "stop"),
    ] {
        wait_action(&controller, name, action).await?;
    }
    Ok(())
}

/// The networks a container is on, each with the aliases it was given (not the engine's short-id alias).
async fn networks_of(
    podman: &PrivatePodman,
    name: &str,
) -> anyhow::Result<(String, Vec<(String, Vec<String>)>)> {
    let inspect = podman.inspect(name).await?;
    let short_id = inspect["Id"]
        .as_str()
        .unwrap_or_default()
        .get(..12)
        .unwrap_or_default()
        .to_owned();
    let mode = inspect["HostConfig"]["NetworkMode"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut networks: Vec<(String, Vec<String>)> = inspect["NetworkSettings"]["Networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(network, endpoint)| {
            let mut aliases: Vec<String> = endpoint["Aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|alias| alias.as_str())
                .filter(|alias| *alias != short_id)
                .map(str::to_owned)
                .collect();
            aliases.sort();
            (network.clone(), aliases)
        })
        .collect();
    networks.sort();
    Ok((mode, networks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_removed_members_are_recreated_on_their_networks() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let podman = podman().await?;
    let network = scope.name("apps");
    podman.podman(&["network", "create", &network]).await?;
    let on_default = run(&podman, &scope, "default", BUSYBOX_IMAGE).await?;
    let on_network = run_with(
        &podman,
        &scope,
        "aliased",
        &[
            "--network",
            "podman",
            "--network",
            &network,
            "--network-alias",
            "web",
        ],
        BUSYBOX_IMAGE,
    )
    .await?;
    let isolated = run_with(
        &podman,
        &scope,
        "isolated",
        &["--network", "none"],
        BUSYBOX_IMAGE,
    )
    .await?;
    let members = [&on_default, &on_network, &isolated];
    let mut before = Vec::new();
    for member in members {
        let id = podman.inspect(member).await?["Id"].clone();
        before.push((id, networks_of(&podman, member).await?));
    }
    assert_eq!(
        before[0].1 .1,
        vec![("podman".to_owned(), vec![])],
        "Podman's default network is `podman`"
    );
    let mut expected = vec![network.as_str(), "podman"];
    expected.sort_unstable();
    let aliased = &before[1].1 .1;
    let names: Vec<&str> = aliased.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, expected, "on two networks");
    assert!(
        aliased.contains(&(network.clone(), vec!["web".to_owned()])),
        "{aliased:?}"
    );
    assert_eq!(before[2].1 .0, "none");
    let api = api_on(&podman, &scope).await?;
    let controller = controller_on(&podman, &api).await?;

    for member in members {
        podman.podman(&["rm", "-f", member]).await?;
    }
    for (member, (old_id, networks)) in members.into_iter().zip(&before) {
        wait_until(
            &format!("{member} to be recreated and running"),
            PATIENCE,
            || async {
                let inspect = podman.inspect(member).await;
                Ok(inspect.is_ok_and(|inspect| {
                    inspect["Id"] != *old_id && inspect["State"]["Status"] == "running"
                }))
            },
        )
        .await?;
        assert_eq!(
            &networks_of(&podman, member).await?,
            networks,
            "{member} is on the networks it was on, with its aliases"
        );
        wait_action(&controller, member, "recreate").await?;
    }
    Ok(())
}

async fn once(api: &StatusApiServer, podman: &PrivatePodman) -> anyhow::Result<Output> {
    Ok(Command::new(BINARY)
        .args([
            "--once",
            "--dry-run",
            "--api-url",
            &format!("http://{}", api.address),
        ])
        .args(["--docker-host", &podman.host()])
        .env_remove("STATUS_CONTROLLER_DRY_RUN")
        .kill_on_drop(true)
        .output()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_once_dry_run_sees_a_stopped_member_at_once() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let podman = podman().await?;
    let web = run(&podman, &scope, "web", BUSYBOX_IMAGE).await?;
    let api = api_on(&podman, &scope).await?;
    let in_sync = once(&api, &podman).await?;
    assert_eq!(
        in_sync.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&in_sync.stdout)
    );

    podman.podman(&["stop", "-t", "1", &web]).await?;
    // Within a second (the event), where the re-list would have taken an hour.
    wait_until(
        "--once --dry-run to see the drift",
        Duration::from_secs(2),
        || async { Ok(once(&api, &podman).await?.status.code() == Some(2)) },
    )
    .await?;
    let drift = once(&api, &podman).await?;
    let table = String::from_utf8_lossy(&drift.stdout);
    assert!(table.contains(&web), "{table}");
    assert_eq!(
        state(&podman, &web).await?,
        "exited",
        "dry run: nothing changed"
    );
    Ok(())
}

#[tokio::test]
async fn on_podman_health_is_reported_as_podman_has_it() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let podman = podman().await?;
    let checked = run(&podman, &scope, "checked", HEALTH_IMAGE).await?;
    let api = api_on(&podman, &scope).await?;
    // Without systemd Podman never runs the check: its health stays `starting`, and so does /status's.
    let podman_health = podman.inspect(&checked).await?["State"]["Health"]["Status"].clone();
    let status: serde_json::Value = reqwest::get(format!("{}/status/{checked}", api.base()))
        .await?
        .json()
        .await?;
    assert_eq!(status["health"], podman_health, "{status}");
    assert_eq!(
        status["health"], "starting",
        "no systemd here, so no healthcheck runs"
    );
    Ok(())
}

/// Runs the container's healthcheck once, as Podman's systemd timer would.
async fn run_healthcheck(podman: &PrivatePodman, name: &str) -> anyhow::Result<String> {
    // `healthcheck run` exits 1 when the check fails: what counts is the state it leaves.
    let _ = podman.podman(&["healthcheck", "run", name]).await;
    Ok(podman.inspect(name).await?["State"]["Health"]["Status"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_an_unhealthy_member_is_restarted() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let podman = podman().await?;
    let checked = run(&podman, &scope, "checked", HEALTH_IMAGE).await?;
    wait_until("the member to be healthy", PATIENCE, || async {
        Ok(run_healthcheck(&podman, &checked).await? == "healthy")
    })
    .await?;
    let started = podman.inspect(&checked).await?["State"]["StartedAt"].clone();
    let api = api_on(&podman, &scope).await?;
    let controller = controller_on(&podman, &api).await?;

    // The check fails from now on; the run that finds it so sends Podman's `health_status` event.
    podman
        .podman(&["exec", &checked, "/bin/busybox", "rm", "/tmp/healthy"])
        .await?;
    wait_until("the member to be unhealthy", PATIENCE, || async {
        Ok(run_healthcheck(&podman, &checked).await? == "unhealthy")
    })
    .await?;
    wait_action(&controller, &checked, "restart").await?;
    let inspect = podman.inspect(&checked).await?;
    assert_eq!(inspect["State"]["Status"], "running", "{inspect}");
    assert_ne!(
        inspect["State"]["StartedAt"], started,
        "restarted: it started again"
    );
    Ok(())
}
