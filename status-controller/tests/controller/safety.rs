//! The controller acts only on a complete, fresh view: before status-api answers, while it is gone, and
//! under `--dry-run` it changes nothing.

use std::time::Duration;

use test_support::{
    container_state, docker, ensure_test_images, wait_until, TestScope, BUSYBOX_IMAGE,
};

use crate::helpers::{
    assert_mentions, init_logs, run_member, started_at, stays, wait_for_restart, wait_for_state,
    ApiServer, Controller, Options, Pair, PATIENCE,
};

const UNREACHABLE_HOLDS: &str = "dockstate_controller_holds_total{reason=\"api_unreachable\"}";

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

    let api = ApiServer::start(
        &state_dir.path().join("state"),
        &scope.scope(),
        &port.to_string(),
        None,
    )
    .await?;
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

    // It comes back (same state directory, same snapshot): healing resumes.
    let api = ApiServer::start(
        &state_dir.path().join("state"),
        &scope.scope(),
        &port.to_string(),
        None,
    )
    .await?;
    wait_for_restart(&name, &before).await?;
    controller.wait_ready().await?;
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

/// A status-api stand-in whose answers the test sets: the only way to show the controller a view that is
/// stale, not live or not ready while the engine itself is fine.
mod fake {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use poem::http::StatusCode;
    use poem::listener::{Acceptor, Listener, TcpListener};
    use poem::web::{Data, Json, Query};
    use poem::{get, handler, EndpointExt, IntoResponse, Response, Route};
    use shared::{SnapshotSummary, StatusResponse};
    use tokio::task::JoinHandle;

    #[derive(Debug)]
    pub struct State {
        pub status: StatusResponse,
        pub snapshot: SnapshotSummary,
        pub ready: bool,
    }

    #[derive(Debug, Clone)]
    pub struct FakeApi {
        state: Arc<Mutex<State>>,
        pub address: SocketAddr,
        server: Arc<JoinHandle<()>>,
    }

    impl FakeApi {
        pub async fn start(state: State) -> anyhow::Result<Self> {
            let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
            let address = *acceptor
                .local_addr()
                .first()
                .and_then(|addr| addr.as_socket_addr())
                .ok_or_else(|| anyhow::anyhow!("no address"))?;
            let state = Arc::new(Mutex::new(state));
            let app = Route::new()
                .at("/status", get(status))
                .at("/ready", get(ready))
                .at("/snapshot", get(snapshot))
                .data(state.clone());
            let server = tokio::spawn(async move {
                let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
            });
            Ok(Self {
                state,
                address,
                server: Arc::new(server),
            })
        }

        /// Changes the answers; every change is a new revision, as with the real status-api.
        pub fn update(&self, change: impl FnOnce(&mut State)) {
            let mut state = self.state.lock().expect("not poisoned");
            change(&mut state);
            state.status.revision += 1;
        }

        pub fn stop(&self) {
            self.server.abort();
        }
    }

    #[handler]
    async fn status(
        Data(state): Data<&Arc<Mutex<State>>>,
        Query(query): Query<HashMap<String, String>>,
    ) -> Json<StatusResponse> {
        let since = query
            .get("since")
            .and_then(|since| since.parse::<u64>().ok());
        let current = state.lock().expect("not poisoned").status.clone();
        if since == Some(current.revision) {
            // A short long poll: enough to keep the controller from spinning.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Json(state.lock().expect("not poisoned").status.clone())
    }

    #[handler]
    fn ready(Data(state): Data<&Arc<Mutex<State>>>) -> Response {
        if state.lock().expect("not poisoned").ready {
            Json(serde_json::json!({"status": "READY", "checks": {}})).into_response()
        } else {
            Json(serde_json::json!({"status": "NOT_READY", "checks": {
                "docker": {"status": "DOWN", "detail": "the fake says the engine is down"}
            }}))
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
            .into_response()
        }
    }

    #[handler]
    fn snapshot(Data(state): Data<&Arc<Mutex<State>>>) -> Json<SnapshotSummary> {
        Json(state.lock().expect("not poisoned").snapshot.clone())
    }
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
    let api = fake::FakeApi::start(fake::State {
        status: StatusResponse {
            revision: 1,
            observed_at: now - chrono::Duration::hours(3),
            snapshot_taken_at: Some(now),
            scope: Some(scope.scope()),
            events_live: true,
            resync_interval_seconds: 30,
            server_container_id: None,
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
                in_snapshot: true,
            }],
        },
        snapshot: SnapshotSummary {
            taken_at: now,
            scope: Some(scope.scope()),
            containers: vec![SnapshotMember {
                name: name.clone(),
                id: id.clone(),
                image: BUSYBOX_IMAGE.into(),
                labels,
            }],
        },
        ready: true,
    })
    .await?;
    let controller = Controller::start(api.address, &[], None).await?;

    let still_stopped = async || Ok(container_state(&name).await?.as_deref() == Some("exited"));
    for (reason, change) in [
        ("stale", None),
        (
            "events_down",
            Some(Box::new(|state: &mut fake::State| {
                state.status.observed_at = chrono::Utc::now();
                state.status.events_live = false;
            }) as Box<dyn FnOnce(&mut fake::State)>),
        ),
        (
            "api_not_ready",
            Some(Box::new(|state: &mut fake::State| {
                state.status.events_live = true;
                state.ready = false;
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
    api.update(|state| state.ready = true);
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
    let api = ApiServer::for_scope(&scope).await?;
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

    // More strangers than the clean-up lane takes at once, each ignoring SIGTERM for its 3 s stop timeout.
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
