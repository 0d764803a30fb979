//! Whether the view keeps up and the engine answers, as a client sees it: `/status` carries the event backlog
//! and lag, `/metrics` the lag of every applied event, and `/ready` turns 503 while the engine is frozen and
//! 200 again once it answers.

use std::time::Duration;

use reqwest::StatusCode;
use test_support::{
    docker, ensure_test_images, wait_until, EngineProxy, PrivateEngine, StatusApiOptions,
    StatusApiServer, TestScope, BUSYBOX_IMAGE,
};

use crate::helpers::{find, spawn_api, Options};

/// The value of an unlabelled sample (`name value`) in a Prometheus text exposition.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn status_carries_the_event_backlog_and_lag_and_metrics_the_lag_of_each_event(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("first", BUSYBOX_IMAGE, &[]).await?;
    scope.run("second", BUSYBOX_IMAGE, &[]).await?;
    let api = spawn_api(&scope, Options::default()).await?;
    let (_, metrics) = api.text("/metrics").await?;
    let before = sample(&metrics, "dockstate_event_lag_seconds_count").unwrap_or(0.0);

    for name in ["first", "second"] {
        docker(&["stop", "-t", "0", &scope.name(name)]).await?;
    }
    // The state shows at the `die`; the `stop` event after it may still be on its way. Once everything
    // received is applied, the view is not behind at all.
    wait_until(
        "both stops to be seen and applied",
        Duration::from_secs(10),
        || async {
            let status = api.get_ok("/status?all=true").await?;
            let stopped = ["first", "second"].iter().all(|name| {
                find(&status, &scope.name(name)).is_some_and(|c| c["state"] == "exited")
            });
            Ok(stopped && status["event_backlog"] == 0)
        },
    )
    .await?;
    // Caught up (the `stop` after a `die` may still have been on its way a moment ago): no backlog, no lag.
    wait_until(
        "the view to be caught up",
        Duration::from_secs(5),
        || async {
            let status = api.get_ok("/status").await?;
            Ok(status["event_backlog"] == 0 && status["event_lag_seconds"].as_f64() == Some(0.0))
        },
    )
    .await?;

    // Each stop is a kill, a die and a stop event at least; every one was applied and measured.
    let (_, metrics) = api.text("/metrics").await?;
    let count = sample(&metrics, "dockstate_event_lag_seconds_count").unwrap_or(0.0);
    assert!(
        count >= before + 4.0,
        "{count} events after {before}:\n{metrics}"
    );
    let sum = sample(&metrics, "dockstate_event_lag_seconds_sum").unwrap_or(-1.0);
    assert!(sum >= 0.0, "{metrics}");
    assert!(
        metrics.contains("# TYPE dockstate_event_lag_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "dockstate_event_lag_seconds_bucket{{le=\"+Inf\"}} {count}"
        )),
        "{metrics}"
    );
    api.stop().await
}

/// The real engine's `kill`, `die` and `start` show their effect at once, so while the engine is slow to
/// answer their inspects the view is not behind on their account: no backlog, no lag, and the controller
/// does not hold (`view_behind`). The killed one is `settling` until its inspect answers, which keeps the
/// controller off it. A `rename` tells nothing by itself and is backlog until its inspect answers.
#[tokio::test]
async fn events_that_show_their_effect_are_no_backlog_while_their_inspects_wait(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("up", BUSYBOX_IMAGE, &[]).await?;
    scope.run("down", BUSYBOX_IMAGE, &[]).await?;
    docker(&["stop", "-t", "0", &scope.name("down")]).await?;
    let proxy = EngineProxy::start().await?;
    let api = spawn_api(
        &scope,
        Options {
            docker_host: Some(proxy.docker_host()),
            ..Options::default()
        },
    )
    .await?;
    wait_until("both to be listed", Duration::from_secs(10), || async {
        let status = api.get_ok("/status?all=true").await?;
        Ok(
            find(&status, &scope.name("down")).is_some_and(|c| c["state"] == "exited")
                && find(&status, &scope.name("up")).is_some_and(|c| c["state"] == "running")
                && status["event_backlog"] == 0,
        )
    })
    .await?;

    proxy.hold_inspects();
    docker(&["kill", &scope.name("up")]).await?;
    docker(&["start", &scope.name("down")]).await?;
    // Judged inside, so that the inspects are let through below whatever happens.
    let judged = async {
        wait_until(
            "the kill and the start to show while their inspects wait",
            Duration::from_secs(10),
            || async {
                let status = api.get_ok("/status?all=true").await?;
                let up = find(&status, &scope.name("up"));
                let down = find(&status, &scope.name("down"));
                Ok(
                    up.is_some_and(|c| c["state"] == "exited" && c["settling"] == true)
                        && down.is_some_and(|c| c["state"] == "running"),
                )
            },
        )
        .await?;
        let status = api.get_ok("/status?all=true").await?;
        anyhow::ensure!(
            status["event_backlog"] == 0 && status["event_lag_seconds"].as_f64() == Some(0.0),
            "the view shows every event's effect, yet it says it is behind: {status:#}"
        );
        docker(&["rename", &scope.name("down"), &scope.name("renamed")]).await?;
        wait_until(
            "the rename to be backlog",
            Duration::from_secs(10),
            || async {
                let status = api.get_ok("/status?all=true").await?;
                Ok(status["event_backlog"] == 1)
            },
        )
        .await
    }
    .await;
    // Let the inspects through before judging, so that a failure leaves no server hanging on them.
    proxy.release_inspects();
    judged?;
    wait_until(
        "the inspects to settle it all",
        Duration::from_secs(10),
        || async {
            let status = api.get_ok("/status?all=true").await?;
            Ok(status["event_backlog"] == 0
                && find(&status, &scope.name("renamed")).is_some_and(|c| c["state"] == "running")
                && find(&status, &scope.name("up")).is_some_and(|c| c["settling"] == false))
        },
    )
    .await?;
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_engine_makes_ready_503_and_a_thawed_one_200_again() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let engine = PrivateEngine::start().await?;
    engine.load_image(BUSYBOX_IMAGE).await?;
    let label = scope.label();
    let member = scope.name("member");
    engine
        .docker(&[
            "run",
            "-d",
            "--label",
            &label,
            "--name",
            &member,
            BUSYBOX_IMAGE,
        ])
        .await?;
    let api = StatusApiServer::start(StatusApiOptions {
        docker_host: Some(engine.host()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    api.wait_ready().await?;
    let client = reqwest::Client::new();
    let ready = |client: &reqwest::Client| {
        let url = format!("{}/ready", api.base());
        let request = client.get(url).send();
        async move {
            let response = request.await?;
            let status = response.status();
            let body: serde_json::Value = response.json().await?;
            anyhow::Ok((status, body))
        }
    };

    engine.freeze()?;
    let frozen = wait_until(
        "/ready and /status to say the engine does not answer",
        Duration::from_secs(10),
        || async {
            let (status, body) = ready(&client).await?;
            let view: serde_json::Value = client
                .get(format!("{}/status", api.base()))
                .send()
                .await?
                .json()
                .await?;
            Ok(status == StatusCode::SERVICE_UNAVAILABLE
                && body["checks"]["docker"]["status"] == "DOWN"
                && view["engine_reachable"] == false
                && view["ready"] == false)
        },
    )
    .await;
    // Thaw before judging, so a failed wait never leaves a stopped dockerd behind.
    engine.thaw()?;
    frozen?;

    wait_until(
        "/ready to be 200 again once the engine answers",
        Duration::from_secs(10),
        || async { Ok(ready(&client).await?.0 == StatusCode::OK) },
    )
    .await?;
    let status: serde_json::Value = client
        .get(format!("{}/status", api.base()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(status["engine_reachable"], true, "{status}");
    assert_eq!(status["events_live"], true, "{status}");
    api.stop().await?;
    drop(engine);
    Ok(())
}
