//! How each exit came about, as `/status` tells it from the order of the engine's events: a process that ends
//! by itself is `natural`, `docker stop` and `docker kill` are `requested` (a `kill` event comes first), the
//! OOM killer is `oom`; with each container's restart policy beside it. And what `/drift` makes of a member
//! that exits 0 by itself (`completed`) or on request (`stopped`).

use std::time::Duration;

use serde_json::Value;
use test_support::{docker, ensure_test_images, wait_until, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{drift_kinds, find, spawn_api, Options};

/// Generous: an OOM kill takes the engine a moment, and the machine is shared.
const DEADLINE: Duration = Duration::from_secs(20);

/// Waits until `/status?all=true` shows `name` exited with `code` and `cause`; answers its status.
async fn wait_for_exit(
    api: &crate::helpers::TestApi,
    name: &str,
    code: i64,
    cause: &str,
) -> anyhow::Result<Value> {
    let last = std::sync::Mutex::new(Value::Null);
    let outcome = wait_until(
        &format!("{name} to exit {code}, {cause}"),
        DEADLINE,
        || async {
            let status = api.get_ok("/status?all=true").await?;
            let container = find(&status, name).cloned().unwrap_or(Value::Null);
            let done = container["state"] == "exited"
                && container["exit_code"] == code
                && container["exit_cause"] == cause;
            *last.lock().expect("not poisoned") = container;
            Ok(done)
        },
    )
    .await;
    let container = last.into_inner()?;
    outcome.map_err(|err| err.context(format!("last seen: {container}")))?;
    Ok(container)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_how_each_exit_came_about() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    api.wait_ready().await?;

    scope
        .run_cmd(
            "job",
            BUSYBOX_IMAGE,
            &["--restart", "on-failure"],
            &["sh", "-c", "sleep 1; exit 0"],
        )
        .await?;
    scope.run("stopped", BUSYBOX_IMAGE, &[]).await?;
    scope
        .run("killed", BUSYBOX_IMAGE, &["--restart", "unless-stopped"])
        .await?;
    scope
        .run_cmd(
            "oom",
            BUSYBOX_IMAGE,
            &["--memory", "16m", "--memory-swap", "16m"],
            &["tail", "/dev/zero"],
        )
        .await?;
    docker(&["stop", &scope.name("stopped")]).await?;
    docker(&["kill", &scope.name("killed")]).await?;

    let job = wait_for_exit(&api, &scope.name("job"), 0, "natural").await?;
    assert_eq!(job["restart_policy"], "on-failure", "{job}");
    // The test image stops at once on SIGTERM, with code 0: only the events tell it from a job's end.
    let stopped = wait_for_exit(&api, &scope.name("stopped"), 0, "requested").await?;
    assert_eq!(stopped["restart_policy"], "no", "{stopped}");
    let killed = wait_for_exit(&api, &scope.name("killed"), 137, "requested").await?;
    assert_eq!(killed["restart_policy"], "unless-stopped", "{killed}");
    wait_for_exit(&api, &scope.name("oom"), 137, "oom").await?;

    // Started again: running, no exit to tell of.
    docker(&["start", &scope.name("stopped")]).await?;
    wait_until("stopped to run again", DEADLINE, || async {
        let status = api.get_ok("/status").await?;
        Ok(find(&status, &scope.name("stopped"))
            .is_some_and(|c| c["state"] == "running" && c["exit_cause"].is_null()))
    })
    .await?;
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_exits_0_by_itself_is_completed_and_one_stopped_with_code_0_is_stopped(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    // Both run when the baseline is taken; the job ends when the test says.
    scope
        .run_cmd(
            "job",
            BUSYBOX_IMAGE,
            &[],
            &[
                "sh",
                "-c",
                "until [ -f /tmp/done ]; do sleep 1; done; exit 0",
            ],
        )
        .await?;
    scope.run("service", BUSYBOX_IMAGE, &[]).await?;
    let api = spawn_api(&scope, Options::default()).await?;
    api.wait_ready().await?;
    let (job, service) = (scope.name("job"), scope.name("service"));

    docker(&["exec", &job, "touch", "/tmp/done"]).await?;
    docker(&["stop", &service]).await?;

    api.wait_for_drift(&job, "completed", DEADLINE).await?;
    api.wait_for_drift(&service, "stopped", DEADLINE).await?;
    let drift = api.get_ok("/drift").await?;
    assert_eq!(drift_kinds(&drift, &job), vec!["completed"], "{drift}");
    assert_eq!(drift_kinds(&drift, &service), vec!["stopped"], "{drift}");
    assert_eq!(drift["in_sync"], false);
    let metrics = api.text("/metrics").await?.1;
    assert!(
        metrics.contains("dockstate_drift{kind=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dockstate_drift{kind=\"stopped\"} 1"),
        "{metrics}"
    );
    api.stop().await
}
