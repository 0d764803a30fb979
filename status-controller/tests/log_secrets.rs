//! No secret in any log at any level: status-api (in this process, through the same `init_telemetry` as its
//! binary) and the status-controller binary, both at `RUST_LOG=trace`, follow a container whose environment
//! and command line carry a secret through a snapshot, a heal, a recreate and a failed recreate — and the
//! secret appears in neither program's output. Nor do the path and query of its notification URLs (a
//! webhook's key), though it notifies the heal and the failed recreate to them. bollard logs every request and response body at debug; only
//! the cap on third-party logs keeps the container's `Env` and `Cmd` out.
//!
//! The same logs carry the heal trace (`heal_trace` targets) that `make bench` reads: its steps are checked too.
//!
//! Its own test binary: it sets `RUST_LOG` for the whole process and installs the global subscriber.

use std::io::Write as _;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use shared::runtime::telemetry::{init_telemetry, LogFormat};
use test_support::{
    container_state, docker, ensure_test_images, wait_until, StatusApiOptions, StatusApiServer,
    TestScope, WebhookReceiver, BUSYBOX_IMAGE,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

const PATIENCE: Duration = Duration::from_secs(30);
const TOKEN: &str = "log-secrets-token-0123456789";

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

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

/// Collects every line of `stream` into `into`.
fn collect(stream: impl AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().expect("not poisoned").push(line);
        }
    });
}

/// Removes the test's private image tag, even when the test fails.
struct Untag(String);

impl Drop for Untag {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `kill -<signal> <pid>`.
async fn send_signal(signal: &str, pid: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), pid])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid}: {status}");
    Ok(())
}

/// The journal records of the controller at `base` for `name`, as `(action, result)`.
async fn records(base: &str, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let all: serde_json::Value = reqwest::get(format!("{base}/actions"))
        .await?
        .json()
        .await?;
    Ok(all["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|record| record["container"] == name)
        .map(|record| {
            (
                record["action"].as_str().unwrap_or_default().to_owned(),
                record["result"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

async fn wait_for_record(base: &str, name: &str, action: &str, result: &str) -> anyhow::Result<()> {
    let what = format!("a {action}/{result} record for {name}");
    wait_until(&what, PATIENCE, || async {
        Ok(records(base, name)
            .await?
            .iter()
            .any(|(a, r)| a == action && r == result))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_either_program_s_logs_at_trace() -> anyhow::Result<()> {
    ensure_test_images().await?;
    // Set before anything reads it: this test binary holds this one test.
    std::env::set_var("RUST_LOG", "trace");
    let api_logs = Captured::default();
    init_telemetry(LogFormat::Json, "trace", api_logs.clone());

    let scope = TestScope::new();
    let secret = format!("s3cret-{:016x}", rand::random::<u64>());
    // An image of the test's own (its own id: committed from a container of the scope), to take away later,
    // tag and id, so that a recreate fails.
    let image = format!("dockstate-test/{}:secrets", scope.id());
    let seed = scope.create("seed", BUSYBOX_IMAGE, &[]).await?;
    docker(&["commit", seed.trim(), &image]).await?;
    let _untag = Untag(image.clone());
    let env = format!("DOCKSTATE_SECRET={secret}");
    let cmd = format!("trap 'exit 0' TERM; sleep 3600 & wait; : {secret}");
    let name = scope.name("web");
    scope
        .run_cmd("web", &image, &["-e", &env], &["/bin/sh", "-c", &cmd])
        .await?;
    let inspect = docker(&["inspect", &name]).await?;
    assert!(
        inspect.contains(&secret),
        "the container carries the secret"
    );

    // Snapshot: status-api takes the first one at start-up, reading the container's full spec.
    let api = StatusApiServer::start(StatusApiOptions {
        token: Some(TOKEN.to_owned()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let token_dir = tempfile::tempdir()?;
    let token_file = token_dir.path().join("token");
    std::fs::File::create(&token_file)?.write_all(TOKEN.as_bytes())?;
    // Notification URLs whose path and query are secrets: one on the command line, one in a file.
    let receiver = WebhookReceiver::start().await?;
    let hook_key = format!("hook-key-{:016x}", rand::random::<u64>());
    let hook_token = format!("hook-token-{:016x}", rand::random::<u64>());
    let flag_url = receiver.url("json+", &format!("/hooks/{hook_key}?token={hook_token}"));
    let url_file = token_dir.path().join("notify-urls");
    std::fs::write(
        &url_file,
        format!(
            "# the team's channel\n{}\n",
            receiver.url("slack+", &format!("/services/{hook_key}"))
        ),
    )?;

    let mut controller = Command::new(env!("CARGO_BIN_EXE_status-controller"))
        .args(["--api-url", &api.base(), "--listen", "127.0.0.1:0"])
        .args(["--interval", "1h", "--scope", &scope.scope()])
        .args(["--log-format", "json"])
        .arg("--token-file")
        .arg(&token_file)
        .args(["--notify-url", &flag_url, "--notify-heals"])
        .arg("--notify-url-file")
        .arg(&url_file)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let controller_out = Arc::new(Mutex::new(Vec::new()));
    collect(
        controller.stdout.take().context("piped")?,
        controller_out.clone(),
    );
    collect(
        controller.stderr.take().context("piped")?,
        controller_out.clone(),
    );
    let listening = || {
        controller_out
            .lock()
            .expect("not poisoned")
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|log| log["message"] == "status-controller listening")
            .and_then(|log| log["address"].as_str().map(ToOwned::to_owned))
    };
    wait_until("the controller to listen", PATIENCE, || async {
        Ok(listening().is_some())
    })
    .await?;
    let base = format!("http://{}", listening().context("listening")?);
    wait_until("the controller to be ready", PATIENCE, || async {
        Ok(reqwest::get(format!("{base}/ready"))
            .await?
            .status()
            .is_success())
    })
    .await?;

    // Heal: stopped → started.
    docker(&["stop", &name]).await?;
    wait_for_record(&base, &name, "start", "ok").await?;

    // Recreate: removed → created again from the snapshot's spec (read with the token).
    docker(&["rm", "-f", &name]).await?;
    wait_for_record(&base, &name, "recreate", "ok").await?;
    wait_until("the recreated container to run", PATIENCE, || async {
        Ok(container_state(&name).await?.as_deref() == Some("running"))
    })
    .await?;

    // A failed recreate: its image is gone, tag and id (dockstate never pulls). The controller is held still
    // meanwhile (SIGSTOP), or it would recreate the container from the image id before the image is gone.
    let pid = controller.id().context("the controller runs")?.to_string();
    send_signal("STOP", &pid).await?;
    let removed = async {
        docker(&["rm", "-f", &name]).await?;
        docker(&["rmi", &image]).await
    }
    .await;
    send_signal("CONT", &pid).await?;
    removed?;
    wait_for_record(&base, &name, "recreate", "failed").await?;
    let failed = receiver
        .wait_for("the failed recreate, notified", PATIENCE, |request| {
            request.json()["kind"] == "action_failed"
        })
        .await?;
    assert_eq!(failed.json()["container"], name.as_str(), "{}", failed.body);
    receiver
        .wait_for("a heal, notified to slack", PATIENCE, |request| {
            request.path.starts_with("/services/") && request.body.contains(&name)
        })
        .await?;

    controller.start_kill()?;
    let _ = tokio::time::timeout(Duration::from_secs(10), controller.wait()).await;
    // Let the readers drain what the controller wrote before it died.
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.stop().await?;

    let controller_text = controller_out.lock().expect("not poisoned").join("\n");
    let api_text = api_logs.text();
    for (program, text) in [
        ("status-api", &api_text),
        ("status-controller", &controller_text),
    ] {
        for hook_secret in [&hook_key, &hook_token] {
            assert!(
                !text.contains(hook_secret.as_str()),
                "{program} logged a notification URL's path or query:\n{}",
                text.lines()
                    .filter(|line| line.contains(hook_secret.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        assert!(
            !text.contains(&secret),
            "{program} logged the secret:\n{}",
            text.lines()
                .filter(|line| line.contains(&secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
        // Not vacuous: the program logged, and below INFO.
        assert!(
            text.contains(r#""level":"DEBUG""#) || text.contains(r#""level":"TRACE""#),
            "{program} logged nothing below INFO at RUST_LOG=trace:\n{text}"
        );
    }
    // The steps happened, and the logs tell of them.
    assert!(api_text.contains("snapshot taken"), "{api_text}");
    assert!(
        api_text.contains("/snapshot/containers/{name}/spec"),
        "{api_text}"
    );
    for (action, result) in [("start", "ok"), ("recreate", "ok"), ("recreate", "failed")] {
        let told = controller_text.lines().any(|line| {
            line.contains(&format!(r#""action":"{action}""#))
                && line.contains(&format!(r#""result":"{result}""#))
                && line.contains(&name)
        });
        assert!(
            told,
            "the controller's logs do not tell of {action}/{result}:\n{controller_text}"
        );
    }
    let shown = format!("json+http://{}", receiver.address);
    assert!(
        controller_text.contains(&shown),
        "the controller names its notification receiver by scheme and host:\n{controller_text}"
    );
    assert!(
        controller_text.contains(&image),
        "the failed recreate names its missing image:\n{controller_text}"
    );
    // The heal trace (what `make bench` reads to show where a heal's time goes): every step of the heal
    // is told, in order, under the two `heal_trace` targets.
    let stages =
        |text: &str, target: &str, keep: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
            text.lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter(|log| log["target"] == target && keep(log))
                .filter_map(|log| log["stage"].as_str().map(ToOwned::to_owned))
                .collect()
        };
    let api_stages = stages(&api_text, status_api::HEAL_TRACE, &|_| true);
    for stage in ["event", "foreseen", "inspected"] {
        assert!(
            api_stages.iter().any(|seen| seen == stage),
            "status-api's heal trace has no `{stage}`: {api_stages:?}"
        );
    }
    let heal = stages(&controller_text, status_controller::HEAL_TRACE, &|log| {
        log["container"] == name.as_str() && log["action"] == "start"
    });
    let first = |stage: &str| heal.iter().position(|seen| seen == stage);
    let order: Vec<Option<usize>> = ["dispatched", "lane", "rechecked", "called"]
        .into_iter()
        .map(first)
        .collect();
    assert!(
        order.iter().all(Option::is_some) && order.windows(2).all(|pair| pair[0] < pair[1]),
        "the controller's heal trace of the start is not dispatched → lane → rechecked → called: {heal:?}"
    );
    assert!(
        controller_text
            .lines()
            .any(|line| line.contains(r#""stage":"answered""#)),
        "the controller's heal trace has no `answered`"
    );
    Ok(())
}
