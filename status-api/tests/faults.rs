//! `kill -9` of status-api while it writes a new snapshot (`POST /snapshot`), `FAULT_KILLS` times (50 by
//! default; `make fault-kills` runs more): after every kill `snapshot.json` is the old snapshot or the new
//! one — never half, never gone — with mode 0600, and once status-api has started again no temporary file is
//! left in the state directory.

#[path = "api/process.rs"]
mod process;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use process::{Launch, StatusApiProcess};
use reqwest::StatusCode;
use status_api::snapshot::Snapshot;
use test_support::{ensure_test_images, TestScope, BUSYBOX_IMAGE};

const TOKEN: &str = "fault-test-token";
/// Containers in the test's scope, each with a large environment, so a snapshot is a few hundred kilobytes
/// and its write takes long enough to be hit.
const MEMBERS: usize = 3;
const ENV_PER_MEMBER: usize = 400;

fn kills() -> usize {
    std::env::var("FAULT_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
}

fn temporaries(dir: &Path) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect())
}

/// The snapshot on disk, parsed: a kill must never leave it unreadable.
fn read_snapshot(file: &Path) -> anyhow::Result<(Vec<u8>, Snapshot)> {
    let bytes = std::fs::read(file)?;
    let snapshot = serde_json::from_slice(&bytes)
        .map_err(|err| anyhow::anyhow!("{} is not a whole snapshot: {err}", file.display()))?;
    Ok((bytes, snapshot))
}

#[tokio::test]
async fn kill_9_during_post_snapshot_leaves_the_old_or_the_new_file_and_no_temporary(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let env: Vec<String> = (0..ENV_PER_MEMBER)
        .map(|i| format!("VARIABLE_{i}={}", "x".repeat(100)))
        .collect();
    let mut args = Vec::new();
    for variable in &env {
        args.extend(["-e", variable.as_str()]);
    }
    for i in 0..MEMBERS {
        scope
            .run(&format!("member{i}"), BUSYBOX_IMAGE, &args)
            .await?;
    }
    let root = tempfile::tempdir()?;
    let state = root.path().join("state");
    let token = root.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n"))?;
    let file = state.join("snapshot.json");
    let launch = Launch {
        state_dir: &state,
        scope: &scope.scope(),
        token_file: Some(&token),
        run_as: None,
    };
    let expected: Vec<String> = (0..MEMBERS)
        .map(|i| scope.name(&format!("member{i}")))
        .collect();

    // The first start takes the first snapshot. How long a POST takes right after a start (what every round
    // below does) sets the window the kills are spread over.
    let first = StatusApiProcess::start(launch).await?;
    first.wait_ready().await?;
    first.terminate().await?;
    let api = StatusApiProcess::start(launch).await?;
    let started = Instant::now();
    let (status, body) = api.retake(TOKEN).await?;
    anyhow::ensure!(
        status == StatusCode::CREATED,
        "POST /snapshot: {status} {body}"
    );
    let one_post = started.elapsed();
    let mut api = Some(api);

    let (mut old_bytes, mut old) = read_snapshot(&file)?;
    let (mut kept_old, mut got_new, mut left_temporaries) = (0, 0, 0);
    let kills = kills();
    for round in 0..kills {
        let mut running = match api.take() {
            Some(running) => running,
            None => {
                let running = StatusApiProcess::start(launch).await?;
                // Started again: whatever the last kill left behind is gone before it listens.
                let left = temporaries(&state)?;
                assert!(
                    left.is_empty(),
                    "round {round}: temporary files survived a start: {left:?}"
                );
                running
            }
        };
        // Kill at a random moment within (a little more than) the time a POST takes.
        let delay = one_post.mul_f64(rand::random::<f64>() * 1.5);
        let post = tokio::spawn({
            let client = running.client.clone();
            let url = format!("{}/snapshot", running.base);
            async move { client.post(url).bearer_auth(TOKEN).send().await }
        });
        tokio::time::sleep(delay).await;
        running.kill().await?;
        let _ = post.await;

        let (bytes, now) = read_snapshot(&file)?;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "round {round}: snapshot.json has mode {mode:o}"
        );
        if bytes == old_bytes {
            kept_old += 1;
        } else {
            // The new one: whole, newer, and of the same members.
            let names: Vec<&str> = now.containers.iter().map(|c| c.name()).collect();
            assert_eq!(
                names, expected,
                "round {round}: a new snapshot of other containers"
            );
            assert!(
                now.taken_at > old.taken_at,
                "round {round}: neither the old file nor a newer one ({} after {})",
                now.taken_at,
                old.taken_at
            );
            got_new += 1;
        }
        if !temporaries(&state)?.is_empty() {
            left_temporaries += 1;
        }
        (old_bytes, old) = (bytes, now);
    }
    // The last kill's leftovers are cleaned by one more start.
    let last = StatusApiProcess::start(launch).await?;
    assert!(
        temporaries(&state)?.is_empty(),
        "temporary files survived the last start"
    );
    let taken: DateTime<Utc> = old.taken_at;
    let (_, served) = last.get("/snapshot").await?;
    assert_eq!(
        served["taken_at"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>())
            .transpose()?,
        Some(taken),
        "the restarted status-api serves the file on disk"
    );
    println!(
        "{kills} kills (a POST takes {one_post:?}): old file kept {kept_old}, new file {got_new}, \
         a temporary file left by the kill {left_temporaries}"
    );
    // Ready means serving, SIGTERM handler installed.
    last.wait_ready().await?;
    let exit = last.terminate().await?;
    assert!(exit.success(), "{exit}");
    Ok(())
}
