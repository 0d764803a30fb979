//! The built binary as it runs in production: small, and on SIGTERM it finishes the action in hand, starts
//! no new one, and exits within 10 s.

use std::time::{Duration, Instant};

use anyhow::Context;
use test_support::{container_state, docker, ensure_test_images, TestScope, BUSYBOX_IMAGE};
use tokio::process::Command;

use crate::helpers::{
    api_for_scope, init_logs, run_member, started_at, wait_for_restart, Binary, BINARY,
};

/// A field of /proc/<pid>/status, in KiB (`VmRSS`, `RssAnon`, …).
fn memory_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_heals_stays_small_and_stops_cleanly_on_sigterm() -> anyhow::Result<()> {
    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let api = api_for_scope(&scope).await?;

    let api_url = format!("http://{}", api.address);
    let mut binary = Binary::start(&["--api-url", &api_url, "--interval", "1h"]).await?;
    let (pid, address) = (binary.pid, binary.address.clone());
    binary.wait_ready().await?;

    // It heals, as the in-process one does.
    let before = started_at(&name).await?;
    docker(&["stop", &name]).await?;
    wait_for_restart(&name, &before).await?;
    let (resident, anonymous) = (memory_kib(pid, "VmRSS")?, memory_kib(pid, "RssAnon")?);
    eprintln!(
        "status-controller after a heal: {:.1} MiB resident, {:.1} MiB of it its own (anonymous) memory",
        resident as f64 / 1024.0,
        anonymous as f64 / 1024.0
    );
    if cfg!(debug_assertions) {
        // An unoptimised build maps ~17 MiB of code alone; what the program holds is its anonymous memory.
        // The release build, ~8 MiB in all, is held to the 20 MiB budget below.
        assert!(anonymous < 8 * 1024, "{anonymous} KiB anonymous");
    } else {
        assert!(resident < 20 * 1024, "{resident} KiB resident");
    }

    // The image's HEALTHCHECK: the binary probes its own /health.
    let healthcheck = |listen: String| async move {
        Command::new(BINARY)
            .args(["--listen", &listen, "healthcheck"])
            .output()
            .await
    };
    let probe = healthcheck(address.clone()).await?;
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    // A stranger that takes 3 s to stop: SIGTERM arrives while the stop is under way.
    scope
        .run_cmd(
            "slow",
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
    let slow = scope.name("slow");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        container_state(&slow).await?.as_deref(),
        Some("running"),
        "still stopping"
    );
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), binary.child.wait())
        .await
        .context("did not exit within 10 s of SIGTERM")??;
    let took = signalled.elapsed();
    eprintln!("exited {took:?} after SIGTERM, having finished the stop in hand");
    assert!(exit.success(), "{exit}");
    assert_eq!(
        container_state(&slow).await?.as_deref(),
        Some("exited"),
        "the stop in hand was finished"
    );
    let probe = healthcheck(address.clone()).await?;
    assert_eq!(probe.status.code(), Some(1), "nothing serves any more");
    let logs = binary.logs().await?;
    assert!(
        logs.iter()
            .any(|line| line.contains("action done") && line.contains(&slow)),
        "{logs:#?}"
    );
    api.stop().await
}
