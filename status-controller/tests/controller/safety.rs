//! The controller acts only on a complete, fresh view: before status-api answers, while it is gone, and
//! under `--dry-run` it changes nothing.

use std::time::{Duration, SystemTime};

use test_support::{
    container_health, container_state, docker, ensure_test_images, wait_until, TestScope,
    BUSYBOX_IMAGE, HEALTH_IMAGE,
};

use crate::helpers::{
    api_at, api_for_scope, assert_mentions, engine_events, init_logs, kill_main_process,
    run_member, started_at, stays, wait_for_restart, wait_for_state, Controller, Options, Pair,
    PATIENCE,
};

const UNREACHABLE_HOLDS: &str = "dockstate_controller_holds_total{reason=\"api_unreachable\"}";
const UNREACHABLE_NOW: &str = "dockstate_controller_holding{reason=\"api_unreachable\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_holds_while_status_api_is_away_and_resumes_when_it_returns() -> anyhow::Result<()> {
    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let state_dir = tempfile::tempdir()?;
    // A port nobody listens on yet: status-api will come up there later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;

    // Start-up: the controller comes first and keeps asking; not ready, but alive.
    let controller = Controller::start(port, &[], None).await?;
    wait_until("a hold for an unreachable status-api", PATIENCE, || async {
        Ok(controller.metric(UNREACHABLE_HOLDS).await? >= 1.0)
    })
    .await?;
    assert_eq!(controller.ready_status().await?, 503);
    let health = reqwest::get(controller.url("/health")).await?;
    assert_eq!(health.status().as_u16(), 200, "retrying is progress");

    let api = api_at(&state_dir.path().join("state"), &scope, &port.to_string()).await?;
    controller.wait_ready().await?;

    // status-api goes away: hold, and act on nothing.
    api.stop().await?;
    wait_until("the controller to turn not ready", PATIENCE, || async {
        Ok(controller.ready_status().await? == 503)
    })
    .await?;
    let ready: serde_json::Value = reqwest::get(controller.url("/ready")).await?.json().await?;
    assert_mentions(&ready, "/checks/status_api/detail", "api_unreachable");
    let holds_before = controller.metric(UNREACHABLE_HOLDS).await?;
    let before = started_at(&name).await?;
    docker(&["stop", &name]).await?;
    stays(
        "the stopped container to stay stopped",
        Duration::from_millis(1500),
        async || Ok(container_state(&name).await?.as_deref() == Some("exited")),
    )
    .await?;
    assert!(
        controller.metric(UNREACHABLE_HOLDS).await? > holds_before,
        "each retry is a hold"
    );
    assert_eq!(
        controller.metric(UNREACHABLE_NOW).await?,
        1.0,
        "why it holds now"
    );

    // It comes back (same state directory, same snapshot): healing resumes.
    let api = api_at(&state_dir.path().join("state"), &scope, &port.to_string()).await?;
    wait_for_restart(&name, &before).await?;
    controller.wait_ready().await?;
    assert_eq!(
        controller.metric(UNREACHABLE_NOW).await?,
        0.0,
        "no longer holding"
    );
    assert_eq!(controller.metric("dockstate_controller_ready").await?, 1.0);
    controller.stop().await?;
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    for suffix in ["stopped", "paused", "removed"] {
        scope.run(suffix, BUSYBOX_IMAGE, &[]).await?;
        wait_for_state(&scope.name(suffix), "running").await?;
    }
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            flags: vec!["--dry-run"],
            ..Options::default()
        },
    )
    .await?;
    let (stopped, paused, removed, stranger) = (
        scope.name("stopped"),
        scope.name("paused"),
        scope.name("removed"),
        scope.name("stranger"),
    );

    docker(&["stop", &stopped]).await?;
    docker(&["pause", &paused]).await?;
    docker(&["rm", "-f", &removed]).await?;
    scope.run("stranger", BUSYBOX_IMAGE, &[]).await?;

    for (name, action) in [
        (&stopped, "start"),
        (&paused, "unpause"),
        (&removed, "recreate"),
        (&stranger, "stop"),
    ] {
        pair.controller
            .wait_for_record(name, action, "dry_run")
            .await?;
    }
    stays(
        "every container to stay as the test left it",
        Duration::from_millis(500),
        async || {
            Ok(
                container_state(&stopped).await?.as_deref() == Some("exited")
                    && container_state(&paused).await?.as_deref() == Some("paused")
                    && container_state(&removed).await?.is_none()
                    && container_state(&stranger).await?.as_deref() == Some("running"),
            )
        },
    )
    .await?;
    assert_eq!(
        pair.controller
            .metric("dockstate_controller_actions_total{action=\"start\",result=\"dry_run\"}")
            .await?,
        1.0,
        "recorded once, not once per pass"
    );
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_acts_only_on_a_live_fresh_ready_view() -> anyhow::Result<()> {
    use std::collections::BTreeMap;

    use shared::{
        ContainerState, ContainerStatus, Health, SnapshotMember, SnapshotSummary, StatusResponse,
    };

    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let name = scope.name("web");
    let id = scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    docker(&["stop", &name]).await?;
    let labels = BTreeMap::from([(
        test_support::TEST_LABEL_KEY.to_owned(),
        scope.id().to_owned(),
    )]);
    let now = chrono::Utc::now();
    // A view in which `web`, a snapshot member, is stopped — as it really is — but three hours old.
    let api = crate::fake_api::FakeApi::start(crate::fake_api::State {
        status: StatusResponse {
            revision: 1,
            observed_at: now - chrono::Duration::hours(3),
            snapshot_taken_at: Some(now),
            scope: Some(scope.scope()),
            events_live: true,
            engine: None,
            resync_interval_seconds: 30,
            server_container_id: None,
            engine_reachable: true,
            ready: true,
            not_ready_reason: None,
            event_backlog: 0,
            event_lag_seconds: 0.0,
            containers: vec![ContainerStatus {
                id: id.clone(),
                name: name.clone(),
                image: BUSYBOX_IMAGE.into(),
                image_id: "sha256:0".into(),
                state: ContainerState::Exited,
                health: Health::None,
                exit_code: Some(0),
                restart_count: 0,
                created_at: None,
                started_at: None,
                finished_at: None,
                labels: labels.clone(),
                ports: Vec::new(),
                in_snapshot: true,
                policy: Default::default(),
                shares: Default::default(),
                settling: false,
                restart_policy: None,
                exit_cause: None,
                spec_changes: Vec::new(),
                tag_image_id: None,
                spec: None,
            }],
        },
        snapshot: SnapshotSummary {
            taken_at: now,
            scope: Some(scope.scope()),
            containers: vec![SnapshotMember {
                name: name.clone(),
                id: id.clone(),
                image: BUSYBOX_IMAGE.into(),
                image_id: String::new(),
                labels,
                shares: Default::default(),
            }],
        },
    })
    .await?;
    let controller = Controller::start(api.address, &[], None).await?;

    let still_stopped = async || Ok(container_state(&name).await?.as_deref() == Some("exited"));
    for (reason, change) in [
        ("stale", None),
        (
            "events_down",
            Some(Box::new(|state: &mut crate::fake_api::State| {
                state.status.observed_at = chrono::Utc::now();
                state.status.events_live = false;
            })
                as Box<dyn FnOnce(&mut crate::fake_api::State)>),
        ),
        (
            "api_not_ready",
            Some(Box::new(|state: &mut crate::fake_api::State| {
                state.status.events_live = true;
                state.status.ready = false;
                state.status.not_ready_reason =
                    Some("docker: the fake says the engine is down".into());
            })),
        ),
    ] {
        if let Some(change) = change {
            api.update(change);
        }
        let sample = format!("dockstate_controller_holds_total{{reason=\"{reason}\"}}");
        wait_until(&format!("a {reason} hold"), PATIENCE, || async {
            Ok(controller.metric(&sample).await? >= 1.0)
        })
        .await?;
        assert_eq!(controller.ready_status().await?, 503, "{reason}");
        stays(
            &format!("no action while {reason}"),
            Duration::from_millis(700),
            still_stopped,
        )
        .await?;
    }

    // The same view, fresh, live and ready: now the controller acts on it.
    api.update(|state| {
        state.status.ready = true;
        state.status.not_ready_reason = None;
    });
    wait_for_state(&name, "running").await?;
    controller.wait_ready().await?;
    controller.stop().await?;
    api.stop();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_engine_fails_actions_that_are_retried_when_it_returns() -> anyhow::Result<()> {
    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let api = api_for_scope(&scope).await?;
    // status-api sees the real engine; the controller reaches it through a line the test can cut.
    let proxy = test_support::EngineProxy::start().await?;
    let docker_host = proxy.docker_host();
    let controller = Controller::start(api.address, &["--docker-host", &docker_host], None).await?;
    controller.wait_ready().await?;

    proxy.cut();
    let before = started_at(&name).await?;
    docker(&["stop", &name]).await?;
    let failed = controller.wait_for_record(&name, "start", "failed").await?;
    assert_mentions(&failed, "/detail", "Docker engine");
    assert!(
        controller
            .metric("dockstate_controller_actions_total{action=\"start\",result=\"failed\"}")
            .await?
            >= 1.0
    );
    proxy.restore();

    // No new event comes from the engine: the backoff timer alone brings the retry.
    wait_for_restart(&name, &before).await?;
    controller.wait_for_record(&name, "start", "ok").await?;
    controller.stop().await?;
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stop_never_delays_a_heal() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let pair = Pair::start(&scope, Options::default()).await?;

    // Strangers each ignoring SIGTERM for its 3 s stop timeout: their stops are still under way (the
    // clean-up lane takes them all at once) when the member dies, and the heal must not wait for them.
    let mut strangers = Vec::new();
    for i in 0..6 {
        let suffix = format!("slow{i}");
        scope
            .run_cmd(
                &suffix,
                BUSYBOX_IMAGE,
                &["--stop-timeout", "3"],
                &[
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "trap '' TERM; sleep 3600 & wait",
                ],
            )
            .await?;
        strangers.push(scope.name(&suffix));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = started_at(&name).await?;
    crate::helpers::kill_main_process(&name).await?;

    let took = wait_for_restart(&name, &before).await?;
    let mut still_stopping = 0;
    for stranger in &strangers {
        if container_state(stranger).await?.as_deref() == Some("running") {
            still_stopping += 1;
        }
    }
    eprintln!("healed in {took:?} while {still_stopping} slow stops were still under way");
    assert!(
        still_stopping > 0,
        "the stops were over before the heal: the test proved nothing"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    for stranger in &strangers {
        wait_for_state(stranger, "exited").await?;
    }
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_restarts_never_delay_a_start() -> anyhow::Result<()> {
    // As many slow restarts as heals used to share one lane with (8), so that before the lanes were split a
    // start had to wait for one of them to end.
    const SLOW: usize = 8;
    ensure_test_images().await?;
    let scope = TestScope::new();
    let mut slow = Vec::new();
    for i in 0..SLOW {
        let suffix = format!("slow{i}");
        // Ignores SIGTERM, so its stop (the first half of a restart) takes its whole 30 s stop timeout.
        let id = scope
            .run_cmd(
                &suffix,
                HEALTH_IMAGE,
                &["--stop-timeout", "30"],
                &[
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "touch /tmp/healthy; trap '' TERM; sleep 3600000 & wait",
                ],
            )
            .await?;
        slow.push((scope.name(&suffix), id));
    }
    let name = scope.name("web");
    let id = scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    for (member, _) in &slow {
        wait_until(&format!("{member} to be healthy"), PATIENCE, || async {
            Ok(container_health(member).await?.as_deref() == Some("healthy"))
        })
        .await?;
    }
    wait_for_state(&name, "running").await?;
    let pair = Pair::start(&scope, Options::default()).await?;

    let from = SystemTime::now();
    for (member, _) in &slow {
        docker(&["exec", member, "/bin/busybox", "rm", "/tmp/healthy"]).await?;
    }
    // The restarts are under way once the engine has sent SIGTERM to at least 4 of them (the restart lane
    // takes all 8 at once).
    wait_until("the slow restarts to be under way", PATIENCE, || async {
        let mut terminated = 0;
        for (_, id) in &slow {
            let events = engine_events(id, from, SystemTime::now()).await?;
            if events.iter().any(|(action, _)| action == "kill") {
                terminated += 1;
            }
        }
        Ok(terminated >= 4)
    })
    .await?;
    let before = started_at(&name).await?;
    let killed_at = SystemTime::now();
    kill_main_process(&name).await?;
    wait_for_restart(&name, &before).await?;

    let events = engine_events(&id, killed_at, SystemTime::now()).await?;
    let at = |wanted: &str| {
        events
            .iter()
            .find(|(action, _)| action == wanted)
            .map(|(_, nanos)| *nanos)
    };
    let (died, started) = (at("die"), at("start"));
    assert!(died.is_some() && started.is_some(), "{events:?}");
    let took = Duration::from_nanos(
        u64::try_from(started.unwrap_or(0).saturating_sub(died.unwrap_or(0))).unwrap_or(u64::MAX),
    );
    let mut still_restarting = 0;
    for (member, _) in &slow {
        if started_at_is_before(member, from).await? {
            still_restarting += 1;
        }
    }
    eprintln!(
        "die → start {took:?} while {still_restarting} of {SLOW} slow restarts were not done"
    );
    assert!(
        still_restarting > 0,
        "the restarts were over before the heal: the test proved nothing"
    );
    // Alone this is about 0.7 s; on a machine loaded far past its cores it has taken 2.7 s. What is proven
    // is that the start did not queue behind the restarts: each of them takes 30 s (the stop timeout), and
    // before restarts had a lane of their own the start waited for one to end. So the bound is a third of
    // that, not a latency target (the heal latency is benchmarked: docs/benchmarks.md).
    assert!(took < Duration::from_secs(10), "die → start took {took:?}");
    pair.controller
        .wait_for_record(&name, "start", "ok")
        .await?;

    // Cut the slow stops short, so each restart ends at once and the controller stops without waiting.
    for (member, _) in &slow {
        docker(&["kill", member]).await.ok();
    }
    pair.stop().await
}

/// Whether `name` last started before `moment`: a restart has not brought it up again yet.
async fn started_at_is_before(name: &str, moment: SystemTime) -> anyhow::Result<bool> {
    let started = started_at(name).await?;
    let started = chrono::DateTime::parse_from_rfc3339(&started)?;
    Ok(SystemTime::from(started) < moment)
}
