//! The `status-api` binary itself: JSON logs when stdout is not a terminal, a clean exit on SIGTERM
//! within five seconds, and a refusal to start that names the reason.

use std::process::Stdio;
use std::time::{Duration, Instant};

use test_support::{wait_until, TestScope};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn logs_json_and_stops_on_sigterm_within_5_seconds() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let state = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_status-api"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--resync-interval",
            "1h",
            "--scope",
            &scope.scope(),
        ])
        .arg("--state-dir")
        .arg(state.path())
        .env_remove("STATUS_API_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("stdout"))?,
    )
    .lines();

    // The first line says where it listens; every line is one JSON object.
    let mut address = None;
    let mut seen = Vec::new();
    while address.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("status-api exited early; it logged {seen:?}"))?;
        let event: serde_json::Value = serde_json::from_str(&line)
            .map_err(|err| anyhow::anyhow!("not JSON ({err}): {line}"))?;
        assert!(
            event["level"].is_string() && event["timestamp"].is_string(),
            "{event}"
        );
        address = event["address"].as_str().map(ToOwned::to_owned);
        seen.push(line);
    }
    let base = format!("http://{}", address.unwrap_or_default());
    let client = reqwest::Client::new();
    wait_until(
        "the binary to be ready",
        Duration::from_secs(20),
        || async {
            Ok(client
                .get(format!("{base}/ready"))
                .send()
                .await?
                .status()
                .is_success())
        },
    )
    .await?;
    // The image's HEALTHCHECK: the binary probes itself, 0 while it serves.
    let listen = base.trim_start_matches("http://").to_owned();
    let probe = tokio::process::Command::new(env!("CARGO_BIN_EXE_status-api"))
        .args(["--listen", &listen, "healthcheck"])
        .status()
        .await?;
    assert!(
        probe.success(),
        "healthcheck against a serving status-api: {probe}"
    );

    // A long poll in flight must not hold the exit up.
    let poll = tokio::spawn({
        let url = format!("{base}/status?since=999999&wait=60");
        let client = client.clone();
        async move { client.get(url).send().await.map(|r| r.status()) }
    });

    let pid = child.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let sent = Instant::now();
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(5), child.wait()).await??;
    println!("exited {exit} {:?} after SIGTERM", sent.elapsed());
    assert!(exit.success(), "a clean shutdown exits 0, got {exit}");
    let _ = poll.await;
    let probe = tokio::process::Command::new(env!("CARGO_BIN_EXE_status-api"))
        .args(["--listen", &listen, "healthcheck"])
        .stderr(Stdio::null())
        .status()
        .await?;
    assert_eq!(
        probe.code(),
        Some(1),
        "healthcheck against a stopped status-api"
    );
    while let Ok(Some(line)) = lines.next_line().await {
        serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|err| anyhow::anyhow!("not JSON ({err}): {line}"))?;
    }
    Ok(())
}

/// Runs the binary over a fresh state directory with `args` and returns its exit status and stderr; it is
/// expected to refuse to start, so it must exit by itself.
async fn refused_start(args: &[&str]) -> anyhow::Result<(std::process::ExitStatus, String)> {
    let scope = TestScope::new();
    let state = tempfile::tempdir()?;
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_status-api"))
        .args(["--resync-interval", "1h", "--scope", &scope.scope()])
        .args(args)
        .arg("--state-dir")
        .arg(state.path())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), run).await??;
    Ok((
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn an_empty_token_file_or_a_busy_port_stops_start_up_with_the_reason() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = dir.path().join("token");
    std::fs::write(&token, "\n")?;
    let token = token.to_string_lossy().into_owned();
    let (status, stderr) =
        refused_start(&["--listen", "127.0.0.1:0", "--token-file", &token]).await?;
    assert!(!status.success(), "started with an empty token file");
    assert!(
        stderr.contains(&format!(
            "the token file {token} is empty: put a secret in it"
        )),
        "{stderr}"
    );

    let missing = dir.path().join("missing").to_string_lossy().into_owned();
    let (status, stderr) =
        refused_start(&["--listen", "127.0.0.1:0", "--token-file", &missing]).await?;
    assert!(!status.success(), "started without its token file");
    assert!(
        stderr.contains(&format!("cannot read the token file {missing}")),
        "{stderr}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = busy.local_addr()?.to_string();
    let (status, stderr) = refused_start(&["--listen", &address]).await?;
    assert!(!status.success(), "started on a port already in use");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    Ok(())
}

/// Runs `status-api baseline-scope` over `state_dir` with `STATUS_API_SCOPE` set to `scope` (unset when
/// `None`): its exit code, stdout and stderr.
async fn baseline_scope(
    state_dir: &std::path::Path,
    scope: Option<&str>,
) -> anyhow::Result<(Option<i32>, String, String)> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_status-api"));
    command
        .arg("--state-dir")
        .arg(state_dir)
        .arg("baseline-scope")
        .env_remove("STATUS_API_SCOPE")
        .kill_on_drop(true);
    if let Some(scope) = scope {
        command.env("STATUS_API_SCOPE", scope);
    }
    let output = tokio::time::timeout(Duration::from_secs(10), command.output()).await??;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn baseline_scope_prints_the_stored_scope_and_fails_when_the_configured_one_differs(
) -> anyhow::Result<()> {
    let state = tempfile::tempdir()?;
    let (code, out, _) = baseline_scope(state.path(), None).await?;
    assert_eq!((code, out.as_str()), (Some(0), ""), "no snapshot: nothing");

    let snapshot = |scope: serde_json::Value| {
        serde_json::json!({"format": 1, "taken_at": "2026-11-22T10:00:00Z", "scope": scope, "containers": []})
            .to_string()
    };
    let file = state.path().join("snapshot.json");
    std::fs::write(&file, snapshot(serde_json::json!("team=web")))?;
    let (code, out, err) = baseline_scope(state.path(), Some("team=web")).await?;
    assert_eq!((code, out.as_str()), (Some(0), "team=web\n"), "{err}");

    for other in [None, Some(""), Some("team=db")] {
        let (code, out, err) = baseline_scope(state.path(), other).await?;
        assert_eq!(
            (code, out.as_str()),
            (Some(2), "team=web\n"),
            "{other:?}: {err}"
        );
        for part in ["`team=web`", "STATUS_API_SCOPE", "POST /snapshot"] {
            assert!(err.contains(part), "{other:?}, `{part}`: {err}");
        }
    }

    std::fs::write(&file, snapshot(serde_json::Value::Null))?;
    let (code, out, _) = baseline_scope(state.path(), None).await?;
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "\n"),
        "the whole host: an empty line"
    );
    let (code, _, err) = baseline_scope(state.path(), Some("team=web")).await?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("whole host"), "{err}");

    std::fs::write(&file, "{not json")?;
    let (code, _, err) = baseline_scope(state.path(), None).await?;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("snapshot.json"), "{err}");
    Ok(())
}
