//! `ports` in `/status`, as `docker ps` shows them: published ports with their host address and port,
//! exposed ones without, for a container running when status-api starts and for one started after; none
//! once a container stops.

use std::time::Duration;

use serde_json::{json, Value};
use test_support::{docker, ensure_test_images, wait_until, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{find, spawn_api, Options};

/// The host port the engine chose for `port` (`80/tcp`) of `container`, from `docker port`.
async fn host_port(container: &str, port: &str) -> anyhow::Result<u16> {
    let out = docker(&["port", container, port]).await?;
    let line = out.lines().next().unwrap_or_default();
    let (_, port) = line
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("`docker port {container} {port}` said {out:?}"))?;
    Ok(port.trim().parse()?)
}

#[tokio::test]
async fn status_lists_published_and_exposed_ports_like_docker_ps() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    // Random host ports on loopback only: nothing else on the host is disturbed, and no test clashes.
    scope
        .run(
            "web",
            BUSYBOX_IMAGE,
            &[
                "-p",
                "127.0.0.1::80",
                "-p",
                "127.0.0.1::53/udp",
                "--expose",
                "9000",
            ],
        )
        .await?;
    scope.run("plain", BUSYBOX_IMAGE, &[]).await?;
    let api = spawn_api(&scope, Options::default()).await?;
    api.wait_ready().await?;

    let web = scope.name("web");
    let expected = json!([
        {"host_ip": "127.0.0.1", "host_port": host_port(&web, "53/udp").await?, "container_port": 53, "protocol": "udp"},
        {"host_ip": "127.0.0.1", "host_port": host_port(&web, "80/tcp").await?, "container_port": 80, "protocol": "tcp"},
        {"container_port": 9000, "protocol": "tcp"},
    ]);
    let status = api.get_ok("/status").await?;
    let shown = find(&status, &web).map(|c| c["ports"].clone());
    assert_eq!(shown, Some(expected.clone()), "{status}");
    let plain = find(&status, &scope.name("plain")).map(|c| c["ports"].clone());
    assert_eq!(plain, Some(json!([])), "{status}");
    assert_eq!(
        api.get_ok(&format!("/status/{web}")).await?["ports"],
        expected
    );

    // Started after status-api: its ports arrive with the inspect that follows the start event.
    scope
        .run("late", BUSYBOX_IMAGE, &["-p", "127.0.0.1::8080"])
        .await?;
    let late = scope.name("late");
    let late_expected = json!([
        {"host_ip": "127.0.0.1", "host_port": host_port(&late, "8080/tcp").await?, "container_port": 8080, "protocol": "tcp"},
    ]);
    let ports_of = |name: String| {
        let api = &api;
        async move {
            let status = api.get_ok("/status?all=true").await?;
            Ok::<Value, anyhow::Error>(
                find(&status, &name)
                    .map(|c| c["ports"].clone())
                    .unwrap_or_default(),
            )
        }
    };
    wait_until(
        "the late container's ports",
        Duration::from_secs(5),
        || async { Ok(ports_of(late.clone()).await? == late_expected) },
    )
    .await?;

    // Stopped: the engine unbinds them, and `docker ps -a` shows none; nor does /status.
    docker(&["stop", "--time", "1", &web]).await?;
    assert_eq!(
        docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("name=^{web}$"),
            "--format",
            "{{.Ports}}"
        ])
        .await?
        .trim(),
        ""
    );
    wait_until(
        "the stopped container's ports to go",
        Duration::from_secs(5),
        || async { Ok(ports_of(web.clone()).await? == json!([])) },
    )
    .await?;
    api.stop().await
}
