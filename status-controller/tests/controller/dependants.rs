//! Dependants: a member in another member's network and IPC namespaces (`--network container:X`, the
//! VPN-sidecar pattern) follows its owner. The owner serves with busybox `httpd` on 127.0.0.1, which only
//! a container in its network namespace can reach; the dependant fetches from it. After `docker rm -f` of
//! the owner (recreated under a new id) and after `docker kill` of it (started again, same id, new
//! namespace), the dependant must fetch again. A dependant replaced after its owner's recreate keeps the
//! data of its anonymous volume, as a recreate does.

use test_support::{
    docker, ensure_test_images, inspect_json, wait_until, TestScope, BUSYBOX_IMAGE, VOLUME_IMAGE,
};

use crate::helpers::{
    started_at, volume_at, wait_for_restart, wait_for_state, Options, Pair, Volumes, PATIENCE,
};

/// What the owner serves, and the page the dependant fetches.
const PAGE: &str = "served-by-the-owner";

/// Runs the owner, serving [`PAGE`] on 127.0.0.1:8080 inside its own network namespace, with a shareable
/// IPC namespace.
async fn run_owner(scope: &TestScope) -> anyhow::Result<String> {
    let serve = format!("echo {PAGE} > /tmp/index.html; exec httpd -f -p 127.0.0.1:8080 -h /tmp");
    scope
        .run_cmd(
            "vpn",
            BUSYBOX_IMAGE,
            &["--ipc", "shareable", "--stop-timeout", "1"],
            &["sh", "-c", &serve],
        )
        .await
}

/// Whether `dependant` reaches the owner's page over 127.0.0.1 now.
async fn fetches(dependant: &str) -> bool {
    docker(&["exec", dependant, "wget", "-qO-", "http://127.0.0.1:8080/"])
        .await
        .is_ok_and(|page| page.contains(PAGE))
}

/// An RFC 3339 time from JSON (a record's `time`, a `StartedAt`), comparable whatever its precision.
fn time(value: &serde_json::Value) -> anyhow::Result<chrono::DateTime<chrono::FixedOffset>> {
    let text = value.as_str().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(text).map_err(|err| anyhow::anyhow!("{text:?}: {err}"))
}

async fn wait_until_it_fetches(dependant: &str) -> anyhow::Result<()> {
    wait_until(
        &format!("{dependant} to fetch from its owner again"),
        PATIENCE,
        || async { Ok(fetches(dependant).await) },
    )
    .await
    .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependant_follows_its_owner_through_a_recreate_and_a_kill() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (owner, dependant) = (scope.name("vpn"), scope.name("app"));
    run_owner(&scope).await?;
    wait_for_state(&owner, "running").await?;
    let joined = format!("container:{owner}");
    scope
        .run(
            "app",
            BUSYBOX_IMAGE,
            &["--network", &joined, "--ipc", &joined],
        )
        .await?;
    wait_for_state(&dependant, "running").await?;
    wait_until_it_fetches(&dependant).await?;
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    // The snapshot names the owner, so a recreated owner is still the one the dependant joins.
    let snapshot: serde_json::Value =
        reqwest::get(pair.api.as_ref().map(|api| api.base()).unwrap_or_default() + "/snapshot")
            .await?
            .json()
            .await?;
    let member = snapshot["containers"]
        .as_array()
        .and_then(|members| {
            members
                .iter()
                .find(|member| member["name"] == dependant.as_str())
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(member["shares"]["network"], owner.as_str(), "{snapshot}");
    assert_eq!(member["shares"]["ipc"], owner.as_str(), "{snapshot}");

    // docker rm -f: the owner is recreated under a new id, the dependant replaced to join it.
    let old_owner_id = inspect_json(&owner).await?["Id"].clone();
    docker(&["rm", "-f", &owner]).await?;
    wait_until(
        "the owner to be recreated and the dependant to join it",
        PATIENCE,
        || async {
            let owner_now = inspect_json(&owner).await?;
            let dependant_now = inspect_json(&dependant).await?;
            let owner_id = owner_now["Id"].as_str().unwrap_or_default().to_owned();
            Ok(owner_now["Id"] != old_owner_id
                && owner_now["State"]["Status"] == "running"
                && dependant_now["State"]["Status"] == "running"
                && dependant_now["HostConfig"]["NetworkMode"] == format!("container:{owner_id}")
                && dependant_now["HostConfig"]["IpcMode"] == format!("container:{owner_id}"))
        },
    )
    .await?;
    wait_until_it_fetches(&dependant).await?;
    let recreated = pair
        .controller
        .wait_for_record(&owner, "recreate", "ok")
        .await?;
    assert_eq!(recreated["drift"], "removed");
    let waited = pair
        .controller
        .wait_for_record(&dependant, "wait", "reported")
        .await?;
    assert_eq!(waited["drift"], "orphaned", "{waited}");
    assert!(
        waited["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("waits for {owner}")),
        "{waited}"
    );
    let replaced = pair
        .controller
        .wait_for_record(&dependant, "replace", "ok")
        .await?;
    assert_eq!(replaced["drift"], "orphaned", "{replaced}");

    // docker kill: the owner is started again (same id, a new namespace), the dependant restarted after it.
    let owner_started = started_at(&owner).await?;
    let dependant_started = started_at(&dependant).await?;
    docker(&["kill", &owner]).await?;
    wait_for_restart(&owner, &owner_started).await?;
    wait_for_restart(&dependant, &dependant_started).await?;
    wait_until_it_fetches(&dependant).await?;
    let restarted = pair
        .controller
        .wait_for_record(&dependant, "restart", "ok")
        .await?;
    assert_eq!(restarted["drift"], "orphaned", "{restarted}");
    let time =
        |text: String| chrono::DateTime::parse_from_rfc3339(&text).map_err(anyhow::Error::from);
    assert!(
        time(started_at(&dependant).await?)? > time(started_at(&owner).await?)?,
        "the dependant started after its owner"
    );
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependant_in_its_owner_s_pid_namespace_is_started_after_it() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (owner, dependant) = (scope.name("init"), scope.name("worker"));
    scope.run("init", BUSYBOX_IMAGE, &[]).await?;
    wait_for_state(&owner, "running").await?;
    scope
        .run(
            "worker",
            BUSYBOX_IMAGE,
            &["--pid", &format!("container:{owner}")],
        )
        .await?;
    wait_for_state(&dependant, "running").await?;
    let pair = Pair::start(&scope, Options::default()).await?;
    let owner_started = started_at(&owner).await?;
    let dependant_started = started_at(&dependant).await?;

    // The owner's PID 1 dies, and the kernel takes every process of its PID namespace with it.
    docker(&["kill", &owner]).await?;
    wait_for_restart(&owner, &owner_started).await?;
    wait_for_restart(&dependant, &dependant_started).await?;

    pair.controller
        .wait_for_record(&owner, "start", "ok")
        .await?;
    pair.controller
        .wait_for_record(&dependant, "start", "ok")
        .await?;
    // In the owner's new PID namespace: started after it, and running.
    wait_for_state(&dependant, "running").await?;
    assert!(
        time(&started_at(&dependant).await?.into())? > time(&started_at(&owner).await?.into())?,
        "the dependant started after its owner"
    );
    let records = pair.controller.actions_for(&dependant).await?;
    assert!(
        records.iter().all(|record| record["result"] != "failed"),
        "never started before its owner ran: {records:?}"
    );
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_dependant_keeps_its_anonymous_volume_and_its_data() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let volumes = Volumes::default();
    let scope = TestScope::new();
    let (owner, dependant) = (scope.name("vpn"), scope.name("db"));
    scope.run("vpn", BUSYBOX_IMAGE, &[]).await?;
    wait_for_state(&owner, "running").await?;
    let old_id = scope
        .run(
            "db",
            VOLUME_IMAGE,
            &["--network", &format!("container:{owner}")],
        )
        .await?;
    wait_for_state(&dependant, "running").await?;
    let volume = volume_at(&dependant, "/data").await?;
    volumes.keep(&volume);
    docker(&[
        "exec",
        &dependant,
        "/bin/busybox",
        "sh",
        "-c",
        "echo rows > /data/table",
    ])
    .await?;
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    // The owner recreated: the dependant can only be replaced, and its volume must come with it.
    docker(&["rm", "-f", &owner]).await?;
    wait_until(
        "the dependant to be replaced into the recreated owner's namespace",
        PATIENCE,
        || async {
            let owner_now = inspect_json(&owner).await?;
            let dependant_now = inspect_json(&dependant).await?;
            let owner_id = owner_now["Id"].as_str().unwrap_or_default();
            Ok(owner_now["State"]["Status"] == "running"
                && dependant_now["Id"] != old_id.trim()
                && dependant_now["State"]["Status"] == "running"
                && dependant_now["HostConfig"]["NetworkMode"] == format!("container:{owner_id}"))
        },
    )
    .await?;
    let replaced = pair
        .controller
        .wait_for_record(&dependant, "replace", "ok")
        .await?;
    assert_eq!(replaced["drift"], "orphaned", "{replaced}");

    assert_eq!(
        volume_at(&dependant, "/data").await?,
        volume,
        "the same volume"
    );
    let read = docker(&["exec", &dependant, "/bin/busybox", "cat", "/data/table"]).await?;
    assert_eq!(read.trim(), "rows", "the data survived the replace");
    pair.stop().await
}
