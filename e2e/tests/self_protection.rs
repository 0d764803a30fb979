//! The pair never acts on itself, whatever its labels say. Both programs run in their real images, in the
//! test's scope, WITHOUT the `dockstate.policy=ignore` label the images carry, against a snapshot that holds
//! nothing: so status-api's container, the controller's container and a workload are all "unexpected". The
//! controller must stop the workload — proof that it acts — and leave both of its own containers running:
//! only the code's own-container detection (status-api's `server_container_id`, the controller's own id, both
//! read from `/proc/self/cgroup`, then the mount table) stands between them and a stop.
//!
//! The second case runs the controller inside another container's network namespace
//! (`--network container:X`, as a cri-dockerd pod's containers share their pause container's): there
//! `/etc/hostname` and `/etc/resolv.conf` are X's, so a detection that trusts those mounts takes X for the
//! controller's own container, protects X, and stops the controller. X itself is unexpected too; stopping it
//! would cut the controller's network, so it is protected as the namespace owner of one of the pair.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use e2e::{build_images, empty_baseline, free_port};
use serde_json::Value;
use test_support::{
    container_state, docker, ensure_test_images, wait_until, TestScope, BUSYBOX_IMAGE,
};

const API_IMAGE: &str = "dockstate/status-api:latest";
const CONTROLLER_IMAGE: &str = "dockstate/status-controller:latest";
/// The numeric user the images run as.
const IMAGE_USER: u32 = 10001;

async fn get_json(url: &str) -> anyhow::Result<Value> {
    Ok(reqwest::get(url).await?.error_for_status()?.json().await?)
}

/// Waits for `{base}/ready`; on a time-out the error carries the last lines of `container`'s log.
async fn wait_ready(what: &str, base: &str, container: &str) -> anyhow::Result<()> {
    let ready = wait_until(what, Duration::from_secs(30), || async {
        Ok(reqwest::get(format!("{base}/ready"))
            .await?
            .status()
            .is_success())
    })
    .await;
    if let Err(e) = ready {
        let logs = docker(&["logs", "--tail", "30", container])
            .await
            .unwrap_or_default();
        let state = container_state(container).await.ok().flatten();
        return Err(e.context(format!("{container} is {state:?}; its log:\n{logs}")));
    }
    Ok(())
}

/// The group that owns the engine's socket, for `--group-add`.
async fn socket_gid() -> anyhow::Result<String> {
    let meta = tokio::fs::metadata("/var/run/docker.sock").await?;
    Ok(std::os::unix::fs::MetadataExt::gid(&meta).to_string())
}

/// status-api running in its image on `network`, in the test's scope, over a baseline with no members.
struct StatusApi {
    name: String,
    url: String,
    /// The state directory, kept for as long as the container runs.
    _state: tempfile::TempDir,
}

impl StatusApi {
    async fn start(scope: &TestScope, network: &str) -> anyhow::Result<Self> {
        // A baseline with no members, in a state directory status-api trusts: owned by the user it runs as,
        // writable by nobody else (0700, the file 0600). As root the test gives both to the image's user
        // 10001; otherwise the container runs as the test's own user, who owns them already.
        let (state, file) = empty_baseline(scope)?;
        let owner = std::fs::metadata(state.path())?.uid();
        let user = if owner == 0 {
            for path in [state.path(), file.as_path()] {
                std::os::unix::fs::chown(path, Some(IMAGE_USER), Some(IMAGE_USER))?;
            }
            format!("{IMAGE_USER}:{IMAGE_USER}")
        } else {
            format!("{owner}:{}", std::fs::metadata(state.path())?.gid())
        };

        let port = free_port()?;
        let gid = socket_gid().await?;
        let scope_env = format!("STATUS_API_SCOPE={}", scope.scope());
        // The controller calls it by its container name, which it must answer to.
        let hosts_env = format!("STATUS_API_ALLOWED_HOSTS={}", scope.name("api"));
        let state_mount = format!("{}:/var/lib/status-api", state.path().display());
        let publish = format!("127.0.0.1:{port}:8080");
        let id = scope
            .run(
                "api",
                API_IMAGE,
                &[
                    "--label",
                    "dockstate.policy=heal",
                    "--user",
                    &user,
                    "--network",
                    network,
                    "--group-add",
                    &gid,
                    "-v",
                    "/var/run/docker.sock:/var/run/docker.sock",
                    "-v",
                    &state_mount,
                    "-e",
                    &scope_env,
                    "-e",
                    &hosts_env,
                    "-e",
                    "STATUS_API_RESYNC_INTERVAL=1h",
                    "-p",
                    &publish,
                ],
            )
            .await?;
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(
            "status-api in its container to be ready",
            &url,
            &scope.name("api"),
        )
        .await?;
        let status = get_json(&format!("{url}/status")).await?;
        assert_eq!(
            status["server_container_id"],
            id.trim(),
            "status-api knows its own container"
        );
        Ok(Self {
            name: scope.name("api"),
            url,
            _state: state,
        })
    }
}

/// Starts the controller in its image, in the test's scope, with `network_args` deciding its network.
async fn start_controller(
    scope: &TestScope,
    api: &StatusApi,
    network_args: &[&str],
) -> anyhow::Result<String> {
    let gid = socket_gid().await?;
    let api_url = format!("STATUS_CONTROLLER_API_URL=http://{}:8080", api.name);
    let args = [
        &[
            "--label",
            "dockstate.policy=heal",
            "--group-add",
            &gid,
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-e",
            &api_url,
            "-e",
            "STATUS_CONTROLLER_INTERVAL=1h",
        ][..],
        network_args,
    ]
    .concat();
    scope.run("controller", CONTROLLER_IMAGE, &args).await?;
    Ok(scope.name("controller"))
}

/// Starts an unexpected workload and waits until the controller has stopped it: proof that it acts.
async fn an_unexpected_workload_is_stopped(scope: &TestScope) -> anyhow::Result<()> {
    let workload = scope.name("workload");
    scope.run("workload", BUSYBOX_IMAGE, &[]).await?;
    wait_until(
        "the unexpected workload to be stopped",
        Duration::from_secs(20),
        || async { Ok(container_state(&workload).await?.as_deref() == Some("exited")) },
    )
    .await
    .map_err(|e| e.context(format!("the test's containers: {}", states(scope))))?;
    Ok(())
}

/// `name state` of every container in the test's scope, for a failure message.
fn states(scope: &TestScope) -> String {
    let filter = format!("label={}", scope.label());
    std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.Names}} {{.State}};",
        ])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).replace('\n', " "))
        .unwrap_or_default()
}

/// The controller's `/actions` records.
async fn actions(controller: &str) -> anyhow::Result<Vec<Value>> {
    let body = get_json(&format!("{controller}/actions")).await?;
    Ok(body["actions"].as_array().cloned().unwrap_or_default())
}

/// Waits until `/actions` holds a record for each `(container, words in its reason)`: the plan has seen them
/// and chosen not to act.
async fn wait_for_reasons(controller: &str, expected: &[(&str, &str)]) -> anyhow::Result<()> {
    wait_until(
        "the controller to record why it leaves the pair alone",
        Duration::from_secs(20),
        || async {
            let records = actions(controller).await?;
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
    .await
    .map_err(|e| e.context(format!("{expected:?}")))?;
    Ok(())
}

/// Every container in `names` still runs, and no record shows an action carried out on one of them.
async fn untouched(controller: &str, names: &[&str]) -> anyhow::Result<()> {
    for name in names {
        assert_eq!(
            container_state(name).await?.as_deref(),
            Some("running"),
            "{name} was touched"
        );
    }
    for record in actions(controller).await? {
        let on_protected = names.iter().any(|name| record["container"] == *name);
        if on_protected {
            assert!(
                !matches!(
                    record["result"].as_str(),
                    Some("ok" | "failed" | "noop" | "gone" | "conflict")
                ),
                "the controller acted on a protected container: {record}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_controller_never_stops_its_own_containers() -> anyhow::Result<()> {
    build_images().await?;
    ensure_test_images().await?;
    let scope = TestScope::new();
    let network = scope.name("net");
    docker(&["network", "create", "--label", &scope.label(), &network]).await?;
    let api = StatusApi::start(&scope, &network).await?;

    let controller_port = free_port()?;
    let controller_publish = format!("127.0.0.1:{controller_port}:8000");
    let controller_name = start_controller(
        &scope,
        &api,
        &["--network", &network, "-p", &controller_publish],
    )
    .await?;
    let controller = format!("http://127.0.0.1:{controller_port}");
    wait_ready(
        "the controller in its container to be ready",
        &controller,
        &controller_name,
    )
    .await?;

    an_unexpected_workload_is_stopped(&scope).await?;

    // Both of the pair are unexpected too, and in scope, and labelled heal: they must still run, and the
    // controller's record must show it chose not to act on them.
    let drift = get_json(&format!("{}/drift", api.url)).await?;
    let unexpected: Vec<&str> = drift["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["kind"] == "unexpected")
        .filter_map(|item| item["name"].as_str())
        .collect();
    assert!(unexpected.contains(&api.name.as_str()), "{drift}");
    assert!(unexpected.contains(&controller_name.as_str()), "{drift}");
    wait_for_reasons(
        &controller,
        &[
            (&api.name, "status-api's own container"),
            (&controller_name, "status-controller's own container"),
        ],
    )
    .await?;
    untouched(&controller, &[&api.name, &controller_name]).await
}

#[tokio::test]
async fn the_controller_in_another_container_s_network_namespace_knows_itself() -> anyhow::Result<()>
{
    build_images().await?;
    ensure_test_images().await?;
    let scope = TestScope::new();
    let network = scope.name("net");
    docker(&["network", "create", "--label", &scope.label(), &network]).await?;
    let api = StatusApi::start(&scope, &network).await?;

    // X: an unexpected busybox on the test network, whose network namespace the controller joins. The
    // controller's port is published on X, since a container that joins another's network cannot publish.
    let controller_port = free_port()?;
    let controller_publish = format!("127.0.0.1:{controller_port}:8000");
    let netns_owner = scope.name("netns");
    scope
        .run(
            "netns",
            BUSYBOX_IMAGE,
            &["--network", &network, "-p", &controller_publish],
        )
        .await?;
    let join = format!("container:{netns_owner}");
    let controller_name = start_controller(&scope, &api, &["--network", &join]).await?;
    let controller = format!("http://127.0.0.1:{controller_port}");
    wait_ready(
        "the controller in X's network namespace to be ready",
        &controller,
        &controller_name,
    )
    .await?;

    an_unexpected_workload_is_stopped(&scope).await?;

    wait_for_reasons(
        &controller,
        &[
            (&api.name, "status-api's own container"),
            (&controller_name, "status-controller's own container"),
            (&netns_owner, "network namespace"),
        ],
    )
    .await?;
    untouched(&controller, &[&api.name, &controller_name, &netns_owner]).await
}
