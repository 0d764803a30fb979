//! The helpers against the real Docker engine: the test images build and behave as documented, and a
//! `TestScope` cleans up its own containers, networks and volumes and nothing else.

use std::time::{Duration, Instant};

use test_support::{
    container_health, container_state, docker, ensure_test_images, inspect_json, main_pid,
    wait_until, TestScope, BUSYBOX_IMAGE, HEALTH_IMAGE,
};

const PATIENCE: Duration = Duration::from_secs(30);

async fn wait_for_state(name: &str, want: &str) -> anyhow::Result<Duration> {
    wait_until(&format!("{name} to be {want}"), PATIENCE, || async {
        Ok(container_state(name).await?.as_deref() == Some(want))
    })
    .await
}

async fn wait_for_health(name: &str, want: &str) -> anyhow::Result<Duration> {
    wait_until(&format!("{name} to be {want}"), PATIENCE, || async {
        Ok(container_health(name).await?.as_deref() == Some(want))
    })
    .await
}

#[tokio::test]
async fn a_container_of_each_image_runs() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();

    for (suffix, image) in [("plain", BUSYBOX_IMAGE), ("health", HEALTH_IMAGE)] {
        let id = scope.run(suffix, image, &[]).await?;
        assert_eq!(id.len(), 64, "docker run -d prints the full id, got {id:?}");
        let name = scope.name(suffix);
        wait_for_state(&name, "running").await?;

        let inspected = inspect_json(&name).await?;
        assert_eq!(inspected["Id"], id.as_str());
        assert_eq!(inspected["Config"]["Labels"]["dockstate.test"], scope.id());
        assert!(main_pid(&name).await? > 1);
        // `sh -c` works, applets are on the PATH and the working directory is /tmp.
        assert_eq!(
            docker(&["exec", &name, "sh", "-c", "pwd; echo hi | tr a-z A-Z"]).await?,
            "/tmp\nHI"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_health_image_turns_healthy_then_unhealthy() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = scope.name("h");
    scope.run("h", HEALTH_IMAGE, &[]).await?;

    let became_healthy = wait_for_health(&name, "healthy").await?;
    docker(&["exec", &name, "/bin/busybox", "rm", "/tmp/healthy"]).await?;
    let became_unhealthy = wait_for_health(&name, "unhealthy").await?;
    eprintln!("healthy after {became_healthy:?}, unhealthy {became_unhealthy:?} after the rm");

    assert_eq!(
        container_state(&name).await?.as_deref(),
        Some("running"),
        "unhealthy is not stopped"
    );
    assert_eq!(container_health(&scope.name("nope")).await?, None);
    Ok(())
}

#[tokio::test]
async fn the_plain_image_has_no_health_and_stops_at_once() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = scope.name("p");
    scope.run("p", BUSYBOX_IMAGE, &[]).await?;
    wait_for_state(&name, "running").await?;
    assert_eq!(container_health(&name).await?, None);

    // The command handles SIGTERM, so `docker stop` need not wait out its grace period and kill.
    let started = Instant::now();
    docker(&["stop", "--time", "20", &name]).await?;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        started.elapsed()
    );
    assert_eq!(container_state(&name).await?.as_deref(), Some("exited"));
    assert_eq!(inspect_json(&name).await?["State"]["ExitCode"], 0);
    Ok(())
}

#[tokio::test]
async fn run_cmd_and_create_shape_the_container() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();

    scope
        .run_cmd(
            "exits",
            BUSYBOX_IMAGE,
            &["--label", "extra=yes"],
            &["sh", "-c", "exit 3"],
        )
        .await?;
    wait_for_state(&scope.name("exits"), "exited").await?;
    let exited = inspect_json(&scope.name("exits")).await?;
    assert_eq!(exited["State"]["ExitCode"], 3);
    assert_eq!(exited["Config"]["Labels"]["extra"], "yes");

    scope.create("idle", BUSYBOX_IMAGE, &[]).await?;
    assert_eq!(
        container_state(&scope.name("idle")).await?.as_deref(),
        Some("created")
    );
    scope
        .create_cmd("idle2", BUSYBOX_IMAGE, &[], &["true"])
        .await?;
    assert_eq!(
        inspect_json(&scope.name("idle2")).await?["Config"]["Cmd"],
        serde_json::json!(["true"])
    );
    assert!(
        main_pid(&scope.name("idle")).await.is_err(),
        "a created container has no process"
    );
    Ok(())
}

#[tokio::test]
async fn dropping_a_scope_removes_its_own_things_and_nothing_else() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let keep = TestScope::new();
    let kept = keep.name("kept");
    keep.run("kept", BUSYBOX_IMAGE, &[]).await?;

    let gone = TestScope::new();
    let (running, created) = (gone.name("running"), gone.name("created"));
    gone.run("running", BUSYBOX_IMAGE, &[]).await?;
    gone.create("created", HEALTH_IMAGE, &[]).await?;
    let labels = gone.labels_args();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let network = gone.name("net");
    let volume = gone.name("vol");
    docker(&[&["network", "create"], &labels[..], &[&network]].concat()).await?;
    docker(&[&["volume", "create"], &labels[..], &[&volume]].concat()).await?;
    // A container on the scope's network with its volume: removal must go containers first.
    gone.run(
        "attached",
        BUSYBOX_IMAGE,
        &[
            "--network",
            &network,
            "--volume",
            &format!("{volume}:/data"),
        ],
    )
    .await?;

    drop(gone);

    assert_eq!(container_state(&running).await?, None);
    assert_eq!(container_state(&created).await?, None);
    assert!(
        docker(&["network", "inspect", &network]).await.is_err(),
        "the network is gone"
    );
    assert!(
        docker(&["volume", "inspect", &volume]).await.is_err(),
        "the volume is gone"
    );
    assert_eq!(
        container_state(&kept).await?.as_deref(),
        Some("running"),
        "another scope's container stays"
    );

    drop(keep);
    assert_eq!(container_state(&kept).await?, None);
    Ok(())
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let (names, received) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            ensure_test_images().await.unwrap();
            let scope = TestScope::new();
            scope.run("doomed", BUSYBOX_IMAGE, &[]).await.unwrap();
            names.send(scope.name("doomed")).unwrap();
            panic!("the test fails while its scope is alive");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");

    let name = received.recv().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(container_state(&name)).unwrap(), None);
}

#[tokio::test]
async fn errors_name_the_command_and_what_docker_said() {
    let err = docker(&["inspect", "--type", "container", "dockstate-no-such-thing"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("docker inspect --type container dockstate-no-such-thing"),
        "{err}"
    );
    assert!(err.contains("No such container"), "{err}");
    assert_eq!(
        container_state("dockstate-no-such-thing").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn building_concurrently_is_safe() -> anyhow::Result<()> {
    let (a, b, c) = tokio::join!(
        ensure_test_images(),
        ensure_test_images(),
        ensure_test_images()
    );
    a.and(b).and(c)?;
    for image in [BUSYBOX_IMAGE, HEALTH_IMAGE] {
        docker(&["image", "inspect", image]).await?;
    }
    Ok(())
}

/// The private engine starts on its own bridge and range, takes images from the shared engine, lives through
/// `kill -9` and a restart with its containers still known, answers nothing while frozen, and leaves no bridge,
/// mount or process behind.
#[tokio::test]
async fn a_private_engine_can_be_killed_frozen_and_cleaned_up() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let mut engine = test_support::PrivateEngine::start().await?;
    engine.load_image(BUSYBOX_IMAGE).await?;
    engine
        .docker(&["run", "-d", "--name", "member", BUSYBOX_IMAGE])
        .await?;
    let address = engine
        .docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "member"])
        .await?;
    let range = engine.range();
    let address: std::net::Ipv4Addr = address.parse()?;
    assert!(
        range.overlaps(&test_support::address_range::Ipv4Net::new(address, 32))
            && range.overlaps(&"198.18.0.0/15".parse()?),
        "an address of its own range {range} in 198.18.0.0/15, got {address}"
    );
    let host = test_support::address_range::host_prefixes()?;
    assert!(
        host.iter()
            .filter(|prefix| prefix.overlaps(&range))
            .all(|prefix| prefix.overlaps(&range.subnet24(0).unwrap()) && prefix.prefix() >= 24),
        "nothing of the host but the engine's own bridge is in {range}: {host:?}"
    );
    let pid = engine.pid().expect("running");
    let cmdline_of = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline")).map(|cmd| cmd.replace('\0', " "))
    };
    assert!(cmdline_of(pid)?.contains("--exec-root"), "our dockerd");

    engine.kill().await?;
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    engine.restart().await?;
    let after = engine
        .docker(&["ps", "-a", "--format", "{{.Names}}"])
        .await?;
    assert_eq!(
        after, "member",
        "the container survives the engine's restart"
    );

    engine.freeze()?;
    let frozen = tokio::time::timeout(
        Duration::from_secs(2),
        engine.docker(&["version", "--format", "{{.Server.Version}}"]),
    )
    .await;
    assert!(frozen.is_err(), "a frozen engine answers nothing");
    engine.thaw()?;
    engine.docker(&["version"]).await?;

    let host = engine.host();
    drop(engine);
    let socket = host.trim_start_matches("unix://");
    assert!(
        !std::path::Path::new(socket).exists(),
        "its directory is gone"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    assert!(
        !mounts.contains("/tmp/dockstate-engine-"),
        "no mount is left"
    );
    Ok(())
}
