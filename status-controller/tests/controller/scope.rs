//! The scope and what is never the controller's: a status-api whose snapshot is of another scope, a controller
//! started for another scope than status-api's, and containers another orchestrator manages.

use std::time::Duration;

use test_support::{
    container_state, ensure_test_images, wait_until, StatusApiOptions, StatusApiServer, TestScope,
    BUSYBOX_IMAGE,
};

use crate::helpers::{init_logs, stays, wait_for_state, Controller, Options, Pair, PATIENCE};

/// How long a test watches for an action that must not come. The controller reacts to a change within
/// milliseconds, so a few seconds is plenty.
const QUIET: Duration = Duration::from_secs(3);

/// Waits until the controller's `/ready` is 503 and its `status_api` check holds for `reason`.
async fn wait_for_hold(controller: &Controller, reason: &str) -> anyhow::Result<String> {
    let detail = std::sync::Mutex::new(String::new());
    wait_until(
        &format!("the controller to hold: {reason}"),
        PATIENCE,
        || async {
            let response = reqwest::get(controller.url("/ready")).await?;
            let code = response.status().as_u16();
            let body: serde_json::Value = response.json().await?;
            let check = body["checks"]["status_api"]["detail"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let held = code == 503 && check.contains(reason);
            *detail.lock().expect("not poisoned") = check;
            Ok(held)
        },
    )
    .await?;
    Ok(detail.into_inner()?)
}

async fn still_running(name: &str) -> anyhow::Result<bool> {
    Ok(container_state(name).await?.as_deref() == Some("running"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_api_of_another_scope_than_its_snapshot_is_not_acted_on_until_rebaselined(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let old_scope = format!("dockstate.subset={}", scope.id());
    scope
        .run("kept", BUSYBOX_IMAGE, &["--label", &old_scope])
        .await?;
    let state = tempfile::tempdir()?;
    let state_dir = state.path().join("state");
    let token_file = state.path().join("token");
    std::fs::write(&token_file, "scope-test-token")?;
    StatusApiServer::start(StatusApiOptions {
        state_dir: Some(state_dir.clone()),
        ..StatusApiOptions::scoped(old_scope.clone())
    })
    .await?
    .stop()
    .await?;
    let stranger = scope.name("stranger");
    scope.run("stranger", BUSYBOX_IMAGE, &[]).await?;

    // status-api restarted with a wider scope over the old scope's snapshot.
    let api = StatusApiServer::launch(StatusApiOptions {
        state_dir: Some(state_dir),
        token_file: Some(token_file.clone()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let token_flag = token_file.to_string_lossy().into_owned();
    let controller = Controller::start(api.address, &["--token-file", &token_flag], None).await?;

    let detail = wait_for_hold(&controller, "scope").await?;
    assert!(detail.contains(&old_scope), "{detail}");
    stays("the stranger outside the old scope running", QUIET, || {
        still_running(&stranger)
    })
    .await?;
    assert!(controller.actions_for(&stranger).await?.is_empty());

    // Re-baselined: the stranger is a member now, and the controller acts again (on a new stranger).
    let retaken = reqwest::Client::new()
        .post(format!("{}/snapshot", api.base()))
        .bearer_auth("scope-test-token")
        .send()
        .await?;
    assert_eq!(retaken.status().as_u16(), 201);
    controller.wait_ready().await?;
    let late = scope.name("late");
    scope.run("late", BUSYBOX_IMAGE, &[]).await?;
    controller.wait_for_record(&late, "stop", "ok").await?;
    assert!(still_running(&stranger).await?, "a member now");
    controller.stop().await?;
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_started_for_another_scope_holds_and_acts_on_nothing() -> anyhow::Result<()> {
    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let api = StatusApiServer::start(StatusApiOptions::scoped(scope.scope())).await?;
    let stranger = scope.name("stranger");
    scope.run("stranger", BUSYBOX_IMAGE, &[]).await?;
    let other_scope = format!("dockstate.test={}-other", scope.id());

    let wrong = Controller::start(api.address, &["--scope", &other_scope], None).await?;
    let detail = wait_for_hold(&wrong, "scope_mismatch").await?;
    assert!(
        detail.contains(&other_scope) && detail.contains(&scope.scope()),
        "{detail}"
    );
    stays("the stranger running", QUIET, || still_running(&stranger)).await?;
    assert!(wrong.actions_for(&stranger).await?.is_empty());
    wrong.stop().await?;

    // With status-api's own scope the same controller acts: the hold above was the scope's doing.
    let right = Controller::start(api.address, &["--scope", &scope.scope()], None).await?;
    right.wait_for_record(&stranger, "stop", "ok").await?;
    right.stop().await?;
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_other_orchestrators_are_never_stopped() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let pair = Pair::start(&scope, Options::default()).await?;
    let managed = [
        ("compose-run", "com.docker.compose.oneoff=True"),
        ("k8s-pod", "io.kubernetes.pod.name=x"),
        ("swarm-task", "com.docker.swarm.task.id=x"),
    ];
    for (suffix, label) in managed {
        scope
            .run(suffix, BUSYBOX_IMAGE, &["--label", label])
            .await?;
    }
    let stranger = scope.name("stranger");
    scope.run("stranger", BUSYBOX_IMAGE, &[]).await?;

    // The plain stranger, started last, is stopped: the controller saw all four and acted.
    pair.controller
        .wait_for_record(&stranger, "stop", "ok")
        .await?;
    wait_for_state(&stranger, "exited").await?;
    stays("the managed containers running", QUIET, || async {
        for (suffix, _) in managed {
            if !still_running(&scope.name(suffix)).await? {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    for (suffix, label) in managed {
        let actions = pair.controller.actions_for(&scope.name(suffix)).await?;
        assert!(actions.is_empty(), "{label}: {actions:?}");
    }
    pair.stop().await
}
