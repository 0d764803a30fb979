//! The baseline: taken on first start, kept across restarts, never silently replaced.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use status_api::Application;
use test_support::{docker, ensure_test_images, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{settings, spawn_api, Options};

#[tokio::test]
async fn the_snapshot_survives_a_restart_unchanged_after_members_stopped() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("one", BUSYBOX_IMAGE, &[]).await?;
    scope.run("two", BUSYBOX_IMAGE, &[]).await?;
    let state = tempfile::tempdir()?;
    let options = Options {
        state_dir: Some(state.path().join("state")),
        ..Options::default()
    };

    let api = spawn_api(&scope, options.clone()).await?;
    let first = api.get_ok("/snapshot").await?;
    let names: Vec<_> = first["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|member| member["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, vec![scope.name("one"), scope.name("two")]);
    let file = state.path().join("state/snapshot.json");
    let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "snapshot.json must be private");
    let on_disk = std::fs::read(&file)?;
    api.stop().await?;

    docker(&["stop", &scope.name("two")]).await?;
    scope.run("three", BUSYBOX_IMAGE, &[]).await?;

    let api = spawn_api(&scope, options).await?;
    assert_eq!(
        api.get_ok("/snapshot").await?,
        first,
        "a restart must not retake the snapshot"
    );
    assert_eq!(std::fs::read(&file)?, on_disk, "nor rewrite its file");
    api.wait_for_drift(&scope.name("two"), "stopped", Duration::from_secs(2))
        .await?;
    api.wait_for_drift(&scope.name("three"), "unexpected", Duration::from_secs(2))
        .await?;
    api.stop().await
}

#[tokio::test]
async fn a_corrupt_snapshot_is_reported_and_left_as_it_was() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let state = tempfile::tempdir()?;
    let file = state.path().join("snapshot.json");
    let garbage = b"{\"format\": 1, \"taken_at\": \"2026-";
    std::fs::write(&file, garbage)?;

    let err = Application::build(&settings(&scope, state.path(), None))
        .await
        .expect_err("a corrupt snapshot must stop start-up");
    let message = format!("{err:#}");
    assert!(
        message.contains(&file.display().to_string()),
        "names the file: {message}"
    );
    assert!(
        message.contains("move it aside"),
        "says how to recover: {message}"
    );
    assert_eq!(
        std::fs::read(&file)?,
        garbage,
        "the file is left exactly as it was"
    );

    // The binary says so too, and exits non-zero.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_status-api"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .args(["--scope", &scope.scope()])
        .output()
        .await?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("snapshot.json"), "{stderr}");
    assert_eq!(std::fs::read(&file)?, garbage);
    Ok(())
}
