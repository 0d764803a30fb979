//! What changed, field by field, against the real engine: a member replaced by hand with another environment
//! value, label, published port and memory limit shows exactly those four changes within a second, and the
//! value of neither environment appears in any answer or in status-api's logs at `trace`; adopting it clears
//! them. A member whose tag is moved to another image (`docker tag`) shows `stale_image`, naming both ids,
//! within a second of the tag event (status-api's resync interval is an hour here: only the event can tell).
//!
//! Its own test binary: it installs the global log subscriber, capturing status-api's logs.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use shared::runtime::telemetry::{init_telemetry, LogFormat};
use test_support::{
    docker, ensure_test_images, wait_until, StatusApiOptions, StatusApiServer, TestScope,
    BUSYBOX_IMAGE, HEALTH_IMAGE,
};

const TOKEN: &str = "spec-drift-token-0123456789";

/// How soon a change on the host must show.
const WITHIN: Duration = Duration::from_secs(1);

/// Everything status-api logs in this process.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Removes the test's private image tag, even when the test fails.
struct Untag(String);

impl Drop for Untag {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

async fn get(base: &str, path: &str) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let response = reqwest::get(format!("{base}{path}")).await?;
    Ok((response.status(), response.text().await?))
}

async fn drift(base: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&get(base, "/drift").await?.1)?)
}

/// The drift item of `kind` for `name`, once there is one, and how long it took to show.
async fn wait_for_item(base: &str, name: &str, kind: &str) -> anyhow::Result<(Value, Duration)> {
    let started = Instant::now();
    let found: Arc<Mutex<Option<Value>>> = Arc::default();
    wait_until(
        &format!("{kind} drift of {name}"),
        Duration::from_secs(10),
        || {
            let found = found.clone();
            async move {
                let drift = drift(base).await?;
                let item = drift["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|item| item["name"] == name && item["kind"] == kind)
                    .cloned();
                let seen = item.is_some();
                *found.lock().expect("not poisoned") = item;
                Ok(seen)
            }
        },
    )
    .await?;
    let item = found
        .lock()
        .expect("not poisoned")
        .take()
        .context("found")?;
    Ok((item, started.elapsed()))
}

/// Each change as `field key change snapshot current`.
fn changes(item: &Value) -> Vec<String> {
    item["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|change| {
            let text = |field: &str| match &change[field] {
                Value::Null => "-".to_owned(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            ["field", "key", "change", "snapshot", "current"]
                .map(text)
                .join(" ")
        })
        .collect()
}

/// A free port on the loopback interface for the engine to publish on.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_replaced_by_hand_shows_what_changed_and_never_an_environment_value(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    std::env::set_var("RUST_LOG", "trace");
    let logs = Captured::default();
    init_telemetry(LogFormat::Json, "trace", logs.clone());

    let scope = TestScope::new();
    let (before, after) = (
        format!("before-{:016x}", rand::random::<u64>()),
        format!("after-{:016x}", rand::random::<u64>()),
    );
    let (port_before, port_after) = (free_port()?, free_port()?);
    let app = scope.name("app");
    let member_args = |secret: &str, tier: &str, port: u16, memory: &str| {
        [
            "--env".to_owned(),
            format!("DOCKSTATE_SECRET={secret}"),
            "--label".to_owned(),
            format!("tier={tier}"),
            "--publish".to_owned(),
            format!("127.0.0.1:{port}:80"),
            "--memory".to_owned(),
            memory.to_owned(),
        ]
    };
    let first = member_args(&before, "web", port_before, "64m");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    scope.run("app", BUSYBOX_IMAGE, &first).await?;
    // A member made from a tag of the test's own, to move later.
    let tag = format!("dockstate-test/{}:app", scope.id());
    docker(&["tag", BUSYBOX_IMAGE, &tag]).await?;
    let _untag = Untag(tag.clone());
    scope.run("tagged", &tag, &[]).await?;

    let api = StatusApiServer::start(StatusApiOptions {
        token: Some(TOKEN.to_owned()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let base = api.base();
    assert_eq!(drift(&base).await?["in_sync"], true);

    // Replaced by hand: another secret, label, port and memory limit; the image and all else the same.
    docker(&["rm", "-f", &app]).await?;
    let second = member_args(&after, "api", port_after, "128m");
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    scope.run("app", BUSYBOX_IMAGE, &second).await?;
    let (item, took) = wait_for_item(&base, &app, "changed").await?;
    assert!(took <= WITHIN, "changed showed after {took:?}");
    assert_eq!(
        changes(&item),
        [
            "env DOCKSTATE_SECRET changed - -".to_owned(),
            "label tier changed web api".to_owned(),
            "memory - changed 64MiB 128MiB".to_owned(),
            format!("port 80/tcp changed 127.0.0.1:{port_before} 127.0.0.1:{port_after}"),
        ],
        "{item}"
    );
    assert_eq!(item["state"], "running", "{item}");
    let status: Value = serde_json::from_str(&get(&base, &format!("/status/{app}")).await?.1)?;
    assert_eq!(
        status["spec_changes"].as_array().map(Vec::len),
        Some(4),
        "{status}"
    );
    let metrics = get(&base, "/metrics").await?.1;
    let series =
        format!("dockstate_container_drift{{name=\"{app}\",kind=\"changed\",policy=\"heal\"}} 1");
    assert!(metrics.contains(&series), "{series} not in /metrics");

    // A moved tag: the member made from it runs the old image.
    let old_id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).await?;
    docker(&["tag", HEALTH_IMAGE, &tag]).await?;
    let new_id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).await?;
    let (stale, took) = wait_for_item(&base, &scope.name("tagged"), "stale_image").await?;
    assert!(took <= WITHIN, "stale_image showed after {took:?}");
    let detail = stale["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(old_id.trim()) && detail.contains(new_id.trim()),
        "{detail}"
    );

    // Not an environment value anywhere: no answer, no log line, at any level.
    for path in [
        "/status".to_owned(),
        "/status?all=true".to_owned(),
        format!("/status/{app}"),
        "/drift".to_owned(),
        "/snapshot".to_owned(),
        "/metrics".to_owned(),
        "/".to_owned(),
    ] {
        let (code, body) = get(&base, &path).await?;
        for secret in [&before, &after] {
            assert!(
                !body.contains(secret.as_str()),
                "{path} ({code}) shows an environment value"
            );
        }
    }
    let logged = String::from_utf8_lossy(&logs.0.lock().expect("not poisoned")).into_owned();
    assert!(
        logged.contains("image event"),
        "the logs were captured at trace"
    );
    for secret in [&before, &after] {
        assert!(
            !logged.contains(secret.as_str()),
            "status-api logged an environment value"
        );
    }

    // Adopted: the change was intended; the drift clears.
    let adopted = reqwest::Client::new()
        .put(format!("{base}/snapshot/containers/{app}"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(adopted.status(), reqwest::StatusCode::OK);
    wait_until("the adopted member to be in sync", WITHIN, || async {
        let drift = drift(&base).await?;
        Ok(!drift["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|item| item["name"] == app.as_str()))
    })
    .await?;
    api.stop().await
}
