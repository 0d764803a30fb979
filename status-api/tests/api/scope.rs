//! What the baseline covers: the scope it was taken in (a status-api of another scope is not ready and serves
//! no drift until re-baselined), never a `--rm` container, and never, as unexpected, a container that another
//! orchestrator manages.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use test_support::{
    ensure_test_images, wait_until, StatusApiOptions, StatusApiServer, TestScope, BUSYBOX_IMAGE,
};

use crate::helpers::{answer, assert_error_shape, drift_kinds, find, spawn_api, Options, TOKEN};

/// The names of the members of a `/snapshot` answer.
fn members(snapshot: &Value) -> Vec<String> {
    snapshot["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|member| member["name"].as_str().map(ToOwned::to_owned))
        .collect()
}

async fn get(base: &str, path: &str) -> anyhow::Result<(StatusCode, Value)> {
    answer(reqwest::get(format!("{base}{path}")).await?).await
}

#[tokio::test]
async fn a_snapshot_of_another_scope_is_not_ready_and_serves_no_drift_until_rebaselined(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    // The old scope: a subset of the test's containers, marked by a second label.
    let old_scope = format!("dockstate.subset={}", scope.id());
    scope
        .run("kept", BUSYBOX_IMAGE, &["--label", &old_scope])
        .await?;
    let state = tempfile::tempdir()?;
    let state_dir = state.path().join("state");
    let token_file = state.path().join("token");
    std::fs::write(&token_file, TOKEN)?;
    let first = StatusApiServer::start(StatusApiOptions {
        state_dir: Some(state_dir.clone()),
        ..StatusApiOptions::scoped(old_scope.clone())
    })
    .await?;
    first.stop().await?;
    // Outside the old scope, inside the new one: under today's rules it would be unexpected.
    scope.run("stranger", BUSYBOX_IMAGE, &[]).await?;

    let api = StatusApiServer::launch(StatusApiOptions {
        state_dir: Some(state_dir),
        token_file: Some(token_file),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let base = api.base();
    let ready = std::sync::Mutex::new(Value::Null);
    wait_until(
        "status-api to see the engine and refuse the scope",
        Duration::from_secs(20),
        || async {
            let (status, body) = get(&base, "/ready").await?;
            let settled = status == StatusCode::SERVICE_UNAVAILABLE
                && body["checks"]["docker"]["status"] == "UP"
                && body["checks"]["events"]["status"] == "UP";
            *ready.lock().expect("not poisoned") = body;
            Ok(settled)
        },
    )
    .await?;
    let ready = ready.into_inner()?;
    assert_eq!(ready["checks"]["scope"]["status"], "DOWN", "{ready}");
    assert_eq!(ready["checks"]["snapshot"]["status"], "UP", "{ready}");
    let detail = ready["checks"]["scope"]["detail"]
        .as_str()
        .unwrap_or_default();
    for part in [
        old_scope.as_str(),
        &scope.scope(),
        "POST /snapshot",
        "--scope",
    ] {
        assert!(detail.contains(part), "`{part}` missing: {detail}");
    }

    let (code, status) = get(&base, "/status?all=true").await?;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status["ready"], false, "{status}");
    let reason = status["not_ready_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&old_scope) && reason.contains(&scope.scope()),
        "{reason}"
    );

    let (code, drift) = get(&base, "/drift").await?;
    assert_eq!(code, StatusCode::CONFLICT, "{drift}");
    assert_eq!(drift["error"], "scope_mismatch", "{drift}");
    assert_error_shape(&drift, "/drift");
    let message = drift["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&old_scope) && message.contains(&scope.scope()),
        "{message}"
    );

    // Re-baselining takes the new baseline in the configured scope, and ends the mismatch.
    let retaken = reqwest::Client::new()
        .post(format!("{base}/snapshot"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    let (code, snapshot) = answer(retaken).await?;
    assert_eq!(code, StatusCode::CREATED, "{snapshot}");
    assert_eq!(snapshot["scope"], scope.scope());
    assert_eq!(
        members(&snapshot),
        vec![scope.name("kept"), scope.name("stranger")]
    );
    api.wait_ready().await?;
    let (code, drift) = get(&base, "/drift").await?;
    assert_eq!(code, StatusCode::OK, "{drift}");
    assert_eq!(drift["in_sync"], true, "{drift}");
    api.stop().await
}

#[tokio::test]
async fn containers_started_with_rm_are_never_recorded() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("service", BUSYBOX_IMAGE, &[]).await?;
    scope.run("one-shot", BUSYBOX_IMAGE, &["--rm"]).await?;

    let api = spawn_api(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;
    let first = api.get_ok("/snapshot").await?;
    assert_eq!(members(&first), vec![scope.name("service")], "{first}");
    let status = api.get_ok("/status").await?;
    assert!(
        find(&status, &scope.name("one-shot")).is_some(),
        "it runs, and /status shows it: {status}"
    );

    let retaken = api
        .client
        .post(api.url("/snapshot"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    let (code, again) = answer(retaken).await?;
    assert_eq!(code, StatusCode::CREATED, "{again}");
    assert_eq!(members(&again), vec![scope.name("service")], "{again}");
    api.stop().await
}

#[tokio::test]
async fn containers_of_other_orchestrators_have_policy_ignore_and_are_never_unexpected(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
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
    // Started last, so that once its drift shows, the event stream has brought the others too.
    scope.run("stranger", BUSYBOX_IMAGE, &[]).await?;
    api.wait_for_drift(
        &scope.name("stranger"),
        "unexpected",
        Duration::from_secs(20),
    )
    .await?;

    let status = api.get_ok("/status").await?;
    let drift = api.get_ok("/drift").await?;
    for (suffix, label) in managed {
        let name = scope.name(suffix);
        let container = find(&status, &name).unwrap_or(&Value::Null);
        assert_eq!(container["policy"], "ignore", "{label}: {container}");
        assert_eq!(
            drift_kinds(&drift, &name),
            Vec::<String>::new(),
            "{label}: {drift}"
        );
    }
    let stranger = find(&status, &scope.name("stranger")).unwrap_or(&Value::Null);
    assert_eq!(stranger["policy"], "heal", "{stranger}");
    api.stop().await
}
