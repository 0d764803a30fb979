//! status-api and status-controller against a real Podman ([`PrivatePodman`]: `podman system service` on a
//! private socket), both with `--docker-host` on it, at `--resync-interval 1h` and `--interval 1h`: every
//! heal seen here was driven by Podman's event stream. Fails, never skips, when Podman is not installed.
//!
//! What does not apply to Podman here, and why:
//! - **a failing HEALTHCHECK → restart**: Podman runs healthchecks from systemd timers; with no systemd (a CI
//!   container, this private service) they never run and health stays `starting`. status-api reports that
//!   truthfully (`on_podman_health_is_reported_as_podman_has_it`); there is nothing to heal.
//! - **a removed member → recreate on a bridge network**: the workloads here run with `--network none` (no
//!   bridge networking in this private service); Podman's default network is `podman`, not `bridge`, and the
//!   recreate of a container on it is not proven yet. A recreate with `--network none` is
//!   (`on_podman_a_removed_member_is_recreated`): Podman 4.3's inspect writes ulimit names (`RLIMIT_NOFILE`)
//!   that its own create refuses, and the recreate request now writes them as `nofile`.

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

async fn run(
    podman: &PrivatePodman,
    scope: &TestScope,
    suffix: &str,
    image: &str,
) -> anyhow::Result<String> {
    let name = scope.name(suffix);
    podman
        .podman(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &scope.label(),
            "--network",
            "none",
            image,
        ])
        .await?;
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
        wait_until(
            &format!("/actions to hold {action} {name}"),
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
                        record["container"] == name.as_str()
                            && record["action"] == action
                            && record["result"] == "ok"
                    }))
            },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_a_removed_member_is_recreated() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let podman = podman().await?;
    let member = run(&podman, &scope, "member", BUSYBOX_IMAGE).await?;
    let old_id = podman.inspect(&member).await?["Id"].clone();
    let api = api_on(&podman, &scope).await?;
    let controller = controller_on(&podman, &api).await?;

    podman.podman(&["rm", "-f", &member]).await?;
    wait_until(
        "the member to be recreated and running",
        PATIENCE,
        || async {
            let inspect = podman.inspect(&member).await;
            Ok(inspect.is_ok_and(|inspect| {
                inspect["Id"] != old_id && inspect["State"]["Status"] == "running"
            }))
        },
    )
    .await?;
    let actions: serde_json::Value = reqwest::get(controller.url("/actions"))
        .await?
        .json()
        .await?;
    let recreated = actions["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|record| {
            record["container"] == member.as_str()
                && record["action"] == "recreate"
                && record["result"] == "ok"
        });
    assert!(recreated, "{actions}");
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
