//! The long poll: at once when behind, within 100 ms of a change, after `wait` when nothing changes.

use std::time::{Duration, Instant};

use test_support::{docker, ensure_test_images, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{spawn_api, Options};

#[tokio::test]
async fn answers_within_100_ms_of_a_change() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("watched", BUSYBOX_IMAGE, &[]).await?;
    let api = spawn_api(&scope, Options::default()).await?;
    let revision = api.revision().await?;

    let poll = {
        let url = api.url(&format!("/status?all=true&since={revision}&wait=30"));
        let client = api.client.clone();
        tokio::spawn(async move {
            let body: serde_json::Value = client.get(url).send().await?.json().await?;
            anyhow::Ok((Instant::now(), body))
        })
    };
    // The poll must be waiting before the change, or it would answer at once for the wrong reason.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "the long poll answered before anything changed"
    );

    docker(&["pause", &scope.name("watched")]).await?;
    let changed = Instant::now();
    let (answered, body) = poll.await??;
    let latency = answered.saturating_duration_since(changed);
    println!("long poll answered {latency:?} after `docker pause` returned");
    assert!(
        latency < Duration::from_millis(100),
        "answered {latency:?} after the change"
    );
    assert!(body["revision"].as_u64() > Some(revision));
    api.stop().await
}

#[tokio::test]
async fn answers_after_wait_when_nothing_changes_and_at_once_when_behind() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let revision = api.revision().await?;

    let started = Instant::now();
    let body = api
        .get_ok(&format!("/status?since={revision}&wait=1"))
        .await?;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "answered after {took:?}, before `wait`"
    );
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert_eq!(body["revision"].as_u64(), Some(revision));

    let started = Instant::now();
    api.get_ok(&format!(
        "/status?since={}&wait=30",
        revision.saturating_sub(1)
    ))
    .await?;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "behind: must answer at once"
    );

    // A revision from before a restart (higher than any this server has seen) also answers at once.
    let started = Instant::now();
    api.get_ok(&format!("/status?since={}&wait=30", revision + 1000))
        .await?;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "ahead: must answer at once"
    );

    let started = Instant::now();
    api.get_ok(&format!("/status?since={revision}&wait=0"))
        .await?;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "wait=0 answers at once"
    );
    api.stop().await
}

#[tokio::test]
async fn shutdown_answers_long_polls_and_finishes_within_5_seconds() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let revision = api.revision().await?;
    let poll = {
        let url = api.url(&format!("/status?since={revision}&wait=60"));
        let client = api.client.clone();
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    api.stop().await?;
    assert!(started.elapsed() < Duration::from_secs(5));
    let status = tokio::time::timeout(Duration::from_secs(5), poll).await???;
    assert!(status.is_success(), "the long poll got {status}");
    Ok(())
}
