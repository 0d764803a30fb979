//! The state directory status-api trusts: a read-only one with a snapshot is served (and `POST /snapshot` says
//! why it cannot write), one that others can write or another user owns is refused with what to run, a second
//! status-api on the same directory waits not ready until the first exits, a newer format is named as such,
//! and temporary files a crash left are removed at start.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use test_support::{ensure_test_images, wait_until, TestScope, BUSYBOX_IMAGE};

use crate::helpers::TOKEN;
use crate::process::{refused, Launch, StatusApiProcess};

/// The unprivileged user the read-only case runs status-api as, when the tests run as root.
const OTHER_UID: u32 = 10001;

/// A snapshot file with no members, taken in `scope`, in format `format`.
fn write_snapshot(dir: &Path, scope: &str, format: u32) -> anyhow::Result<Vec<u8>> {
    let body = serde_json::to_vec_pretty(&json!({
        "format": format,
        "taken_at": "2026-01-01T00:00:00Z",
        "scope": scope,
        "containers": [],
    }))?;
    let file = dir.join("snapshot.json");
    std::fs::write(&file, &body)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    Ok(body)
}

/// A fresh `state` directory (mode 0700) inside a temporary one, and a token file beside it.
fn state_and_token() -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf, std::path::PathBuf)>
{
    let root = tempfile::tempdir()?;
    let state = root.path().join("state");
    std::fs::create_dir(&state)?;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700))?;
    let token = root.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n"))?;
    Ok((root, state, token))
}

fn names_in(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

#[tokio::test]
async fn a_read_only_state_dir_with_a_snapshot_serves_and_post_snapshot_says_why_it_cannot_write(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    let (root, state, token) = state_and_token()?;
    let on_disk = write_snapshot(&state, &scope.scope(), 1)?;
    // Read-only for status-api: as root (who can write anywhere) the binary runs as another user over a
    // root-owned directory, which it trusts (root can write anything anyway) but cannot write; otherwise the
    // directory is simply made read-only.
    let run_as = if is_root() {
        for path in [root.path(), state.as_path()] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        }
        for path in [state.join("snapshot.json"), token.clone()] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
        }
        let socket_gid = std::fs::metadata("/var/run/docker.sock")?.gid();
        Some((OTHER_UID, socket_gid))
    } else {
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o500))?;
        None
    };
    let api = StatusApiProcess::start(Launch {
        state_dir: &state,
        scope: &scope.scope(),
        token_file: Some(&token),
        run_as,
    })
    .await?;
    api.wait_ready().await?;

    let (_, ready) = api.get("/ready").await?;
    assert_eq!(ready["checks"]["state_dir"]["status"], "UP", "{ready}");
    let detail = ready["checks"]["state_dir"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("read-only"), "{ready}");
    let (status, drift) = api.get("/drift").await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "the loaded snapshot is served: {drift}"
    );

    let (status, body) = api.retake(TOKEN).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "state_read_only", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "the state directory {} is read-only",
            state.display()
        )),
        "names the directory: {message}"
    );
    assert!(
        message.contains("chown") && message.contains("restart"),
        "says how to fix it: {message}"
    );

    assert_eq!(
        std::fs::read(state.join("snapshot.json"))?,
        on_disk,
        "nothing was written"
    );
    assert_eq!(
        names_in(&state)?,
        vec!["snapshot.json"],
        "not even a lock file"
    );
    let exit = api.terminate().await?;
    assert!(exit.success(), "{exit}");
    Ok(())
}

#[tokio::test]
async fn a_state_dir_others_can_write_or_another_user_owns_is_refused_with_what_to_run(
) -> anyhow::Result<()> {
    let scope = TestScope::new();
    let (_root, state, _token) = state_and_token()?;
    let launch = Launch {
        state_dir: &state,
        scope: &scope.scope(),
        token_file: None,
        run_as: None,
    };

    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o770))?;
    let (status, stderr) = refused(launch).await?;
    assert!(!status.success(), "started over a group-writable state dir");
    for part in [
        format!("status-api will not use {}", state.display()),
        "writable by its group (mode 0770)".to_owned(),
        format!("chmod go-w {}", state.display()),
    ] {
        assert!(stderr.contains(&part), "missing `{part}` in: {stderr}");
    }
    assert!(
        names_in(&state)?.is_empty(),
        "nothing written before the refusal"
    );

    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700))?;
    write_snapshot(&state, &scope.scope(), 1)?;
    let file = state.join("snapshot.json");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))?;
    let (status, stderr) = refused(launch).await?;
    assert!(!status.success(), "started over an other-writable snapshot");
    assert!(
        stderr.contains(&format!("status-api will not use {}", file.display()))
            && stderr.contains(&format!("chmod go-w {}", file.display())),
        "{stderr}"
    );

    if is_root() {
        // Owned by someone else: only root can set that up.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        std::os::unix::fs::chown(&state, Some(4242), None)?;
        let (status, stderr) = refused(launch).await?;
        assert!(!status.success(), "started over another user's state dir");
        assert!(
            stderr.contains("owned by uid 4242, but status-api runs as uid 0")
                && stderr.contains(&format!("chown 0 {}", state.display())),
            "{stderr}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_second_status_api_on_the_same_dir_waits_not_ready_until_the_first_exits_then_takes_over(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    let (_root, state, token) = state_and_token()?;
    let launch = Launch {
        state_dir: &state,
        scope: &scope.scope(),
        token_file: Some(&token),
        run_as: None,
    };
    let first = StatusApiProcess::start(launch).await?;
    first.wait_ready().await?;
    let (_, baseline) = first.get("/snapshot").await?;

    let second = StatusApiProcess::start(launch).await?;
    let lock = state.join(".lock");
    // It serves, is live, follows the engine — and is not ready while the first holds the lock.
    wait_until(
        "the second to see the engine",
        Duration::from_secs(20),
        || async {
            let (_, ready) = second.get("/ready").await?;
            Ok(ready["checks"]["docker"]["status"] == "UP")
        },
    )
    .await?;
    assert_eq!(second.get("/health").await?.0, StatusCode::OK);
    let (status, ready) = second.get("/ready").await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["checks"]["state_dir"]["status"], "DOWN", "{ready}");
    let detail = ready["checks"]["state_dir"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail.contains(&lock.display().to_string())
            && detail.contains(&format!("pid {}", first.pid)),
        "names the lock and its holder: {ready}"
    );
    let (_, status_body) = second.get("/status").await?;
    assert_eq!(status_body["ready"], false);
    let (status, body) = second.retake(TOKEN).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "state_locked", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("pid {}", first.pid))),
        "{body}"
    );
    assert_eq!(
        first.get("/ready").await?.0,
        StatusCode::OK,
        "the first is untouched"
    );

    let exit = first.terminate().await?;
    assert!(exit.success(), "{exit}");
    second.wait_ready().await?;
    let (_, taken_over) = second.get("/snapshot").await?;
    assert_eq!(
        taken_over, baseline,
        "the second serves the baseline the first left"
    );
    assert_eq!(
        std::fs::read_to_string(&lock)?.trim(),
        second.pid.to_string()
    );
    let (status, body) = second.retake(TOKEN).await?;
    assert_eq!(status, StatusCode::CREATED, "the new holder writes: {body}");
    let exit = second.terminate().await?;
    assert!(exit.success(), "{exit}");
    Ok(())
}

#[tokio::test]
async fn a_snapshot_from_a_newer_dockstate_is_reported_as_newer_with_its_format(
) -> anyhow::Result<()> {
    let scope = TestScope::new();
    let (_root, state, _token) = state_and_token()?;
    let newer = write_snapshot(&state, &scope.scope(), 2)?;
    let (status, stderr) = refused(Launch {
        state_dir: &state,
        scope: &scope.scope(),
        token_file: None,
        run_as: None,
    })
    .await?;
    assert!(!status.success(), "started over a snapshot it cannot read");
    assert!(
        stderr.contains("was written by a newer dockstate (format 2, this build reads up to 1)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not a valid"),
        "never called corrupt: {stderr}"
    );
    assert_eq!(
        std::fs::read(state.join("snapshot.json"))?,
        newer,
        "left as it was"
    );
    Ok(())
}

#[tokio::test]
async fn temporary_files_a_crash_left_are_removed_at_start() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let (_root, state, _token) = state_and_token()?;
    let on_disk = write_snapshot(&state, &scope.scope(), 1)?;
    for stale in [
        ".snapshot.json.4242.tmp",
        ".snapshot.json.0123456789abcdef.tmp",
    ] {
        std::fs::write(state.join(stale), b"{\"format\": 1, \"containers\": [")?;
    }
    let api = StatusApiProcess::start(Launch {
        state_dir: &state,
        scope: &scope.scope(),
        token_file: None,
        run_as: None,
    })
    .await?;
    // The lock is taken, and the directory cleaned, before the port is bound.
    assert_eq!(names_in(&state)?, vec![".lock", "snapshot.json"]);
    assert_eq!(std::fs::read(state.join("snapshot.json"))?, on_disk);
    let (_, snapshot): (_, Value) = api.get("/snapshot").await?;
    assert_eq!(
        snapshot["taken_at"], "2026-01-01T00:00:00Z",
        "the snapshot was loaded: {snapshot}"
    );
    // Ready means serving, SIGTERM handler installed: a SIGTERM right after the address is logged can still
    // find the default action.
    api.wait_ready().await?;
    let exit = api.terminate().await?;
    assert!(exit.success(), "{exit}");
    Ok(())
}
