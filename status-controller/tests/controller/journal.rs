//! The journal says what the engine did: after an engine restart stops twenty members, each is started once,
//! and `/actions` holds exactly one `start`/`ok` per member — the same count the engine's own events show.
//! And with `--state-dir` it outlives the controller: a new controller on the same directory serves the
//! heals of the one before.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use test_support::{
    ensure_test_images, wait_until, PrivateEngine, StatusApiOptions, StatusApiServer, TestScope,
    BUSYBOX_IMAGE,
};

use crate::helpers::{
    api_for_scope, init_logs, kill_main_process, run_member, started_at, unix, wait_for_restart,
    Controller,
};

const MEMBERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_engine_restart_each_member_is_started_once_and_journalled_once(
) -> anyhow::Result<()> {
    init_logs();
    ensure_test_images().await?;
    let scope = TestScope::new();
    let mut engine = PrivateEngine::start().await?;
    engine.load_image(BUSYBOX_IMAGE).await?;
    let label = scope.label();
    let mut names = Vec::new();
    for i in 0..MEMBERS {
        let name = scope.name(&format!("m{i:02}"));
        engine
            .docker(&[
                "run",
                "-d",
                "--label",
                &label,
                "--name",
                &name,
                BUSYBOX_IMAGE,
            ])
            .await?;
        names.push(name);
    }
    let host = engine.host();
    let api = StatusApiServer::start(StatusApiOptions {
        docker_host: Some(host.clone()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let controller = Controller::start(api.address, &["--docker-host", &host], None).await?;
    controller.wait_ready().await?;

    // Without live-restore, a restarted dockerd stops what ran under the one before it.
    let from = SystemTime::now();
    engine.restart().await?;

    let running = || async {
        let out = engine
            .docker(&[
                "ps",
                "--filter",
                &format!("label={label}"),
                "--filter",
                "status=running",
                "--format",
                "{{.Names}}",
            ])
            .await?;
        anyhow::Ok(out.lines().filter(|line| !line.is_empty()).count())
    };
    wait_until(
        "every member to run again",
        Duration::from_secs(60),
        || async { Ok(running().await? == MEMBERS) },
    )
    .await?;
    // Let any late pass planned on an old view show itself before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let to = SystemTime::now();

    let actions = controller.actions().await?;
    let mut ok_starts: BTreeMap<String, usize> = BTreeMap::new();
    for record in actions["actions"].as_array().cloned().unwrap_or_default() {
        if record["action"] == "start" && record["result"] == "ok" {
            let name = record["container"].as_str().unwrap_or_default().to_owned();
            *ok_starts.entry(name).or_default() += 1;
        }
    }
    let events = engine
        .docker(&[
            "events",
            "--since",
            &unix(from),
            "--until",
            &unix(to),
            "--filter",
            "event=start",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .await?;
    let mut engine_starts: BTreeMap<String, usize> = BTreeMap::new();
    for name in events.lines().filter(|line| !line.is_empty()) {
        *engine_starts.entry(name.to_owned()).or_default() += 1;
    }
    let once: BTreeMap<String, usize> = names.iter().map(|name| (name.clone(), 1)).collect();
    assert_eq!(engine_starts, once, "the engine's own start events");
    assert_eq!(ok_starts, once, "start/ok records in /actions: {actions}");
    assert_eq!(
        controller
            .metric("dockstate_controller_actions_total{action=\"start\",result=\"ok\"}")
            .await?,
        MEMBERS as f64
    );
    assert_eq!(
        controller
            .metric("dockstate_controller_heal_seconds_count")
            .await?,
        MEMBERS as f64,
        "only real heals are timed"
    );
    controller.stop().await?;
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_controller_on_the_same_state_dir_serves_the_heals_of_the_one_before(
) -> anyhow::Result<()> {
    init_logs();
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let api = api_for_scope(&scope).await?;
    let state = tempfile::tempdir()?;
    let dir = state.path().join("controller");
    let dir_arg = dir.to_str().context("utf-8")?;

    let first = Controller::start(api.address, &["--state-dir", dir_arg], None).await?;
    first.wait_ready().await?;
    let before = started_at(&name).await?;
    kill_main_process(&name).await?;
    wait_for_restart(&name, &before).await?;
    let healed = first.wait_for_record(&name, "start", "ok").await?;
    let first_actions = first.actions().await?["actions"].clone();
    first.stop().await?;

    let journal = dir.join("actions.jsonl");
    let mode = std::fs::metadata(&journal)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the journal file is private");

    let second = Controller::start(api.address, &["--state-dir", dir_arg], None).await?;
    second.wait_ready().await?;
    let served = second.actions_for(&name).await?;
    assert_eq!(
        served.first(),
        Some(&healed),
        "the heal before the restart, as it was served then: {served:?}"
    );
    assert_eq!(
        second.actions().await?["actions"],
        first_actions,
        "everything the first one did, nothing more"
    );
    let health: serde_json::Value = reqwest::get(second.url("/health")).await?.json().await?;
    assert!(health.get("journal_problem").is_none(), "{health}");
    second.stop().await?;
    api.stop().await
}
