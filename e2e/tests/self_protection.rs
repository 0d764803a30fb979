//! The pair never acts on itself, whatever its labels say. Both programs run in their real images, in the
//! test's scope, WITHOUT the `dockstate.policy=ignore` label the images carry, against a snapshot that holds
//! nothing: so status-api's container, the controller's container and a workload are all "unexpected". The
//! controller must stop the workload — proof that it acts — and leave both of its own containers running:
//! only the code's own-container detection (status-api's `server_container_id`, the controller's own id, both
//! read from the mount table) stands between them and a stop.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use e2e::{build_images, free_port};
use serde_json::Value;
use test_support::{
    container_state, docker, ensure_test_images, wait_until, TestScope, BUSYBOX_IMAGE,
};

async fn get_json(url: &str) -> anyhow::Result<Value> {
    Ok(reqwest::get(url).await?.error_for_status()?.json().await?)
}

#[tokio::test]
async fn the_controller_never_stops_its_own_containers() -> anyhow::Result<()> {
    build_images().await?;
    ensure_test_images().await?;
    let scope = TestScope::new();
    let network = scope.name("net");
    docker(&["network", "create", "--label", &scope.label(), &network]).await?;

    // A baseline with no members, in the container's state directory (owned by the image's user 10001).
    let state = tempfile::tempdir()?;
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o777))?;
    let snapshot = serde_json::json!({
        "format": 1,
        "taken_at": "2026-01-01T00:00:00Z",
        "scope": scope.scope(),
        "containers": [],
    });
    std::fs::write(
        state.path().join("snapshot.json"),
        serde_json::to_vec(&snapshot)?,
    )?;
    std::fs::set_permissions(
        state.path().join("snapshot.json"),
        std::fs::Permissions::from_mode(0o666),
    )?;

    let socket_gid = tokio::fs::metadata("/var/run/docker.sock")
        .await
        .map(|meta| std::os::unix::fs::MetadataExt::gid(&meta).to_string())?;
    let api_port = free_port()?;
    let controller_port = free_port()?;
    let api_name = scope.name("api");
    let scope_env = format!("STATUS_API_SCOPE={}", scope.scope());
    let state_mount = format!("{}:/var/lib/status-api", state.path().display());
    let api_publish = format!("127.0.0.1:{api_port}:8080");
    scope
        .run(
            "api",
            "dockstate/status-api:latest",
            &[
                "--label",
                "dockstate.policy=heal",
                "--network",
                &network,
                "--group-add",
                &socket_gid,
                "-v",
                "/var/run/docker.sock:/var/run/docker.sock",
                "-v",
                &state_mount,
                "-e",
                &scope_env,
                "-e",
                "STATUS_API_RESYNC_INTERVAL=1h",
                "-p",
                &api_publish,
            ],
        )
        .await?;
    let api = format!("http://127.0.0.1:{api_port}");
    wait_until(
        "status-api in its container to be ready",
        Duration::from_secs(30),
        || async {
            Ok(reqwest::get(format!("{api}/ready"))
                .await?
                .status()
                .is_success())
        },
    )
    .await?;
    let api_id = docker(&["inspect", "--format", "{{.Id}}", &api_name]).await?;
    let status = get_json(&format!("{api}/status")).await?;
    assert_eq!(
        status["server_container_id"],
        api_id.as_str(),
        "status-api knows its own container"
    );

    let controller_name = scope.name("controller");
    let api_url = format!("STATUS_CONTROLLER_API_URL=http://{api_name}:8080");
    let controller_publish = format!("127.0.0.1:{controller_port}:8000");
    scope
        .run(
            "controller",
            "dockstate/status-controller:latest",
            &[
                "--label",
                "dockstate.policy=heal",
                "--network",
                &network,
                "--group-add",
                &socket_gid,
                "-v",
                "/var/run/docker.sock:/var/run/docker.sock",
                "-e",
                &api_url,
                "-e",
                "STATUS_CONTROLLER_INTERVAL=1h",
                "-p",
                &controller_publish,
            ],
        )
        .await?;
    let controller = format!("http://127.0.0.1:{controller_port}");
    wait_until(
        "the controller in its container to be ready",
        Duration::from_secs(30),
        || async {
            Ok(reqwest::get(format!("{controller}/ready"))
                .await?
                .status()
                .is_success())
        },
    )
    .await?;

    let workload = scope.name("workload");
    scope.run("workload", BUSYBOX_IMAGE, &[]).await?;
    wait_until(
        "the unexpected workload to be stopped",
        Duration::from_secs(20),
        || async { Ok(container_state(&workload).await?.as_deref() == Some("exited")) },
    )
    .await?;

    // Both of the pair are unexpected too, and in scope, and labelled heal: they must still run, and the
    // controller's record must show it chose not to act on them.
    let drift = get_json(&format!("{api}/drift")).await?;
    let unexpected: Vec<&str> = drift["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["kind"] == "unexpected")
        .filter_map(|item| item["name"].as_str())
        .collect();
    assert!(unexpected.contains(&api_name.as_str()), "{drift}");
    assert!(unexpected.contains(&controller_name.as_str()), "{drift}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in [&api_name, &controller_name] {
        assert_eq!(
            container_state(name).await?.as_deref(),
            Some("running"),
            "{name} was touched"
        );
    }
    let actions = get_json(&format!("{controller}/actions")).await?;
    for record in actions["actions"].as_array().into_iter().flatten() {
        let on_pair = record["container"] == api_name.as_str()
            || record["container"] == controller_name.as_str();
        if on_pair {
            assert!(
                !matches!(
                    record["result"].as_str(),
                    Some("ok" | "failed" | "noop" | "gone")
                ),
                "the controller acted on its own pair: {record}"
            );
        }
    }
    Ok(())
}
