//! A job that finished is not a failure: a member whose process exits 0 by itself, with a restart policy that
//! would not restart it, is `completed` — reported, never started again — while the same job failing (exit
//! 3) is started. A `dead` member (a removal that failed) is never started: with the token it is removed and
//! created again from its spec, without it reported once.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use test_support::{
    container_state, docker, ensure_test_images, inspect_json, TestScope, BUSYBOX_IMAGE,
};

use crate::helpers::{stays, wait_for_state, Options, Pair, PATIENCE};

/// A job that waits for a signal from the test (the file `/tmp/done`), then exits with `code`: it is running
/// when the baseline is taken, however slowly the pair starts, and ends when the test says.
fn job(code: u8) -> String {
    format!("until [ -f /tmp/done ]; do sleep 1; done; exit {code}")
}

/// How long "never started" is watched: several seconds, far more than a heal takes (milliseconds).
const WATCH: Duration = Duration::from_secs(6);

async fn get_json(url: &str) -> anyhow::Result<Value> {
    let response = reqwest::get(url).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    Ok(response.json().await?)
}

/// status-api's drift item for `name`, once it has the kind `kind`.
async fn wait_for_drift(pair: &Pair, name: &str, kind: &str) -> anyhow::Result<Value> {
    let url = format!(
        "{}/drift",
        pair.api.as_ref().context("status-api runs")?.base()
    );
    let found = std::sync::Mutex::new(Value::Null);
    test_support::wait_until(
        &format!("{name} to be {kind} in /drift"),
        PATIENCE,
        || async {
            let drift = get_json(&url).await?;
            let item = drift["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|item| item["name"] == name && item["kind"] == kind)
                .cloned();
            let seen = item.is_some();
            *found.lock().expect("not poisoned") = item.unwrap_or(Value::Null);
            Ok(seen)
        },
    )
    .await?;
    Ok(found.into_inner()?)
}

/// The actions recorded for `name` that are `action`.
async fn records(pair: &Pair, name: &str, action: &str) -> anyhow::Result<Vec<Value>> {
    Ok(pair
        .controller
        .actions_for(name)
        .await?
        .into_iter()
        .filter(|record| record["action"] == action)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_finished_is_completed_and_never_started_again() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let once = scope.name("once");
    let retried = scope.name("retried");
    scope
        .run_cmd("once", BUSYBOX_IMAGE, &[], &["sh", "-c", &job(0)])
        .await?;
    scope
        .run_cmd(
            "retried",
            BUSYBOX_IMAGE,
            &["--restart", "on-failure"],
            &["sh", "-c", &job(0)],
        )
        .await?;
    wait_for_state(&once, "running").await?;
    wait_for_state(&retried, "running").await?;
    let pair = Pair::start(&scope, Options::default()).await?;

    // The jobs end by themselves, with code 0.
    for name in [&once, &retried] {
        docker(&["exec", name, "touch", "/tmp/done"]).await?;
    }

    for (name, policy) in [(&once, "no"), (&retried, "on-failure")] {
        let item = wait_for_drift(&pair, name, "completed").await?;
        assert_eq!(item["state"], "exited", "{item}");
        let detail = item["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("by itself"), "{item}");
        assert!(detail.contains(&format!("docker start {name}")), "{item}");
        let api = pair.api.as_ref().context("status-api runs")?;
        let status = get_json(&format!("{}/status/{name}", api.base())).await?;
        assert_eq!(status["exit_code"], 0, "{status}");
        assert_eq!(status["exit_cause"], "natural", "{status}");
        assert_eq!(status["restart_policy"], policy, "{status}");
        let record = pair
            .controller
            .wait_for_record(name, "report", "reported")
            .await?;
        assert_eq!(record["drift"], "completed", "{record}");
    }
    stays(
        "the jobs to stay exited and never started",
        WATCH,
        async || {
            for name in [&once, &retried] {
                if container_state(name).await?.as_deref() != Some("exited")
                    || !records(&pair, name, "start").await?.is_empty()
                {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    for name in [&once, &retried] {
        assert_eq!(
            pair.controller.actions_for(name).await?.len(),
            1,
            "reported once, nothing else: {:#}",
            pair.controller.actions().await?
        );
    }
    let api = pair.api.as_ref().context("status-api runs")?;
    let metrics = reqwest::get(format!("{}/metrics", api.base()))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("dockstate_drift{kind=\"completed\"} 2"),
        "{metrics}"
    );
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_failed_is_started() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = scope.name("job");
    scope
        .run_cmd("job", BUSYBOX_IMAGE, &[], &["sh", "-c", &job(3)])
        .await?;
    wait_for_state(&name, "running").await?;
    let pair = Pair::start(&scope, Options::default()).await?;

    docker(&["exec", &name, "touch", "/tmp/done"]).await?;

    let record = pair
        .controller
        .wait_for_record(&name, "start", "ok")
        .await?;
    assert_eq!(record["drift"], "stopped", "{record}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("exit code 3 (it exited by itself)"),
        "{record}"
    );
    pair.stop().await
}

/// Keeps a file in a container's directory in the engine's state immutable (`chattr +i`), so the engine
/// cannot remove the container: it turns `dead`, as after a real failed removal. Dropping it (before the
/// scope's clean-up) lets go.
struct Pin {
    path: PathBuf,
}

impl Pin {
    /// Pins container `id`; `None` (with a note) where the test cannot: not root, no `chattr`, or the
    /// engine's state directory is elsewhere or on a filesystem without the attribute.
    fn container(id: &str) -> Option<Self> {
        let path = PathBuf::from(format!(
            "/var/lib/docker/containers/{id}/dockstate-test-pin"
        ));
        let pinned = std::fs::write(&path, b"").is_ok()
            && std::process::Command::new("chattr")
                .arg("+i")
                .arg(&path)
                .output()
                .is_ok_and(|output| output.status.success());
        if !pinned {
            let _ = std::fs::remove_file(&path);
            eprintln!(
                "NOTE: cannot make a dead container here (needs root, chattr and the engine's state in \
                 /var/lib/docker): the dead-member rule is proven only by the plan's unit tests"
            );
            return None;
        }
        Some(Self { path })
    }

    fn release(&self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.path)
            .output();
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.release();
    }
}

/// Runs member `web`, pins it, and has the engine fail to remove it (`docker rm -f`): it is `dead`.
async fn dead_member(scope: &TestScope) -> anyhow::Result<Option<(String, String, Pin)>> {
    let name = scope.name("web");
    let id = scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    wait_for_state(&name, "running").await?;
    let Some(pin) = Pin::container(&id) else {
        return Ok(None);
    };
    Ok(Some((name, id, pin)))
}

async fn kill_into_dead(name: &str) -> anyhow::Result<()> {
    let refused = docker(&["rm", "-f", name]).await;
    anyhow::ensure!(
        refused.is_err(),
        "the engine removed {name} although it was pinned"
    );
    wait_for_state(name, "dead").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_is_never_started_and_without_the_token_is_reported_once(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let Some((name, _id, pin)) = dead_member(&scope).await? else {
        return Ok(());
    };
    let pair = Pair::start(&scope, Options::default()).await?;

    kill_into_dead(&name).await?;

    let item = wait_for_drift(&pair, &name, "stopped").await?;
    assert_eq!(item["state"], "dead", "{item}");
    let record = pair
        .controller
        .wait_for_record(&name, "report", "reported")
        .await?;
    assert!(
        record["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("--token-file"),
        "{record}"
    );
    stays(
        "the dead member to stay dead, never started",
        WATCH,
        async || {
            Ok(container_state(&name).await?.as_deref() == Some("dead")
                && records(&pair, &name, "start").await?.is_empty())
        },
    )
    .await?;
    assert_eq!(
        pair.controller.actions_for(&name).await?.len(),
        1,
        "reported once: {:#}",
        pair.controller.actions().await?
    );
    pair.stop().await?;
    pin.release();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_is_removed_and_recreated_from_its_spec_with_the_token() -> anyhow::Result<()>
{
    ensure_test_images().await?;
    let scope = TestScope::new();
    let Some((name, id, pin)) = dead_member(&scope).await? else {
        return Ok(());
    };
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    kill_into_dead(&name).await?;
    // The engine can remove it again once the pin is gone: the controller's removal, retried, goes through.
    pin.release();

    let record = pair
        .controller
        .wait_for_record(&name, "replace", "ok")
        .await?;
    assert_eq!(record["drift"], "stopped", "{record}");
    wait_for_state(&name, "running").await?;
    let now = inspect_json(&name).await?;
    assert_ne!(now["Id"], id.as_str(), "a new container under the name");
    assert_eq!(
        now["Config"]["Labels"]["dockstate.test"],
        scope.id(),
        "created from its spec"
    );
    let starts = records(&pair, &name, "start").await?;
    assert!(
        starts.is_empty(),
        "a dead member is never started: {starts:#?}"
    );
    pair.stop().await
}
