//! `--once`, through the built binary: the plan as a table, and terraform-style exit codes — 0 in sync,
//! 2 drift found, 1 error — that cron and CI can branch on.

use std::process::Output;

use test_support::{container_state, docker, ensure_test_images, wait_until, TestScope};
use tokio::process::Command;

use crate::helpers::{api_for_scope, init_logs, run_member, BINARY, PATIENCE};

/// Runs `status-controller --once <args>` with `envs`.
async fn once(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Output> {
    Ok(Command::new(BINARY)
        .arg("--once")
        .args(args)
        .env_remove("STATUS_CONTROLLER_DRY_RUN")
        .envs(envs.iter().copied())
        .kill_on_drop(true)
        .output()
        .await?)
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_in_sync_drift_or_error() -> anyhow::Result<()> {
    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let api = api_for_scope(&scope).await?;
    let url = format!("http://{}", api.address);

    // In sync: 0, and one line that says so.
    let output = once(&["--api-url", &url], &[]).await?;
    assert_eq!(
        code(&output),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    assert!(text.starts_with("In sync with the snapshot"), "{text}");
    assert!(
        text.contains("(1 container, scope dockstate.test="),
        "{text}"
    );

    // Drift, dry run (set through the environment): 2, a table, and nothing changed.
    docker(&["stop", &name]).await?;
    let last = std::sync::Mutex::new(None);
    wait_until("--once --dry-run to see the drift", PATIENCE, || async {
        let envs = [
            ("STATUS_CONTROLLER_API_URL", url.as_str()),
            ("STATUS_CONTROLLER_DRY_RUN", "1"),
        ];
        let output = once(&[], &envs).await?;
        let drift = code(&output) == Some(2);
        *last.lock().expect("not poisoned") = Some(output);
        Ok(drift)
    })
    .await?;
    let output = last.into_inner()?.expect("ran");
    let table = stdout(&output);
    eprintln!("--once --dry-run printed:\n{table}");
    assert!(table.starts_with("CONTAINER"), "{table}");
    let row = table
        .lines()
        .find(|line| line.starts_with(&name))
        .unwrap_or_default();
    for cell in ["exited", "stopped", "heal", "start", "dry run"] {
        assert!(row.contains(cell), "{cell} missing from {row:?}");
    }
    assert!(table.contains("Dry run: nothing was changed."), "{table}");
    assert_eq!(container_state(&name).await?.as_deref(), Some("exited"));

    // Drift, applied (compose's default spelling of "no dry run"): 2, and the container runs when it returns.
    let output = once(
        &["--api-url", &url],
        &[("STATUS_CONTROLLER_DRY_RUN", "false")],
    )
    .await?;
    assert_eq!(
        code(&output),
        Some(2),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).contains("start"), "{}", stdout(&output));
    assert_eq!(container_state(&name).await?.as_deref(), Some("running"));

    // In sync again (once status-api has seen the start).
    wait_until("--once to report in sync again", PATIENCE, || async {
        Ok(code(&once(&["--api-url", &url], &[]).await?) == Some(0))
    })
    .await?;

    // Errors: 1, with a message that says what is wrong — never 2, which would read as drift.
    api.stop().await?;
    let output = once(&["--api-url", &url], &[]).await?;
    assert_eq!(code(&output), Some(1));
    assert!(
        stderr(&output).contains("unreachable"),
        "{}",
        stderr(&output)
    );
    let output = once(&["--api-url", &url, "--interval", "1ms"], &[]).await?;
    assert_eq!(code(&output), Some(1), "a bad flag is an error, not drift");
    assert!(
        stderr(&output).contains("--interval"),
        "{}",
        stderr(&output)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_hold_in_its_state_dir_keeps_once_from_acting() -> anyhow::Result<()> {
    use status_controller::hold_file::{HoldFile, MaintenanceHold};
    use status_controller::state_dir::ControllerDir;

    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let api = api_for_scope(&scope).await?;
    let url = format!("http://{}", api.address);
    let state_dir = tempfile::tempdir()?;
    let now = chrono::Utc::now();
    let checked = ControllerDir::inspect(state_dir.path())?;
    HoldFile::in_dir(checked.path(), checked.user()).save(&MaintenanceHold {
        reason: "disk swap".into(),
        by: "ops".into(),
        set_at: now,
        until: now + chrono::Duration::minutes(10),
    })?;
    let state = state_dir.path().to_string_lossy().into_owned();
    docker(&["stop", &name]).await?;

    let last = std::sync::Mutex::new(None);
    wait_until("--once to see the drift", PATIENCE, || async {
        let output = once(&["--api-url", &url, "--state-dir", &state], &[]).await?;
        let drift = code(&output) == Some(2);
        *last.lock().expect("not poisoned") = Some(output);
        Ok(drift)
    })
    .await?;
    let output = last.into_inner()?.expect("ran");
    let table = stdout(&output);
    assert!(
        table.contains("held for maintenance: not started"),
        "{table}{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("held for maintenance"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        container_state(&name).await?.as_deref(),
        Some("exited"),
        "not started"
    );
    api.stop().await
}
