//! Containers that were not in the snapshot, containers whose policy says hands off, and containers outside
//! the scope.

use std::time::Duration;

use test_support::{container_state, docker, ensure_test_images, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{
    started_at, stays, wait_for_restart, wait_for_state, Options, Pair, PATIENCE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unexpected_container_is_stopped() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let pair = Pair::start(&scope, Options::default()).await?;
    let name = scope.name("stranger");

    scope.run("stranger", BUSYBOX_IMAGE, &[]).await?;

    wait_for_state(&name, "exited").await?;
    let record = pair.controller.wait_for_record(&name, "stop", "ok").await?;
    assert_eq!(record["drift"], "unexpected");
    pair.stop().await?;
    assert_eq!(
        container_state(&name).await?.as_deref(),
        Some("exited"),
        "stopped, not removed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_unexpected_remove_it_is_removed() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let pair = Pair::start(
        &scope,
        Options {
            flags: vec!["--unexpected", "remove"],
            ..Options::default()
        },
    )
    .await?;
    let name = scope.name("stranger");

    scope.run("stranger", BUSYBOX_IMAGE, &[]).await?;

    test_support::wait_until("the stranger to be removed", PATIENCE, || async {
        Ok(container_state(&name).await?.is_none())
    })
    .await?;
    pair.controller
        .wait_for_record(&name, "remove", "ok")
        .await?;
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_ignore_and_observe_are_respected() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let policy = |value: &str| format!("dockstate.policy={value}");
    let (observe, ignore) = (policy("observe"), policy("ignore"));
    scope
        .run("observed", BUSYBOX_IMAGE, &["--label", &observe])
        .await?;
    scope
        .run("ignored", BUSYBOX_IMAGE, &["--label", &ignore])
        .await?;
    scope.run("canary", BUSYBOX_IMAGE, &[]).await?;
    let (observed, ignored, canary) = (
        scope.name("observed"),
        scope.name("ignored"),
        scope.name("canary"),
    );
    for name in [&observed, &ignored, &canary] {
        wait_for_state(name, "running").await?;
    }
    let pair = Pair::start(&scope, Options::default()).await?;

    docker(&["stop", &observed, &ignored]).await?;
    scope
        .run("stranger-observed", BUSYBOX_IMAGE, &["--label", &observe])
        .await?;
    scope
        .run("stranger-ignored", BUSYBOX_IMAGE, &["--label", &ignore])
        .await?;
    let (stranger_observed, stranger_ignored) = (
        scope.name("stranger-observed"),
        scope.name("stranger-ignored"),
    );
    pair.controller
        .wait_for_record(&observed, "report", "reported")
        .await?;
    pair.controller
        .wait_for_record(&stranger_observed, "report", "reported")
        .await?;
    // The canary proves the controller has planned on a view that shows all of the above.
    let before = started_at(&canary).await?;
    docker(&["stop", &canary]).await?;
    wait_for_restart(&canary, &before).await?;

    stays(
        "the observed and ignored containers to stay as they are",
        Duration::from_millis(500),
        async || {
            Ok(
                container_state(&observed).await?.as_deref() == Some("exited")
                    && container_state(&ignored).await?.as_deref() == Some("exited")
                    && container_state(&stranger_observed).await?.as_deref() == Some("running")
                    && container_state(&stranger_ignored).await?.as_deref() == Some("running"),
            )
        },
    )
    .await?;
    for name in [&ignored, &stranger_ignored] {
        let records = pair.controller.actions_for(name).await?;
        assert!(
            records.is_empty(),
            "ignore means not even reported: {records:?}"
        );
    }
    for name in [&observed, &stranger_observed] {
        let records = pair.controller.actions_for(name).await?;
        assert!(
            records.iter().all(|record| record["result"] == "reported"),
            "observe means report only: {records:?}"
        );
        assert_eq!(
            records.len(),
            1,
            "reported once, not once per pass: {records:?}"
        );
    }
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_outside_the_scope_are_untouched() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let outside = TestScope::new();
    scope.run("canary", BUSYBOX_IMAGE, &[]).await?;
    outside.run("member-elsewhere", BUSYBOX_IMAGE, &[]).await?;
    let (canary, elsewhere) = (scope.name("canary"), outside.name("member-elsewhere"));
    wait_for_state(&canary, "running").await?;
    wait_for_state(&elsewhere, "running").await?;
    let pair = Pair::start(&scope, Options::default()).await?;

    docker(&["stop", &elsewhere]).await?;
    outside
        .run("stranger-elsewhere", BUSYBOX_IMAGE, &[])
        .await?;
    let stranger = outside.name("stranger-elsewhere");
    let before = started_at(&canary).await?;
    docker(&["stop", &canary]).await?;
    wait_for_restart(&canary, &before).await?;

    stays(
        "the containers outside the scope to stay as they are",
        Duration::from_millis(500),
        async || {
            Ok(
                container_state(&elsewhere).await?.as_deref() == Some("exited")
                    && container_state(&stranger).await?.as_deref() == Some("running"),
            )
        },
    )
    .await?;
    let actions = pair.controller.actions().await?.to_string();
    assert!(
        !actions.contains(outside.id()),
        "nothing about them at all: {actions}"
    );
    pair.stop().await
}
