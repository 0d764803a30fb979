//! Notifications from a real controller, acting on the real engine, to webhook receivers in the test: a
//! quarantine told in `json` and `slack`, heals batched into one `ntfy` message, and receivers that are down
//! or too slow: retried, given up and counted, while healing goes on.

use std::time::Duration;

use status_controller::backoff::HealLimits;
use test_support::{
    docker, ensure_test_images, wait_until, StatusApiServer, TestScope, WebhookReceiver,
};

use crate::backoff::{quick_quarantine, run_crash_looper};
use crate::helpers::{
    api_for_scope, assert_mentions, init_logs, kill_main_process, run_member, started_at,
    wait_for_restart, Controller, PATIENCE,
};

/// Long enough for a message that is given up: a batch window (5 s), then three tries of up to 5 s each,
/// 1 s and 4 s apart; doubled for a loaded machine.
const GIVE_UP_PATIENCE: Duration = Duration::from_secs(90);

/// status-api over `scope`, and a controller with `flags` against it, ready.
async fn start(
    scope: &TestScope,
    flags: &[&str],
    limits: Option<HealLimits>,
) -> anyhow::Result<(StatusApiServer, Controller)> {
    init_logs();
    let api = api_for_scope(scope).await?;
    let controller = Controller::start(api.address, flags, limits).await?;
    controller.wait_ready().await?;
    Ok((api, controller))
}

async fn stop(api: StatusApiServer, controller: Controller) -> anyhow::Result<()> {
    controller.stop().await?;
    api.stop().await
}

/// The engine's own name for its host (`docker info`), which notifications carry.
async fn engine_host() -> anyhow::Result<String> {
    Ok(docker(&["info", "--format", "{{.Name}}"])
        .await?
        .trim()
        .to_owned())
}

fn notifications(result: &str) -> String {
    format!("dockstate_controller_notifications_total{{result=\"{result}\"}}")
}

/// Kills `name`'s main process twice, and waits each time until the controller has started it again.
async fn kill_twice_and_see_it_healed(name: &str) -> anyhow::Result<()> {
    for _ in 0..2 {
        let before = started_at(name).await?;
        kill_main_process(name).await?;
        wait_for_restart(name, &before).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_is_told_to_a_json_and_a_slack_receiver() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (name, _) = run_crash_looper(&scope).await?;
    let json = WebhookReceiver::start().await?;
    let slack = WebhookReceiver::start().await?;
    let json_url = json.url("", "/hooks/dockstate?key=k1");
    let slack_url = slack.url("slack+", "/services/T0/B0/K1");
    let flags = ["--notify-url", &json_url, "--notify-url", &slack_url];
    let (api, controller) = start(&scope, &flags, Some(quick_quarantine())).await?;

    docker(&["kill", &name]).await?;

    let host = engine_host().await?;
    let told = json
        .wait_for("a quarantine in json", PATIENCE, |request| {
            request.json()["kind"] == "quarantine_entered"
        })
        .await?;
    eprintln!("json: {}", told.body);
    assert_eq!(told.method, "POST");
    assert_eq!(told.path, "/hooks/dockstate?key=k1");
    assert_eq!(told.header("content-type"), Some("application/json"));
    let body = told.json();
    assert_eq!(body["schema"], 1, "{body}");
    assert_eq!(body["host"], host.as_str(), "{body}");
    assert_eq!(body["container"], name.as_str(), "{body}");
    assert_eq!(body["action"], "start", "{body}");
    assert_eq!(body["result"], "quarantined", "{body}");
    assert_eq!(body["attempt"], 3, "{body}");
    assert_eq!(body["summary"], format!("{name} quarantined"), "{body}");
    assert_mentions(&body, "/detail", "3 attempts");
    assert_mentions(&body, "/reason", "exit code");
    let time = body["time"].as_str().unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{body}");

    let told = slack
        .wait_for("a quarantine in slack", PATIENCE, |request| {
            request.json()["text"]
                .as_str()
                .is_some_and(|text| text.contains("quarantined"))
        })
        .await?;
    eprintln!("slack: {}", told.body);
    assert_eq!(told.path, "/services/T0/B0/K1");
    let text = told.json()["text"].as_str().unwrap_or_default().to_owned();
    let head = format!(
        "[dockstate on {host}] {name} quarantined\n{name}: start held back, quarantined: 3 attempts"
    );
    assert!(text.starts_with(&head), "{text}");

    wait_until("both deliveries counted as sent", PATIENCE, || async {
        Ok(controller.metric(&notifications("sent")).await? >= 2.0)
    })
    .await?;
    assert_eq!(controller.metric(&notifications("failed")).await?, 0.0);
    assert_eq!(controller.metric(&notifications("dropped")).await?, 0.0);
    stop(api, controller).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heals_reach_an_ntfy_topic_in_one_batch() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let first = run_member(&scope, "first").await?;
    let second = run_member(&scope, "second").await?;
    let ntfy = WebhookReceiver::start().await?;
    let url = ntfy.url("ntfy+", "/dockstate-alerts");
    let (api, controller) = start(&scope, &["--notify-url", &url, "--notify-heals"], None).await?;
    let (first_start, second_start) = (started_at(&first).await?, started_at(&second).await?);

    kill_main_process(&first).await?;
    kill_main_process(&second).await?;
    wait_for_restart(&first, &first_start).await?;
    wait_for_restart(&second, &second_start).await?;

    let told = ntfy
        .wait_for("both heals in ntfy", PATIENCE, |request| {
            request.body.contains(&first) && request.body.contains(&second)
        })
        .await?;
    let host = engine_host().await?;
    eprintln!("ntfy: {:?}\n{}", told.headers, told.body);
    assert_eq!(told.path, "/dockstate-alerts");
    assert_eq!(
        told.header("title"),
        Some(format!("dockstate on {host}: 2 heals").as_str())
    );
    assert_eq!(told.header("priority"), Some("low"));
    assert_eq!(told.header("tags"), Some("wrench,dockstate,heals"));
    assert_eq!(
        told.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let lines: Vec<&str> = told.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", told.body);
    for name in [&first, &second] {
        let told_of = format!("{name}: start ok (");
        assert!(
            lines.iter().any(|line| line.starts_with(&told_of)),
            "{}",
            told.body
        );
    }
    assert_eq!(ntfy.received().len(), 1, "one message for both heals");
    stop(api, controller).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_is_given_up_while_healing_goes_on() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let web = run_member(&scope, "web").await?;
    // A port that was free a moment ago, with nothing listening on it now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}/hooks/down");
    let (api, controller) = start(&scope, &["--notify-url", &url, "--notify-heals"], None).await?;

    kill_twice_and_see_it_healed(&web).await?;

    wait_until(
        "the heals' notification to be given up",
        GIVE_UP_PATIENCE,
        || async { Ok(controller.metric(&notifications("failed")).await? >= 1.0) },
    )
    .await?;
    assert_eq!(controller.metric(&notifications("sent")).await?, 0.0);
    // And healing still goes on.
    kill_twice_and_see_it_healed(&web).await?;
    stop(api, controller).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_is_timed_out_and_given_up_while_healing_goes_on() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let web = run_member(&scope, "web").await?;
    let slow = WebhookReceiver::answering_after(Duration::from_secs(120)).await?;
    let url = slow.url("json+", "/hooks/slow");
    let (api, controller) = start(&scope, &["--notify-url", &url, "--notify-heals"], None).await?;

    kill_twice_and_see_it_healed(&web).await?;

    wait_until(
        "the slow receiver's message to be given up",
        GIVE_UP_PATIENCE,
        || async { Ok(controller.metric(&notifications("failed")).await? >= 1.0) },
    )
    .await?;
    let tries = slow.received();
    assert!(tries.len() >= 3, "three tries before giving up: {tries:?}");
    assert!(
        tries
            .iter()
            .all(|request| request.json()["kind"] == "heals"),
        "{tries:?}"
    );
    assert_eq!(controller.metric(&notifications("sent")).await?, 0.0);
    kill_twice_and_see_it_healed(&web).await?;
    stop(api, controller).await
}
