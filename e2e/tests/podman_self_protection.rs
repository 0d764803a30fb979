//! The pair never acts on itself on Podman either. Both programs run in their real images inside a private
//! Podman service ([`PrivatePodman`]), with its socket mounted as the engine's, in the test's scope, WITHOUT
//! the `dockstate.policy=ignore` label the images carry, against a snapshot that holds nothing: status-api's
//! container, the controller's container and a workload are all "unexpected". The controller must stop the
//! workload — proof that it acts — and leave both of its own containers running. Under Podman a container's
//! cgroup is `libpod-<id>` and its `/etc/hostname` is bound from `…/<driver>-containers/<id>/userdata/`, not
//! Docker's `…/containers/<id>/`: this is what proves the own-container detection reads them.
//!
//! Both run on the host's network (Podman's default network has no name resolution without the `dnsname`
//! plugin, which the controller would need to reach status-api by name), each on a port of its own.

use std::time::Duration;

use anyhow::Context;
use e2e::{build_images, empty_baseline, free_port};
use serde_json::Value;
use test_support::{ensure_test_images, wait_until, PrivatePodman, TestScope, BUSYBOX_IMAGE};

const API_IMAGE: &str = "dockstate/status-api:latest";
const CONTROLLER_IMAGE: &str = "dockstate/status-controller:latest";

/// How long a start or a heal may take here: generous, as the machine is shared.
const PATIENCE: Duration = Duration::from_secs(30);

async fn get_json(url: &str) -> anyhow::Result<Value> {
    Ok(reqwest::get(url).await?.error_for_status()?.json().await?)
}

/// Runs `image` in `podman` as `<scope>-<suffix>`, in the scope, with `options`; returns its id.
async fn run(
    podman: &PrivatePodman,
    scope: &TestScope,
    suffix: &str,
    image: &str,
    options: &[&str],
) -> anyhow::Result<String> {
    let name = scope.name(suffix);
    let label = scope.label();
    let mut args = vec!["run", "-d", "--name", &name, "--label", &label];
    args.extend_from_slice(options);
    args.push(image);
    podman.podman(&args).await
}

/// Waits for `{base}/ready`; on a time-out the error carries the last lines of `name`'s log.
async fn wait_ready(podman: &PrivatePodman, base: &str, name: &str) -> anyhow::Result<()> {
    let ready = wait_until(&format!("{name} to be ready"), PATIENCE, || async {
        Ok(reqwest::get(format!("{base}/ready"))
            .await?
            .status()
            .is_success())
    })
    .await;
    if let Err(err) = ready {
        let logs = podman
            .podman(&["logs", "--tail", "30", name])
            .await
            .unwrap_or_default();
        return Err(err.context(format!("{name}'s log:\n{logs}")));
    }
    Ok(())
}

/// The controller's `/actions` records.
async fn actions(controller: &str) -> anyhow::Result<Vec<Value>> {
    let body = get_json(&format!("{controller}/actions")).await?;
    Ok(body["actions"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn on_podman_the_controller_never_stops_its_own_containers() -> anyhow::Result<()> {
    build_images().await?;
    ensure_test_images().await?;
    let podman = PrivatePodman::start().await?;
    for image in [API_IMAGE, CONTROLLER_IMAGE, BUSYBOX_IMAGE] {
        podman.load_image(image).await?;
    }
    let scope = TestScope::new();
    let socket = podman
        .host()
        .strip_prefix("unix://")
        .context("a unix socket")?
        .to_owned();
    let engine_mount = format!("{socket}:/var/run/docker.sock");

    // A baseline with no members, in a state directory status-api trusts: root's (the containers run as
    // root here, as they would need to on a rootful Podman socket that only root may open), 0700 and 0600.
    let (state, _) = empty_baseline(&scope)?;
    let state_mount = format!("{}:/var/lib/status-api", state.path().display());

    let (api_port, controller_port) = (free_port()?, free_port()?);
    let api_url = format!("http://127.0.0.1:{api_port}");
    let controller_url = format!("http://127.0.0.1:{controller_port}");
    let api_listen = format!("STATUS_API_LISTEN=127.0.0.1:{api_port}");
    let api_scope = format!("STATUS_API_SCOPE={}", scope.scope());
    let api_id = run(
        &podman,
        &scope,
        "api",
        API_IMAGE,
        &[
            "--label",
            "dockstate.policy=heal",
            "--user",
            "0:0",
            "--network",
            "host",
            "-v",
            &engine_mount,
            "-v",
            &state_mount,
            "-e",
            &api_listen,
            "-e",
            &api_scope,
            "-e",
            "STATUS_API_RESYNC_INTERVAL=1h",
        ],
    )
    .await?;
    let api_name = scope.name("api");
    wait_ready(&podman, &api_url, &api_name).await?;
    let status = get_json(&format!("{api_url}/status")).await?;
    assert_eq!(status["engine"]["kind"], "podman", "{status}");
    assert_eq!(
        status["server_container_id"],
        api_id.trim(),
        "status-api knows its own container under Podman"
    );

    let controller_listen = format!("STATUS_CONTROLLER_LISTEN=127.0.0.1:{controller_port}");
    let controller_api = format!("STATUS_CONTROLLER_API_URL={api_url}");
    run(
        &podman,
        &scope,
        "controller",
        CONTROLLER_IMAGE,
        &[
            "--label",
            "dockstate.policy=heal",
            "--user",
            "0:0",
            "--network",
            "host",
            "-v",
            &engine_mount,
            "-e",
            &controller_listen,
            "-e",
            &controller_api,
            "-e",
            "STATUS_CONTROLLER_INTERVAL=1h",
        ],
    )
    .await?;
    let controller_name = scope.name("controller");
    wait_ready(&podman, &controller_url, &controller_name).await?;

    // It acts: an unexpected workload is stopped.
    let workload = scope.name("workload");
    run(&podman, &scope, "workload", BUSYBOX_IMAGE, &[]).await?;
    wait_until(
        "the unexpected workload to be stopped",
        PATIENCE,
        || async { Ok(podman.inspect(&workload).await?["State"]["Status"] == "exited") },
    )
    .await?;

    // Both of the pair are unexpected too, in scope and labelled heal: the controller records why it leaves
    // each alone, and both still run.
    let expected = [
        (api_name.as_str(), "status-api's own container"),
        (
            controller_name.as_str(),
            "status-controller's own container",
        ),
    ];
    wait_until(
        "the controller to record why it leaves the pair alone",
        PATIENCE,
        || async {
            let records = actions(&controller_url).await?;
            Ok(expected.iter().all(|(name, words)| {
                records.iter().any(|record| {
                    record["container"] == *name
                        && record["reason"]
                            .as_str()
                            .is_some_and(|reason| reason.contains(words))
                })
            }))
        },
    )
    .await?;
    for (name, _) in expected {
        assert_eq!(
            podman.inspect(name).await?["State"]["Status"],
            "running",
            "{name} was touched"
        );
    }
    for record in actions(&controller_url).await? {
        if expected
            .iter()
            .any(|(name, _)| record["container"] == *name)
        {
            assert!(
                !matches!(
                    record["result"].as_str(),
                    Some("ok" | "failed" | "noop" | "gone" | "conflict")
                ),
                "the controller acted on its own pair: {record}"
            );
        }
    }
    Ok(())
}
