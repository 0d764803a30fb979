//! A crash-looping container gets a few starts a minute, not dozens; one that keeps failing is quarantined,
//! and that shows in /actions and the metrics.

use std::time::{Duration, SystemTime};

use shared::backoff::BackoffPolicy;
use status_controller::backoff::HealLimits;
use test_support::{
    container_state, docker, ensure_test_images, wait_until, TestScope, BUSYBOX_IMAGE,
};

use crate::helpers::{
    assert_mentions, engine_events, stays, wait_for_state, Options, Pair, PATIENCE,
};

/// Runs for good the first time (so the snapshot sees it running), then dies 0.3 s after every later start.
const CRASHES_AFTER_THE_FIRST_RUN: &str =
    "if [ -e /tmp/ran ]; then sleep 0.3; exit 1; fi; touch /tmp/ran; trap 'exit 0' TERM; sleep 3600 & wait";

/// Quarantined after 3 quick attempts, for an hour.
pub fn quick_quarantine() -> HealLimits {
    HealLimits {
        backoff: BackoffPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            reset_after: Duration::from_secs(60),
        },
        quarantine_after: 3,
        quarantine_for: Duration::from_secs(3600),
    }
}

/// Runs the crash looper in `scope` and waits until it runs; answers its name and id.
pub async fn run_crash_looper(scope: &TestScope) -> anyhow::Result<(String, String)> {
    let id = scope
        .run_cmd(
            "looper",
            BUSYBOX_IMAGE,
            &[],
            &["/bin/busybox", "sh", "-c", CRASHES_AFTER_THE_FIRST_RUN],
        )
        .await?;
    let name = scope.name("looper");
    wait_for_state(&name, "running").await?;
    Ok((name, id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_container_backs_off() -> anyhow::Result<()> {
    const WINDOW: Duration = Duration::from_secs(12);
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (name, id) = run_crash_looper(&scope).await?;
    let pair = Pair::start(&scope, Options::default()).await?;

    let from = SystemTime::now();
    docker(&["kill", &name]).await?;
    // A fixed window is the point here: count what the controller does in it.
    tokio::time::sleep(WINDOW).await;
    let starts = engine_events(&id, from, SystemTime::now())
        .await?
        .iter()
        .filter(|(action, _)| action == "start")
        .count();

    // Healed at once, then after ~0.8 s, ~1.6 s, ~3.2 s, ~6.4 s: about 5. Without backoff, 0.3 s of life and
    // ~0.25 s per start would make it about 20.
    eprintln!("starts of a container that dies 0.3 s after each start, in {WINDOW:?}: {starts}");
    assert!((3..=8).contains(&starts), "{starts} starts in {WINDOW:?}");
    let records = pair.controller.actions_for(&name).await?;
    assert!(
        records.iter().all(|record| record["action"] == "start"),
        "{records:?}"
    );
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_keeps_failing_is_quarantined() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (name, id) = run_crash_looper(&scope).await?;
    let limits = quick_quarantine();
    let pair = Pair::start(
        &scope,
        Options {
            limits: Some(limits),
            ..Options::default()
        },
    )
    .await?;

    docker(&["kill", &name]).await?;

    let record = pair
        .controller
        .wait_for_record(&name, "start", "quarantined")
        .await?;
    assert_mentions(&record, "/detail", "3 attempts");
    let actions = pair.controller.actions().await?;
    assert_eq!(
        actions["quarantined"][0]["container"],
        name.as_str(),
        "{actions}"
    );
    assert_eq!(actions["quarantined"][0]["attempts"], 3, "{actions}");
    wait_until("the quarantine gauge", PATIENCE, || async {
        Ok(pair
            .controller
            .metric("dockstate_controller_quarantined")
            .await?
            == 1.0)
    })
    .await?;
    assert_eq!(
        pair.controller
            .metric(&format!(
                "dockstate_controller_container_quarantined{{name=\"{name}\"}}"
            ))
            .await?,
        1.0,
        "the quarantine names the container"
    );
    assert_eq!(
        pair.controller
            .metric("dockstate_controller_actions_total{action=\"start\",result=\"quarantined\"}")
            .await?,
        1.0
    );
    wait_for_state(&name, "exited").await?;
    let quiet_from = SystemTime::now();
    stays(
        "the quarantined container to be left alone",
        Duration::from_secs(1),
        async || Ok(container_state(&name).await?.as_deref() == Some("exited")),
    )
    .await?;
    let starts = engine_events(&id, quiet_from, SystemTime::now())
        .await?
        .iter()
        .filter(|(action, _)| action == "start")
        .count();
    assert_eq!(starts, 0);
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_ends_when_a_new_container_takes_the_name() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (name, _) = run_crash_looper(&scope).await?;
    let limits = quick_quarantine();
    let pair = Pair::start(
        &scope,
        Options {
            limits: Some(limits),
            ..Options::default()
        },
    )
    .await?;
    docker(&["kill", &name]).await?;
    pair.controller
        .wait_for_record(&name, "start", "quarantined")
        .await?;
    wait_for_state(&name, "exited").await?;

    // Someone fixes it: the broken container goes, a healthy one takes its name.
    docker(&["rm", "-f", &name]).await?;
    let fixed = scope.run("looper", BUSYBOX_IMAGE, &[]).await?;
    wait_for_state(&name, "running").await?;
    let record = pair
        .controller
        .wait_for_record(&name, "start", "quarantine_ended")
        .await?;
    assert_eq!(record["detail"], "ended: new container id", "{record}");
    assert_eq!(record["container_id"], fixed.as_str(), "{record}");
    let actions = pair.controller.actions().await?;
    assert_eq!(actions["quarantined"], serde_json::json!([]), "{actions}");

    // It stops: healed at once, as any member would be.
    let from = SystemTime::now();
    docker(&["stop", &name]).await?;
    wait_for_state(&name, "running").await?;
    let events = engine_events(&fixed, from, SystemTime::now()).await?;
    let at = |wanted: &str| {
        events
            .iter()
            .find(|(action, _)| action == wanted)
            .map(|(_, nanos)| *nanos)
    };
    let (died, started) = (at("die"), at("start"));
    eprintln!("events after the stop: {events:?}");
    let took = Duration::from_nanos(
        u64::try_from(started.unwrap_or(0).saturating_sub(died.unwrap_or(0))).unwrap_or(u64::MAX),
    );
    assert!(died.is_some() && started.is_some(), "{events:?}");
    // Not held by the hour-long quarantine it left (the engine's own stop and start take seconds on a loaded
    // machine; how fast a heal is, the benchmarks say).
    assert!(took < Duration::from_secs(60), "die → start took {took:?}");
    pair.controller
        .wait_for_record(&name, "start", "ok")
        .await?;
    wait_until("the quarantine gauge back at 0", PATIENCE, || async {
        Ok(pair
            .controller
            .metric("dockstate_controller_quarantined")
            .await?
            == 0.0)
    })
    .await?;
    let metrics = pair.controller.metrics().await?;
    assert!(
        !metrics.contains("dockstate_controller_container_quarantined{"),
        "an ended quarantine leaves no series:\n{metrics}"
    );
    pair.stop().await
}
