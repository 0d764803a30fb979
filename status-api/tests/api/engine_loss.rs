//! Losing the engine: not ready while it is gone, and on return a re-list catches what changed meanwhile.

use std::time::Duration;

use reqwest::StatusCode;
use test_support::{docker, ensure_test_images, wait_until, EngineProxy, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{spawn_api, Options};

#[tokio::test]
async fn reconnects_and_relists_after_losing_the_engine() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("member", BUSYBOX_IMAGE, &[]).await?;
    let proxy = EngineProxy::start().await?;
    let api = spawn_api(
        &scope,
        Options {
            docker_host: Some(proxy.docker_host()),
            ..Options::default()
        },
    )
    .await?;
    let before = api.revision().await?;

    proxy.cut();
    wait_until(
        "status-api to notice the engine is gone",
        Duration::from_secs(5),
        || async {
            let (status, body) = api.get("/ready").await?;
            Ok(status == StatusCode::SERVICE_UNAVAILABLE
                && body["checks"]["events"]["status"] == "DOWN")
        },
    )
    .await?;
    let status = api.get_ok("/status").await?;
    assert_eq!(status["events_live"], false, "the view says it is not live");
    assert!(
        status["revision"].as_u64() > Some(before),
        "losing the stream is a change"
    );

    // What happens while status-api cannot see must still reach it.
    docker(&["stop", &scope.name("member")]).await?;
    scope.run("newcomer", BUSYBOX_IMAGE, &[]).await?;

    proxy.restore();
    api.wait_ready().await?;
    api.wait_for_drift(&scope.name("member"), "stopped", Duration::from_secs(2))
        .await?;
    api.wait_for_drift(
        &scope.name("newcomer"),
        "unexpected",
        Duration::from_secs(2),
    )
    .await?;
    assert_eq!(api.get_ok("/status").await?["events_live"], true);

    // And the event stream is live again, not just the re-list.
    docker(&["start", &scope.name("member")]).await?;
    wait_until("the restart to be seen", Duration::from_secs(1), || async {
        let drift = api.get_ok("/drift").await?;
        Ok(crate::helpers::drift_kinds(&drift, &scope.name("member")).is_empty())
    })
    .await?;
    api.stop().await
}
