//! The loop against fakes of status-api and the engine, under tokio's paused clock: holds, backoff, staleness,
//! action completion and its spans, in milliseconds.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bollard::models::{ContainerInspectResponse, EndpointSettings};
use chrono::Utc;
use shared::runtime::engine::EngineError;
use shared::{
    ContainerSpec, ContainerState, ContainerStatus, DriftKind, Health, SnapshotMember,
    StatusResponse,
};
use tokio::task::JoinHandle;

use crate::docker::EngineWriter;
use crate::executor::Executor;

use super::*;
use crate::clock::SystemClock;
use crate::docker::{Applied, DockerError, Result as DockerResult};
use crate::maintenance::{HoldMetrics, HoldRequest};
use crate::model::{ActionKind, HoldReason, StatusAnswer, Unexpected};
use crate::notify::{EventKind, NotificationCounter, NotifyOptions};
use crate::recreate::Recreation;
use crate::status_client::Result as StatusResult;

/// A status-api whose answers the test sets. It remembers every `/status` request, and counts long polls
/// dropped before they answered.
#[derive(Debug, Clone)]
struct FakeSource {
    inner: Arc<SourceInner>,
}

#[derive(Debug)]
struct SourceInner {
    status: Mutex<StatusResponse>,
    /// How long a long poll takes to answer a change: a status-api, or a network, that is slow to tell.
    long_poll_delay: Mutex<Duration>,
    snapshot: SnapshotSummary,
    revision: watch::Sender<u64>,
    asked: Mutex<Vec<Option<u64>>>,
    abandoned: AtomicUsize,
}

/// Counts a request as abandoned when it is dropped before it answered.
struct Probe {
    inner: Arc<SourceInner>,
    answered: bool,
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.answered {
            self.inner.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl FakeSource {
    /// A status-api with `status`, whose snapshot has one member: `web`, labelled as the first container
    /// of `status` is.
    fn new(status: StatusResponse) -> Self {
        let labels = status
            .containers
            .first()
            .map(|container| container.labels.clone())
            .unwrap_or_default();
        let snapshot = SnapshotSummary {
            taken_at: status.snapshot_taken_at.expect("a snapshot"),
            scope: None,
            containers: vec![SnapshotMember {
                name: "web".into(),
                id: "web-id".into(),
                image: "busybox".into(),
                image_id: String::new(),
                labels,
                shares: Default::default(),
            }],
        };
        Self {
            inner: Arc::new(SourceInner {
                revision: watch::Sender::new(status.revision),
                status: Mutex::new(status),
                long_poll_delay: Mutex::new(Duration::ZERO),
                snapshot,
                asked: Mutex::new(Vec::new()),
                abandoned: AtomicUsize::new(0),
            }),
        }
    }

    /// Changes the answer; every change is a new revision, as with the real status-api.
    fn update(&self, change: impl FnOnce(&mut StatusResponse)) {
        let mut status = self.inner.status.lock().expect("not poisoned");
        change(&mut status);
        status.revision += 1;
        self.inner.revision.send_replace(status.revision);
    }

    fn asked(&self) -> Vec<Option<u64>> {
        self.inner.asked.lock().expect("not poisoned").clone()
    }

    fn abandoned(&self) -> usize {
        self.inner.abandoned.load(Ordering::SeqCst)
    }
}

impl StatusSource for FakeSource {
    async fn status(&self, since: Option<u64>, wait: Duration) -> StatusResult<StatusAnswer> {
        self.inner.asked.lock().expect("not poisoned").push(since);
        let mut probe = Probe {
            inner: self.inner.clone(),
            answered: false,
        };
        if let Some(since) = since {
            let delay = *self.inner.long_poll_delay.lock().expect("not poisoned");
            tokio::time::sleep(delay).await;
            let mut revision = self.inner.revision.subscribe();
            tokio::select! {
                _ = revision.wait_for(|revision| *revision != since) => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        probe.answered = true;
        Ok(self
            .inner
            .status
            .lock()
            .expect("not poisoned")
            .clone()
            .into())
    }

    async fn snapshot(&self) -> StatusResult<Arc<SnapshotSummary>> {
        Ok(Arc::new(self.inner.snapshot.clone()))
    }

    async fn spec(&self, name: &str) -> StatusResult<ContainerSpec> {
        Err(StatusError::NotInSnapshot(name.to_owned()))
    }
}

/// One call to the engine: what, on which container, and when.
type Call = (&'static str, String, tokio::time::Instant);

/// An engine that does what it is told at once (a start takes `start_takes`) and remembers each call. Every
/// container is `exited` unless `states` says otherwise, and stays so after a start: it dies at once.
#[derive(Debug, Clone, Default)]
struct FakeWriter {
    calls: Arc<Mutex<Vec<Call>>>,
    start_takes: Duration,
    /// The engine refuses every start (409).
    start_fails: bool,
    /// Every start fails: the engine's answer cannot be read (a failure, not a conflict).
    start_breaks: bool,
    /// The state each container is in, by name, as `docker inspect` spells it; `exited` when absent.
    states: Arc<Mutex<HashMap<String, &'static str>>>,
    /// A status-api that sees every start (and the death that follows it) as a new revision.
    seen_by: Option<FakeSource>,
}

impl FakeWriter {
    fn record(&self, op: &'static str, name: &str) {
        self.calls.lock().expect("not poisoned").push((
            op,
            name.to_owned(),
            tokio::time::Instant::now(),
        ));
    }

    /// When each start happened.
    fn starts(&self) -> Vec<tokio::time::Instant> {
        let calls = self.calls.lock().expect("not poisoned");
        calls
            .iter()
            .filter(|(op, _, _)| *op == "start")
            .map(|(_, _, at)| *at)
            .collect()
    }

    fn calls(&self) -> usize {
        self.calls.lock().expect("not poisoned").len()
    }

    fn set_state(&self, name: &str, state: &'static str) {
        self.states
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), state);
    }
}

impl EngineWriter for FakeWriter {
    async fn negotiate(&self) -> DockerResult<()> {
        Ok(())
    }
    async fn inspect(
        &self,
        name: &str,
        id: &str,
    ) -> DockerResult<Option<ContainerInspectResponse>> {
        self.record("inspect", name);
        let state = self
            .states
            .lock()
            .expect("not poisoned")
            .get(name)
            .copied()
            .unwrap_or("exited");
        let inspect = serde_json::from_value(serde_json::json!({
            "Id": id, "Name": format!("/{name}"), "State": {"Status": state}, "Config": {"Labels": {}},
        }))
        .expect("a valid inspect answer");
        Ok(Some(inspect))
    }
    async fn start(&self, name: &str, _id: &str) -> DockerResult<Applied> {
        self.record("start", name);
        tokio::time::sleep(self.start_takes).await;
        if self.start_breaks {
            return Err(DockerError::Engine(EngineError::Unreadable {
                op: "start",
                target: name.to_owned(),
                source: serde_json::from_str::<u8>("garbled").expect_err("not a number"),
            }));
        }
        if self.start_fails {
            return Err(DockerError::Engine(EngineError::Conflict {
                op: "start",
                target: name.to_owned(),
                message: "the engine is busy with it".into(),
            }));
        }
        if let Some(source) = &self.seen_by {
            source.update(|status| status.observed_at = Utc::now());
        }
        Ok(Applied::Done)
    }
    async fn unpause(&self, name: &str, _id: &str) -> DockerResult<Applied> {
        self.record("unpause", name);
        Ok(Applied::Done)
    }
    async fn restart(&self, name: &str, _id: &str, _grace: Duration) -> DockerResult<Applied> {
        self.record("restart", name);
        Ok(Applied::Done)
    }
    async fn stop(&self, name: &str, _id: &str, _grace: Duration) -> DockerResult<Applied> {
        self.record("stop", name);
        Ok(Applied::Done)
    }
    async fn remove(&self, name: &str, _id: &str) -> DockerResult<Applied> {
        self.record("remove", name);
        Ok(Applied::Done)
    }
    async fn image_id(&self, name: &str, _reference: &str) -> DockerResult<Option<String>> {
        self.record("image", name);
        Ok(Some("sha256:1".into()))
    }
    async fn volume_exists(&self, name: &str, _volume: &str) -> DockerResult<bool> {
        self.record("volume", name);
        Ok(true)
    }
    async fn create(&self, recreation: &Recreation) -> DockerResult<String> {
        self.record("create", &recreation.name);
        Ok("new".into())
    }
    async fn connect_network(
        &self,
        name: &str,
        _id: &str,
        _network: &str,
        _endpoint: EndpointSettings,
    ) -> DockerResult<()> {
        self.record("connect", name);
        Ok(())
    }
}

/// status-api's answer at revision 1: `web`, a snapshot member, has stopped; status-api is ready and live.
fn stopped_web() -> StatusResponse {
    StatusResponse {
        revision: 1,
        observed_at: Utc::now(),
        snapshot_taken_at: Some(Utc::now()),
        scope: None,
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
            id: "web-id".into(),
            name: "web".into(),
            image: "busybox".into(),
            image_id: "sha256:0".into(),
            state: ContainerState::Exited,
            health: Health::None,
            exit_code: Some(137),
            restart_count: 0,
            created_at: None,
            started_at: None,
            finished_at: None,
            labels: Default::default(),
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
    }
}

/// A loop running over the fakes.
struct Running {
    state: ControllerState,
    maintenance: Maintenance,
    journal: Journal,
    metrics: Metrics,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(source: &FakeSource, writer: &FakeWriter, limits: HealLimits) -> Self {
        Self::notifying(source, writer, limits, None)
    }

    /// Starts the loop; with `notify`, it notifies into that queue with those options.
    fn notifying(
        source: &FakeSource,
        writer: &FakeWriter,
        limits: HealLimits,
        notify: Option<(tokio::sync::mpsc::Sender<NotifyEvent>, NotifyOptions)>,
    ) -> Self {
        Self::launch(source, writer, limits, notify, SystemClock)
    }

    fn launch<C: Clock>(
        source: &FakeSource,
        writer: &FakeWriter,
        limits: HealLimits,
        notify: Option<(tokio::sync::mpsc::Sender<NotifyEvent>, NotifyOptions)>,
        clock: C,
    ) -> Self {
        let journal = Journal::new();
        let metrics = Metrics::new();
        let notifier = match notify {
            Some((queue, options)) => Notifier::new(
                vec![queue],
                options,
                NotificationCounter::new(metrics.notifications()),
            ),
            None => Notifier::off(NotificationCounter::new(metrics.notifications())),
        };
        let state = ControllerState::new();
        let (set, until) = metrics.maintenance();
        let maintenance = Maintenance::start(None, HoldMetrics { set, until }, Utc::now());
        let executor = Executor::new(
            writer.clone(),
            source.clone(),
            journal.clone(),
            metrics.clone(),
            maintenance.clone(),
        );
        let reconciler = Reconciler::new(
            Wiring {
                source: source.clone(),
                executor,
                state: state.clone(),
                metrics: metrics.clone(),
                journal: journal.clone(),
                notifier: notifier.clone(),
                maintenance: maintenance.clone(),
                clock,
            },
            LoopSettings {
                scope: None,
                interval: Duration::from_secs(3600),
                dry_run: false,
                plan: PlanSettings {
                    unexpected: Unexpected::Stop,
                    can_recreate: false,
                    own_container_id: None,
                    own_network_owner: None,
                },
                limits,
            },
        );
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(reconciler.run(stopped));
        Self {
            state,
            maintenance,
            journal,
            metrics,
            stop,
            task,
        }
    }

    /// What `/ready` would say about status-api's view.
    fn view_check(&self) -> String {
        self.state.readiness().1["status_api"].detail.clone()
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("the loop ends cleanly");
    }
}

/// Waits (in paused time) until `condition` holds; fails after a simulated minute.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..6000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within a minute");
}

#[tokio::test(start_paused = true)]
async fn it_holds_while_status_api_is_not_ready_or_not_live_and_acts_once_it_is() {
    let source = FakeSource::new(StatusResponse {
        ready: false,
        engine_reachable: false,
        not_ready_reason: Some("docker: the engine does not answer".into()),
        ..stopped_web()
    });
    let writer = FakeWriter::default();
    let running = Running::start(&source, &writer, HealLimits::default());

    eventually("an api_not_ready hold", || {
        running.view_check().contains("api_not_ready")
    })
    .await;
    assert!(
        running
            .view_check()
            .contains("docker: the engine does not answer"),
        "{}",
        running.view_check()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        writer.calls(),
        0,
        "nothing is done while status-api is not ready"
    );

    source.update(|status| {
        status.ready = true;
        status.engine_reachable = true;
        status.not_ready_reason = None;
        status.events_live = false;
    });
    eventually("an events_down hold", || {
        running.view_check().contains("events_down")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        writer.calls(),
        0,
        "nothing is done while the view is not live"
    );
    assert!(!running.state.readiness().0);

    source.update(|status| status.events_live = true);
    eventually("web to be started", || writer.starts().len() == 1).await;
    assert!(running.state.readiness().0, "{}", running.view_check());
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("dockstate_controller_holds_total{reason=\"api_not_ready\"}"),
        "{metrics}"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn it_holds_while_status_api_is_behind_the_engine_and_acts_once_it_caught_up() {
    let source = FakeSource::new(StatusResponse {
        event_backlog: 300,
        event_lag_seconds: 3.2,
        ..stopped_web()
    });
    let writer = FakeWriter::default();
    let running = Running::start(&source, &writer, HealLimits::default());

    eventually("a view_behind hold", || {
        running.view_check().contains("view_behind")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        writer.calls(),
        0,
        "nothing is done while the view is behind"
    );

    source.update(|status| {
        status.event_backlog = 0;
        status.event_lag_seconds = 0.0;
    });
    eventually("web to be started", || writer.starts().len() == 1).await;
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("dockstate_controller_holds_total{reason=\"view_behind\"}"),
        "{metrics}"
    );
    running.stop().await;
}

/// A loop over [`stopped_web`], held for an hour by alice (`reason`) from before its first pass, once it
/// made that pass.
async fn held_from_the_start(reason: &str) -> (FakeSource, FakeWriter, Running) {
    let source = FakeSource::new(stopped_web());
    let writer = FakeWriter::default();
    let running = Running::start(&source, &writer, HealLimits::default());
    // Set before the loop's first pass: the spawned loop has not run yet.
    let hold = HoldRequest {
        lasts: Duration::from_secs(3600),
        reason: reason.into(),
        by: Some("alice".into()),
    };
    running
        .maintenance
        .set(hold, "test", Utc::now())
        .expect("no file to write");
    eventually("a pass on a fresh view", || running.state.readiness().0).await;
    (source, writer, running)
}

#[tokio::test(start_paused = true)]
async fn a_maintenance_hold_dispatches_nothing_and_its_end_acts_at_once() {
    let (source, writer, running) = held_from_the_start("kernel update").await;
    // Long enough for the long poll to answer its unchanged revision too.
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(writer.calls(), 0, "nothing is dispatched while held");
    assert!(
        running.journal.recent(usize::MAX).is_empty(),
        "and nothing is recorded as done"
    );
    assert!(running.state.readiness().0, "held on purpose is not broken");

    running
        .maintenance
        .end("bob", Utc::now())
        .expect("no file to remove");
    // No new revision: the end itself wakes the loop, which reads status-api's view again and plans.
    eventually("web to be started", || writer.starts().len() == 1).await;
    assert_eq!(
        source
            .asked()
            .iter()
            .filter(|since| since.is_none())
            .count(),
        2,
        "the first read, and one when the hold ended (it was set before the loop began)"
    );
    running.stop().await;
}

/// docs/runbook.md's adoption under a hold, where status-api's long poll is slow to tell: what the operator
/// did during the hold (here, started `web` by hand) is read before the end of the hold acts, so the
/// controller never acts on the view it held from before.
#[tokio::test(start_paused = true)]
async fn the_end_of_a_hold_acts_on_status_apis_view_now_not_the_one_held_before() {
    let (source, writer, running) = held_from_the_start("adopt a container").await;

    // During the hold the operator starts web; the long poll will take a minute to say so.
    *source.inner.long_poll_delay.lock().expect("not poisoned") = Duration::from_secs(60);
    tokio::time::sleep(Duration::from_secs(1)).await;
    source.update(|status| {
        status.containers[0].state = ContainerState::Running;
        status.observed_at = Utc::now();
    });
    running
        .maintenance
        .end("alice", Utc::now())
        .expect("no file to remove");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        writer.starts().is_empty(),
        "web runs in status-api's view now: nothing to start"
    );
    running.stop().await;
}

#[tokio::test]
async fn an_action_that_waited_for_its_lane_does_not_start_once_held() {
    let source = FakeSource::new(stopped_web());
    let writer = FakeWriter::default();
    let metrics = Metrics::new();
    let (set, until) = metrics.maintenance();
    let maintenance = Maintenance::start(None, HoldMetrics { set, until }, Utc::now());
    let journal = Journal::new();
    let executor = Executor::new(
        writer.clone(),
        source,
        journal.clone(),
        metrics,
        maintenance.clone(),
    );
    let hold = HoldRequest {
        lasts: Duration::from_secs(600),
        reason: "disk swap".into(),
        by: None,
    };
    maintenance.set(hold, "test", Utc::now()).expect("no file");
    let action = Action {
        container: "web".into(),
        id: "web-id".into(),
        kind: ActionKind::Start,
        drift: Some(DriftKind::Stopped),
        policy: Default::default(),
        state: Some(ContainerState::Exited),
        reason: "exited with exit code 137".into(),
        waits_for: None,
        retry_at: None,
    };
    let record = executor
        .spawn(action, Arc::new(ActionContext::default()), Instant::now())
        .expect("not busy")
        .await
        .expect("the task ends");
    assert_eq!(record.result, ActionResult::Skipped);
    assert_eq!(
        record.detail.as_deref(),
        Some("held for maintenance: not started")
    );
    assert_eq!(writer.calls(), 0, "the engine is not touched");
}

#[tokio::test(start_paused = true)]
async fn a_stale_view_is_never_acted_on() {
    let source = FakeSource::new(StatusResponse {
        observed_at: Utc::now() - chrono::Duration::hours(3),
        ..stopped_web()
    });
    let writer = FakeWriter::default();
    let running = Running::start(&source, &writer, HealLimits::default());

    eventually("a stale hold", || running.view_check().contains("stale")).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(writer.calls(), 0);
    assert!(!running.state.readiness().0);
    assert!(running.journal.recent(10).is_empty());
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_container_that_keeps_needing_a_start_waits_out_the_backoff() {
    // The engine starts it every time, and status-api sees it die again at once: a crash loop.
    let source = FakeSource::new(stopped_web());
    let writer = FakeWriter {
        seen_by: Some(source.clone()),
        ..FakeWriter::default()
    };
    let limits = HealLimits {
        backoff: BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            reset_after: Duration::from_secs(120),
        },
        ..HealLimits::default()
    };
    let running = Running::start(&source, &writer, limits);

    eventually("three starts", || writer.starts().len() >= 3).await;
    let starts = writer.starts();
    let (first, second) = (starts[1] - starts[0], starts[2] - starts[1]);
    // Jittered over the upper half: the first wait is in [0.5 s, 1 s), the second, doubled, in [1 s, 2 s).
    assert!(
        first >= Duration::from_millis(500) && first < Duration::from_secs(1),
        "{first:?}"
    );
    assert!(
        second >= Duration::from_secs(1) && second < Duration::from_secs(2),
        "{second:?}"
    );
    assert_eq!(source.abandoned(), 0, "no long poll was dropped");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_finished_action_is_noticed_without_dropping_the_long_poll() {
    // The engine refuses, after 2 s: the start changed nothing, so the end of it is reason enough to try
    // again, with no new view needed.
    let source = FakeSource::new(stopped_web());
    let writer = FakeWriter {
        start_takes: Duration::from_secs(2),
        start_fails: true,
        ..FakeWriter::default()
    };
    let running = Running::start(&source, &writer, HealLimits::default());
    let began = tokio::time::Instant::now();

    eventually("the first start", || writer.starts().len() == 1).await;
    // A change while web's start is under way: the pass skips it (busy) and sets no timer for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    source.update(|status| status.observed_at = Utc::now());

    // Only the end of the first start can bring the second, long before the long poll's 30 s run out.
    eventually("the second start", || writer.starts().len() == 2).await;
    let second = writer.starts()[1] - began;
    assert!(
        second >= Duration::from_secs(2) && second < Duration::from_millis(2100),
        "{second:?}"
    );
    assert_eq!(
        running.journal.recent(10).len(),
        1,
        "the first start is recorded"
    );
    assert_eq!(
        source.asked(),
        vec![None, Some(1), Some(2)],
        "one long poll per revision, none re-issued when an action ended"
    );
    assert_eq!(source.abandoned(), 0, "no long poll was dropped");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_container_just_started_is_not_planned_again_until_a_newer_view() {
    // status-api's view still shows web stopped when its start ends (no new revision yet).
    let source = FakeSource::new(stopped_web());
    let writer = FakeWriter {
        start_takes: Duration::from_secs(1),
        ..FakeWriter::default()
    };
    let running = Running::start(&source, &writer, HealLimits::default());

    eventually("the first start", || writer.starts().len() == 1).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        writer.starts().len(),
        1,
        "no second start planned from the view that predates the first"
    );
    let records = running.journal.recent(10);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].result, ActionResult::Ok);

    // A newer view that still shows it stopped (it died again): now it is planned again.
    source.update(|status| status.observed_at = Utc::now());
    eventually("the second start", || writer.starts().len() == 2).await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_start_of_a_container_that_already_runs_is_a_noop_not_a_heal() {
    // status-api's view lags: the engine already runs web.
    let source = FakeSource::new(stopped_web());
    let writer = FakeWriter::default();
    writer.set_state("web", "running");
    let running = Running::start(&source, &writer, HealLimits::default());

    eventually("a record", || !running.journal.recent(1).is_empty()).await;
    let record = running.journal.recent(1).remove(0);
    assert_eq!(record.result, ActionResult::Noop, "{record:?}");
    assert_eq!(record.detail.as_deref(), Some("already running"));
    assert!(
        writer.starts().is_empty(),
        "the engine was not asked to start it"
    );
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("dockstate_controller_heal_seconds_count 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dockstate_controller_actions_total{action=\"start\",result=\"noop\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("dockstate_controller_actions_total{action=\"start\",result=\"ok\"} 1"),
        "{metrics}"
    );
    running.stop().await;
}

/// A log sink the test can read.
#[derive(Debug, Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn an_action_logs_inside_its_own_span_and_its_pass() {
    let buffer = Buffer::default();
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_span_list(true)
        .with_writer(move || sink.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Callsite interest is cached process-wide. With exactly one scoped subscriber registered, tracing-core
    // computes a new callsite's interest from the default of whichever thread hits it first — for another
    // test's thread, no subscriber, so "never", and this test would now and then see no line at all. A second
    // registered dispatcher makes it ask every registered one; then the cache is rebuilt with both in place.
    let _second = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
    let _default = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let source = FakeSource::new(stopped_web());
    let writer = FakeWriter::default();
    let running = Running::start(&source, &writer, HealLimits::default());

    eventually("the start to be recorded", || {
        !running.journal.recent(1).is_empty()
    })
    .await;
    running.stop().await;

    let text = String::from_utf8(buffer.0.lock().expect("not poisoned").clone()).expect("utf-8");
    let done: serde_json::Value = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .find(|line: &serde_json::Value| line["fields"]["message"] == "action done")
        .unwrap_or_else(|| panic!("no `action done` line in:\n{text}"));
    let spans = done["spans"].as_array().expect("a span list");
    let named = |name: &str| {
        spans
            .iter()
            .find(|span| span["name"] == name)
            .unwrap_or_else(|| panic!("no {name} span in {done}"))
    };
    let pass = named("reconcile");
    assert_eq!(pass["revision"], 1, "{done}");
    assert_eq!(pass["actions"], 1, "{done}");
    let action = named("action");
    assert_eq!(action["container"], "web", "{done}");
    assert_eq!(action["action"], "start", "{done}");
    assert_eq!(action["drift"], "stopped", "{done}");
    assert_eq!(action["result"], "ok", "{done}");
}

#[test]
fn hold_reasons_are_the_metric_labels() {
    use strum::VariantArray;
    let labels: Vec<&str> = HoldReason::VARIANTS
        .iter()
        .map(|reason| reason.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "api_unreachable",
            "api_not_ready",
            "events_down",
            "stale",
            "no_snapshot",
            "bad_answer",
            "scope_mismatch",
            "view_behind",
            "maintenance"
        ]
    );
    let metrics = Metrics::new().render();
    for label in labels {
        assert!(
            metrics.contains(&format!(
                "dockstate_controller_holds_total{{reason=\"{label}\"}} 0"
            )),
            "{label}"
        );
    }
}

/// Everything notified so far.
fn notified(queue: &mut tokio::sync::mpsc::Receiver<NotifyEvent>, into: &mut Vec<NotifyEvent>) {
    while let Ok(event) = queue.try_recv() {
        into.push(event);
    }
}

/// Waits (in paused time) until an event of `kind` has been notified; answers it.
async fn next_of(
    kind: EventKind,
    queue: &mut tokio::sync::mpsc::Receiver<NotifyEvent>,
    seen: &mut Vec<NotifyEvent>,
) -> NotifyEvent {
    for _ in 0..60_000 {
        notified(queue, seen);
        if let Some(at) = seen.iter().position(|event| event.kind == kind) {
            return seen.remove(at);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {kind} notified within ten minutes: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn failed_starts_and_the_quarantine_they_lead_to_are_notified_with_their_attempts() {
    let source = FakeSource::new(stopped_web());
    let writer = FakeWriter {
        start_breaks: true,
        ..FakeWriter::default()
    };
    let limits = HealLimits {
        backoff: BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            reset_after: Duration::from_secs(120),
        },
        quarantine_after: 3,
        quarantine_for: Duration::from_secs(60),
    };
    let (queue, mut events) = tokio::sync::mpsc::channel(64);
    let running = Running::notifying(
        &source,
        &writer,
        limits,
        Some((queue, NotifyOptions::default())),
    );
    let mut seen = Vec::new();

    for attempt in 1..=3 {
        let failed = next_of(EventKind::ActionFailed, &mut events, &mut seen).await;
        assert_eq!(failed.container.as_deref(), Some("web"));
        assert_eq!(failed.action, Some(ActionKind::Start));
        assert_eq!(failed.result, Some(ActionResult::Failed));
        assert_eq!(failed.attempt, Some(attempt), "{failed:?}");
        let error = failed.error.unwrap_or_default();
        assert!(error.contains("could not be read"), "{error}");
    }
    let entered = next_of(EventKind::QuarantineEntered, &mut events, &mut seen).await;
    assert_eq!(entered.attempt, Some(3));
    assert_eq!(entered.result, Some(ActionResult::Quarantined));
    assert!(
        entered
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("3 attempts"),
        "{entered:?}"
    );
    let entered_at = tokio::time::Instant::now();

    let ended = next_of(EventKind::QuarantineEnded, &mut events, &mut seen).await;
    assert!(
        entered_at.elapsed() >= Duration::from_secs(59),
        "ended after its time: {:?}",
        entered_at.elapsed()
    );
    assert_eq!(ended.action, Some(ActionKind::Start));
    assert!(
        ended
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("served its 60s"),
        "{ended:?}"
    );
    // Once out, it is tried again, and that failure is told as the first of a new count.
    let again = next_of(EventKind::ActionFailed, &mut events, &mut seen).await;
    assert_eq!(again.attempt, Some(1), "{again:?}");
    assert!(
        seen.iter().all(|event| event.kind != EventKind::Heals),
        "nothing healed: {seen:?}"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_long_hold_is_notified_once_and_so_is_its_end_but_a_short_one_is_not() {
    let source = FakeSource::new(StatusResponse {
        ready: false,
        not_ready_reason: Some("docker: the engine does not answer".into()),
        ..stopped_web()
    });
    let writer = FakeWriter::default();
    let options = NotifyOptions {
        heals: false,
        hold_after: Duration::from_secs(20),
    };
    let (queue, mut events) = tokio::sync::mpsc::channel(64);
    let running = Running::notifying(
        &source,
        &writer,
        HealLimits::default(),
        Some((queue, options)),
    );
    let began = tokio::time::Instant::now();
    let mut seen = Vec::new();

    tokio::time::sleep(Duration::from_secs(10)).await;
    notified(&mut events, &mut seen);
    assert!(seen.is_empty(), "a hold of 10 s is not told: {seen:?}");

    let started = next_of(EventKind::HoldStarted, &mut events, &mut seen).await;
    assert!(
        began.elapsed() >= Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(started.reason.as_deref(), Some("api_not_ready"));
    assert!(
        started
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("the engine does not answer"),
        "{started:?}"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    notified(&mut events, &mut seen);
    assert!(seen.is_empty(), "told once: {seen:?}");

    source.update(|status| {
        status.ready = true;
        status.not_ready_reason = None;
    });
    let ended = next_of(EventKind::HoldEnded, &mut events, &mut seen).await;
    assert_eq!(ended.reason.as_deref(), Some("api_not_ready"));
    assert!(
        ended
            .detail
            .as_deref()
            .unwrap_or_default()
            .starts_with("held for 1m"),
        "{ended:?}"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn heals_are_notified_only_when_asked_for() {
    for heals in [false, true] {
        let source = FakeSource::new(stopped_web());
        let writer = FakeWriter::default();
        let options = NotifyOptions {
            heals,
            ..NotifyOptions::default()
        };
        let (queue, mut events) = tokio::sync::mpsc::channel(64);
        let running = Running::notifying(
            &source,
            &writer,
            HealLimits::default(),
            Some((queue, options)),
        );
        eventually("web's start recorded", || {
            !running.journal.recent(1).is_empty()
        })
        .await;
        // The loop learns of the end at its next pass.
        source.update(|status| status.observed_at = Utc::now());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut seen = Vec::new();
        notified(&mut events, &mut seen);
        if heals {
            let heal = seen.first().expect("the heal is told");
            assert_eq!(heal.kind, EventKind::Heals);
            assert_eq!(heal.container.as_deref(), Some("web"));
            assert_eq!(heal.result, Some(ActionResult::Ok));
        } else {
            assert!(seen.is_empty(), "heals not asked for: {seen:?}");
        }
        running.stop().await;
    }
}

/// A wall clock that follows tokio's paused clock from the moment it is made, so that the plan's `now` moves
/// with the test's simulated time.
#[derive(Debug, Clone, Copy)]
struct PausedClock {
    start: tokio::time::Instant,
    utc: chrono::DateTime<Utc>,
}

impl PausedClock {
    fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            utc: Utc::now(),
        }
    }
}

impl Clock for PausedClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn utc(&self) -> chrono::DateTime<Utc> {
        self.utc
            + chrono::TimeDelta::from_std(tokio::time::Instant::now() - self.start)
                .unwrap_or_default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_compose_member_stopped_on_request_is_started_once_compose_had_its_time_not_before() {
    let clock = PausedClock::new();
    let mut status = stopped_web();
    let web = &mut status.containers[0];
    web.labels = std::collections::BTreeMap::from([(
        "com.docker.compose.project".to_owned(),
        "shop".to_owned(),
    )]);
    web.exit_code = Some(0);
    web.exit_cause = Some(shared::ExitCause::Requested);
    web.finished_at = Some(clock.utc());
    let source = FakeSource::new(status);
    let writer = FakeWriter::default();
    let begin = tokio::time::Instant::now();
    let running = Running::launch(&source, &writer, HealLimits::default(), None, clock);

    // Nothing changes in status-api meanwhile: only the wait's own end wakes the loop.
    tokio::time::sleep(crate::plan::SETTLE - Duration::from_millis(100)).await;
    assert!(
        writer.starts().is_empty(),
        "left to compose for its settle time"
    );
    eventually("web to be started once compose had its time", || {
        !writer.starts().is_empty()
    })
    .await;
    let started = writer.starts()[0] - begin;
    assert!(
        started >= crate::plan::SETTLE && started < crate::plan::SETTLE + Duration::from_secs(1),
        "{started:?}"
    );
    running.stop().await;
}
