//! Snapshotted containers that go down, get paused, removed or sick come back: started, unpaused, recreated
//! from their spec, restarted.

use std::time::{Duration, SystemTime};

use test_support::{
    container_health, container_state, docker, ensure_test_images, inspect_json, wait_until,
    TestScope, BUSYBOX_IMAGE, HEALTH_IMAGE,
};

use crate::helpers::{
    assert_mentions, engine_events, kill_main_process, run_member, started_at, wait_for_restart,
    wait_for_state, Options, Pair, PATIENCE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_runs_again() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = scope.name("web");
    let id = scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    wait_for_state(&name, "running").await?;
    let pair = Pair::start(&scope, Options::default()).await?;
    let before = started_at(&name).await?;

    kill_main_process(&name).await?;

    let took = wait_for_restart(&name, &before).await?;
    eprintln!("kill -9 → running again, seen by polling the CLI: {took:?}");
    assert_eq!(
        inspect_json(&name).await?["Id"],
        id.as_str(),
        "the same container"
    );
    let record = pair
        .controller
        .wait_for_record(&name, "start", "ok")
        .await?;
    assert_eq!(record["drift"], "stopped");
    assert_mentions(&record, "/reason", "137");
    assert!(record["duration_seconds"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(
        pair.controller
            .metric("dockstate_controller_heal_seconds_count")
            .await?
            >= 1.0
    );
    assert_eq!(
        pair.controller
            .metric("dockstate_controller_actions_total{action=\"start\",result=\"ok\"}")
            .await?,
        1.0
    );
    promtool_accepts(&pair.controller.metrics().await?).await?;
    pair.stop().await
}

/// `promtool check metrics`, as Prometheus' own tooling reads the exposition (CI installs promtool).
async fn promtool_accepts(metrics: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;

    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|err| {
            anyhow::anyhow!("cannot run promtool (apt-get install prometheus): {err}")
        })?;
    let mut stdin = promtool.stdin.take().expect("piped");
    stdin.write_all(metrics.as_bytes()).await?;
    drop(stdin);
    let output = promtool.wait_with_output().await?;
    anyhow::ensure!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_container_is_started() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let pair = Pair::start(&scope, Options::default()).await?;
    let before = started_at(&name).await?;

    docker(&["stop", &name]).await?;

    wait_for_restart(&name, &before).await?;
    let record = pair
        .controller
        .wait_for_record(&name, "start", "ok")
        .await?;
    // Code 0, like a job that finished; but a stop someone asked for (a `kill` event before the `die`).
    assert_mentions(&record, "/reason", "exit code 0 (stopped on request)");
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_container_is_unpaused() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let pair = Pair::start(&scope, Options::default()).await?;
    let before = started_at(&name).await?;

    docker(&["pause", &name]).await?;

    pair.controller
        .wait_for_record(&name, "unpause", "ok")
        .await?;
    wait_for_state(&name, "running").await?;
    assert_eq!(started_at(&name).await?, before, "unpaused, not restarted");
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_container_is_recreated_from_its_spec() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let labels = scope.labels_args();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let (front, back, volume) = (scope.name("front"), scope.name("back"), scope.name("data"));
    docker(&[&["network", "create"], &labels[..], &[&front]].concat()).await?;
    docker(&[&["network", "create"], &labels[..], &[&back]].concat()).await?;
    docker(&[&["volume", "create"], &labels[..], &[&volume]].concat()).await?;
    let name = scope.name("db");
    let mount = format!("{volume}:/data");
    let old_id = scope
        .run_cmd(
            "db",
            BUSYBOX_IMAGE,
            &[
                "--network",
                &front,
                "--network-alias",
                "database",
                "--volume",
                &mount,
                "--publish",
                "127.0.0.1::8080",
                "--restart",
                "on-failure:3",
                "--env",
                "MODE=primary",
                "--env",
                "PASSWORD=hunter2",
                "--label",
                "tier=data",
                "--entrypoint",
                "/bin/busybox",
            ],
            &["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
        )
        .await?;
    docker(&["network", "connect", "--alias", "db-backend", &back, &name]).await?;
    wait_for_state(&name, "running").await?;
    let before = inspect_json(&name).await?;
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    docker(&["rm", "-f", &name]).await?;

    wait_until("the container to be recreated", PATIENCE, || async {
        let after = inspect_json(&name).await?;
        Ok(after["Id"] != old_id.as_str() && after["State"]["Status"] == "running")
    })
    .await?;
    let after = inspect_json(&name).await?;
    for field in [
        "Image",
        "Env",
        "Labels",
        "Cmd",
        "Entrypoint",
        "ExposedPorts",
        "WorkingDir",
    ] {
        assert_eq!(
            after["Config"][field], before["Config"][field],
            "Config.{field}"
        );
    }
    for field in ["Binds", "PortBindings", "RestartPolicy", "NetworkMode"] {
        assert_eq!(
            after["HostConfig"][field], before["HostConfig"][field],
            "HostConfig.{field}"
        );
    }
    assert_eq!(after["Name"], format!("/{name}"));
    assert_ne!(
        after["Config"]["Hostname"], before["Config"]["Hostname"],
        "the new container gets its own hostname"
    );
    let networks = after["NetworkSettings"]["Networks"]
        .as_object()
        .map(|networks| networks.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    assert_eq!(networks, vec![back.clone(), front.clone()]);
    let aliases =
        |network: &str| after["NetworkSettings"]["Networks"][network]["Aliases"].to_string();
    assert!(aliases(&front).contains("database"), "{}", aliases(&front));
    assert!(aliases(&back).contains("db-backend"), "{}", aliases(&back));
    let record = pair
        .controller
        .wait_for_record(&name, "recreate", "ok")
        .await?;
    assert_mentions(
        &record,
        "/detail",
        shared::short_id(after["Id"].as_str().unwrap_or("?")),
    );
    assert!(
        !record.to_string().contains("hunter2"),
        "no secrets in /actions"
    );
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_a_removed_container_is_only_reported() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let pair = Pair::start(&scope, Options::default()).await?;

    docker(&["rm", "-f", &name]).await?;

    let record = pair
        .controller
        .wait_for_record(&name, "report", "reported")
        .await?;
    assert_eq!(record["drift"], "removed");
    assert_mentions(&record, "/reason", "--token-file");
    assert_eq!(container_state(&name).await?, None, "not recreated");
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_container_is_restarted() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = scope.name("sick");
    let id = scope.run("sick", HEALTH_IMAGE, &[]).await?;
    wait_until("healthy", PATIENCE, || async {
        Ok(container_health(&name).await?.as_deref() == Some("healthy"))
    })
    .await?;
    let pair = Pair::start(&scope, Options::default()).await?;
    let before = started_at(&name).await?;

    docker(&["exec", &name, "/bin/busybox", "rm", "/tmp/healthy"]).await?;

    wait_for_restart(&name, &before).await?;
    let record = pair
        .controller
        .wait_for_record(&name, "restart", "ok")
        .await?;
    assert_eq!(record["drift"], "unhealthy");
    assert_eq!(
        inspect_json(&name).await?["Id"],
        id.as_str(),
        "restarted, not recreated"
    );
    wait_until("healthy again", PATIENCE, || async {
        Ok(container_health(&name).await?.as_deref() == Some("healthy"))
    })
    .await?;
    pair.stop().await
}

/// From a death to running again, by the engine's own clock (its `die` and `start` events), for the
/// controller and, beside it, for Docker's restart policy. Each sample is a container's first death, so
/// neither the controller's backoff nor Docker's own delays it. Printed; asserted only loosely, since tests
/// share the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_latency_compares_with_docker_s_restart_policy() -> anyhow::Result<()> {
    const SAMPLES: usize = 5;
    ensure_test_images().await?;
    let scope = TestScope::new();
    let reference_scope = TestScope::new();
    let mut ours = Vec::new();
    let mut references = Vec::new();
    for i in 0..SAMPLES {
        let suffix = format!("web{i}");
        ours.push((
            scope.name(&suffix),
            scope.run(&suffix, BUSYBOX_IMAGE, &[]).await?,
        ));
        references.push((
            reference_scope.name(&suffix),
            reference_scope
                .run(&suffix, BUSYBOX_IMAGE, &["--restart", "always"])
                .await?,
        ));
    }
    for (name, _) in ours.iter().chain(&references) {
        wait_for_state(name, "running").await?;
    }
    let pair = Pair::start(&scope, Options::default()).await?;

    let mut controller_samples = Vec::new();
    let mut docker_samples = Vec::new();
    for ((name, id), (reference, reference_id)) in ours.iter().zip(&references) {
        for (container, container_id, samples) in [
            (name, id, &mut controller_samples),
            (reference, reference_id, &mut docker_samples),
        ] {
            let from = SystemTime::now();
            let before = started_at(container).await?;
            kill_main_process(container).await?;
            wait_for_restart(container, &before).await?;
            let events = engine_events(container_id, from, SystemTime::now()).await?;
            let die = events
                .iter()
                .find(|(action, _)| action == "die")
                .map(|(_, t)| *t);
            let start = events
                .iter()
                .rev()
                .find(|(action, _)| action == "start")
                .map(|(_, t)| *t);
            if let (Some(die), Some(start)) = (die, start) {
                samples.push(Duration::from_nanos(u64::try_from(start - die)?));
            }
        }
    }
    controller_samples.sort();
    docker_samples.sort();
    let median = |samples: &[Duration]| samples.get(samples.len() / 2).copied().unwrap_or_default();
    eprintln!("die → start, status-controller: {controller_samples:?}");
    eprintln!("die → start, docker --restart always: {docker_samples:?}");
    eprintln!(
        "median die → start: status-controller {:?}, docker's restart policy {:?}",
        median(&controller_samples),
        median(&docker_samples)
    );
    assert_eq!(controller_samples.len(), SAMPLES, "every kill was healed");
    assert!(
        median(&controller_samples) < Duration::from_secs(2),
        "{controller_samples:?}"
    );
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_baselined_snapshot_is_picked_up() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            flags: vec!["--unexpected", "ignore"],
            ..Options::default()
        },
    )
    .await?;
    let name = scope.name("newcomer");
    scope.run("newcomer", BUSYBOX_IMAGE, &[]).await?;
    let record = pair
        .controller
        .wait_for_record(&name, "report", "reported")
        .await?;
    assert_eq!(record["drift"], "unexpected");

    // Re-baseline: what runs now, the newcomer included, is the snapshot.
    let api = pair.api.as_ref().map(|api| api.address).expect("running");
    let token = std::fs::read_to_string(pair.token_file().expect("a token"))?;
    let response = reqwest::Client::new()
        .post(format!("http://{api}/snapshot"))
        .bearer_auth(token.trim())
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 201);

    // Now it is a member, and a member that stops is started.
    let before = started_at(&name).await?;
    docker(&["stop", &name]).await?;
    wait_for_restart(&name, &before).await?;
    pair.controller
        .wait_for_record(&name, "start", "ok")
        .await?;
    pair.stop().await
}
