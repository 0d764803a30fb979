//! The maintenance hold against the real engine: while held, a member that dies stays down and nothing is
//! recorded for it; the hold ends by `DELETE /hold` or by running out, and the member is healed at once.
//! With `--state-dir` it outlives a `kill -9` of the controller. The token and the input are checked.

use std::time::Duration;

use reqwest::StatusCode;
use test_support::{
    container_state, ensure_test_images, StatusApiOptions, StatusApiServer, TestScope,
    WebhookReceiver,
};

use crate::helpers::{
    assert_mentions, init_logs, kill_main_process, run_member, started_at, stays, wait_for_restart,
    wait_for_state, Binary, Controller, Options, Pair, PATIENCE,
};

/// How long a test watches a member stay down while held.
const WATCH: Duration = Duration::from_secs(3);

const HOLDS_SET: &str = "dockstate_controller_holds_total{reason=\"maintenance\"}";
const HOLD_UNTIL: &str = "dockstate_controller_hold_until_timestamp_seconds";

/// `POST /hold?{query}` on the controller at `base`, with `token` as the bearer token when given.
async fn post_hold(
    base: &str,
    query: &str,
    token: Option<&str>,
) -> anyhow::Result<reqwest::Response> {
    let mut request = reqwest::Client::new().post(format!("{base}/hold?{query}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Ok(request.send().await?)
}

/// `DELETE /hold` on the controller at `base` with `token`.
async fn end_hold(base: &str, token: &str) -> anyhow::Result<reqwest::Response> {
    Ok(reqwest::Client::new()
        .delete(format!("{base}/hold?by=the-test"))
        .bearer_auth(token)
        .send()
        .await?)
}

/// A pair with the token, over a scope holding one running member; answers the pair, the member and the token.
async fn pair_with_member(scope: &TestScope) -> anyhow::Result<(Pair, String, String)> {
    let name = run_member(scope, "web").await?;
    let pair = Pair::start(
        scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;
    let token = std::fs::read_to_string(pair.token_file().expect("a token file"))?;
    Ok((pair, name, token.trim().to_owned()))
}

/// Kills `name` and checks for [`WATCH`] that it stays down, as a held controller leaves it.
async fn killed_and_left_down(name: &str) -> anyhow::Result<()> {
    kill_main_process(name).await?;
    wait_for_state(name, "exited").await?;
    stays(
        &format!("{name} to stay down while held"),
        WATCH,
        async || Ok(container_state(name).await?.as_deref() == Some("exited")),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_controller_leaves_a_killed_member_down_until_the_hold_is_ended(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (pair, name, token) = pair_with_member(&scope).await?;
    let controller = &pair.controller;
    let base = controller.url("");

    let set = post_hold(&base, "for=10m&reason=kernel+update&by=alice", Some(&token)).await?;
    assert_eq!(set.status(), StatusCode::CREATED);
    let hold: serde_json::Value = set.json().await?;
    assert_eq!(hold["reason"], "kernel update", "{hold}");
    assert_eq!(hold["by"], "alice", "{hold}");
    let before = started_at(&name).await?;

    killed_and_left_down(&name).await?;

    assert!(
        controller.actions_for(&name).await?.is_empty(),
        "no action for it while held"
    );
    let actions = controller.actions().await?;
    assert_eq!(actions["hold"], hold, "/actions shows the hold");
    let health: serde_json::Value = reqwest::get(controller.url("/health"))
        .await?
        .json()
        .await?;
    assert_eq!(health["hold"], hold, "/health shows the hold");
    assert_eq!(
        controller.ready_status().await?,
        200,
        "held on purpose is ready"
    );
    let ready: serde_json::Value = reqwest::get(controller.url("/ready")).await?.json().await?;
    assert_mentions(&ready, "/checks/hold/detail", "by alice until");
    assert_eq!(controller.metric(HOLDS_SET).await?, 1.0);
    let until = chrono::DateTime::parse_from_rfc3339(hold["until"].as_str().unwrap_or_default())?;
    assert_eq!(
        controller.metric(HOLD_UNTIL).await?,
        until.timestamp_millis() as f64 / 1000.0
    );

    let ended = end_hold(&base, &token).await?;
    assert_eq!(ended.status(), StatusCode::OK);
    assert_eq!(
        ended.json::<serde_json::Value>().await?,
        hold,
        "answers the hold that ended"
    );

    wait_for_restart(&name, &before).await?;
    controller.wait_for_record(&name, "start", "ok").await?;
    assert_eq!(controller.metric(HOLD_UNTIL).await?, 0.0);
    let gone = reqwest::get(controller.url("/hold")).await?;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_hold_runs_out_by_itself_and_the_member_is_healed() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (pair, name, token) = pair_with_member(&scope).await?;
    let controller = &pair.controller;
    let before = started_at(&name).await?;

    let set = post_hold(&controller.url(""), "for=3s", Some(&token)).await?;
    assert_eq!(set.status(), StatusCode::CREATED);
    let hold: serde_json::Value = set.json().await?;
    assert_eq!(hold["reason"], "maintenance", "the default reason: {hold}");
    assert_eq!(
        hold["by"], "127.0.0.1",
        "the client, when nobody is named: {hold}"
    );
    kill_main_process(&name).await?;

    // Nothing but the hold's end can heal it: no change comes after the kill, and the interval is an hour.
    wait_for_restart(&name, &before).await?;
    let record = controller.wait_for_record(&name, "start", "ok").await?;
    let healed_at =
        chrono::DateTime::parse_from_rfc3339(record["time"].as_str().unwrap_or_default())?;
    let until = chrono::DateTime::parse_from_rfc3339(hold["until"].as_str().unwrap_or_default())?;
    assert!(
        healed_at >= until,
        "healed at {healed_at}, before the hold ended at {until}"
    );
    assert_eq!(
        controller.actions_for(&name).await?.len(),
        1,
        "one start, after the hold"
    );
    let gone = reqwest::get(controller.url("/hold")).await?;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let health: serde_json::Value = reqwest::get(controller.url("/health"))
        .await?
        .json()
        .await?;
    assert!(health["hold"].is_null(), "{health}");
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_state_dir_the_hold_outlives_a_killed_controller() -> anyhow::Result<()> {
    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let name = run_member(&scope, "web").await?;
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "hold-test-token\n")?;
    let api = StatusApiServer::start(StatusApiOptions {
        token_file: Some(token_file.clone()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let api_url = api.base();
    let state_dir = dir.path().join("controller");
    let token_path = token_file.to_string_lossy().into_owned();
    let state_path = state_dir.to_string_lossy().into_owned();
    let args = [
        "--api-url",
        &api_url,
        "--interval",
        "1h",
        "--token-file",
        &token_path,
        "--state-dir",
        &state_path,
    ];

    let mut first = Binary::start(&args).await?;
    first.wait_ready().await?;
    let set = post_hold(
        &first.url(""),
        "for=10m&reason=disk+swap&by=ops",
        Some("hold-test-token"),
    )
    .await?;
    assert_eq!(set.status(), StatusCode::CREATED);
    let hold: serde_json::Value = set.json().await?;
    assert!(state_dir.join("hold.json").exists());
    first.child.kill().await?;
    let before = started_at(&name).await?;
    kill_main_process(&name).await?;
    wait_for_state(&name, "exited").await?;

    let second = Binary::start(&args).await?;
    second.wait_ready().await?;
    let health: serde_json::Value = reqwest::get(second.url("/health")).await?.json().await?;
    assert_eq!(health["hold"], hold, "the same hold, after the restart");
    stays(
        &format!("{name} to stay down while held"),
        WATCH,
        async || Ok(container_state(&name).await?.as_deref() == Some("exited")),
    )
    .await?;

    let ended = end_hold(&second.url(""), "hold-test-token").await?;
    assert_eq!(ended.status(), StatusCode::OK);
    wait_for_restart(&name, &before).await?;
    assert!(
        !state_dir.join("hold.json").exists(),
        "the ended hold is gone from disk"
    );

    let mut second = second;
    second.child.kill().await?;
    let logs = second.logs().await?;
    assert!(
        logs.iter()
            .any(|line| line.contains("restored from the state directory")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|line| line.contains("ended by DELETE /hold") && line.contains("the-test")),
        "{logs:#?}"
    );
    assert!(
        !logs.iter().any(|line| line.contains("hold-test-token")),
        "the token is never logged"
    );
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hold_takes_the_token_and_refuses_bad_input() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (pair, _name, token) = pair_with_member(&scope).await?;
    let base = pair.controller.url("");

    for sent in [None, Some("wrong-token")] {
        let refused = post_hold(&base, "for=15m", sent).await?;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{sent:?}");
        assert_eq!(
            refused
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"status-controller\"")
        );
        let body: serde_json::Value = refused.json().await?;
        assert_eq!(body["error"], "unauthorized", "{body}");
    }

    let long_reason = "r".repeat(201);
    for (query, hint) in [
        ("for=0s", "zero"),
        ("for=25h", "at most 24h"),
        ("for=abc", "not a duration"),
        ("reason=upgrade", "`for` is missing"),
        (
            &format!("for=1h&reason={long_reason}") as &str,
            "keep it to 200",
        ),
    ] {
        let refused = post_hold(&base, query, Some(&token)).await?;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: serde_json::Value = refused.json().await?;
        assert_eq!(body["error"], "bad_request", "{body}");
        assert_mentions(&body, "/message", hint);
    }
    assert!(reqwest::get(format!("{base}/hold")).await?.status() == StatusCode::NOT_FOUND);

    let nothing = end_hold(&base, &token).await?;
    assert_eq!(nothing.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = nothing.json().await?;
    assert_eq!(body["error"], "not_held", "{body}");

    let set = post_hold(&base, "for=1h", Some(&token)).await?;
    assert_eq!(set.status(), StatusCode::CREATED);
    assert_eq!(
        pair.controller.ready_status().await?,
        200,
        "ready while held"
    );
    let again = post_hold(&base, "for=2h&reason=longer", Some(&token)).await?;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a new hold replaces the one there is"
    );
    assert_eq!(pair.controller.metric(HOLDS_SET).await?, 2.0);

    // A controller without a token: no token could help.
    let api = pair.api.as_ref().expect("status-api runs").address;
    let tokenless = Controller::start(api, &[], None).await?;
    let refused = post_hold(&tokenless.url(""), "for=15m", Some(&token)).await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = refused.json().await?;
    assert_eq!(body["error"], "forbidden", "{body}");
    tokenless.stop().await?;
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_hold_is_told_when_set_and_when_ended() -> anyhow::Result<()> {
    ensure_test_images().await?;
    init_logs();
    let scope = TestScope::new();
    let receiver = WebhookReceiver::start().await?;
    // The flags live as long as the test: a leaked URL is its whole cost.
    let url: &'static str = receiver.url("", "/hooks/hold").leak();
    run_member(&scope, "web").await?;
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            flags: vec!["--notify-url", url],
            ..Options::default()
        },
    )
    .await?;
    let token = std::fs::read_to_string(pair.token_file().expect("a token file"))?;
    let base = pair.controller.url("");

    let set = post_hold(
        &base,
        "for=10m&reason=kernel+update&by=alice",
        Some(token.trim()),
    )
    .await?;
    assert_eq!(set.status(), StatusCode::CREATED);
    let told = receiver
        .wait_for("the hold set to be told", PATIENCE, |request| {
            request.json()["kind"] == "maintenance_hold_set"
        })
        .await?
        .json();
    assert_mentions(&told, "/reason", "kernel update (by alice)");
    assert_mentions(&told, "/detail", "no action until");

    assert_eq!(
        end_hold(&base, token.trim()).await?.status(),
        StatusCode::OK
    );
    let told = receiver
        .wait_for("the hold's end to be told", PATIENCE, |request| {
            request.json()["kind"] == "maintenance_hold_ended"
        })
        .await?
        .json();
    assert_mentions(&told, "/reason", "kernel update");
    assert_mentions(&told, "/detail", "lifted by DELETE /hold (by the-test)");
    pair.stop().await
}

/// docs/runbook.md, "Add a container to the baseline", as written: hold, start the new container, adopt it,
/// end the hold. The held controller leaves the unexpected newcomer running, the `PUT` takes it, and once
/// the hold ends the controller has nothing to do: the newcomer is a member and runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_container_is_adopted_under_a_hold_as_the_runbook_says() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (pair, _web, token) = pair_with_member(&scope).await?;
    let controller = &pair.controller;
    let api = pair.api.as_ref().expect("status-api runs").base();
    let set = post_hold(
        &controller.url(""),
        "for=5m&reason=adopt+worker&by=alice",
        Some(&token),
    )
    .await?;
    assert_eq!(set.status(), StatusCode::CREATED);

    let worker = run_member(&scope, "worker").await?;
    stays(
        &format!("{worker} to keep running while held"),
        WATCH,
        async || Ok(container_state(&worker).await?.as_deref() == Some("running")),
    )
    .await?;
    let adopt = reqwest::Client::new()
        .put(format!("{api}/snapshot/containers/{worker}"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(adopt.status(), StatusCode::OK, "{}", adopt.text().await?);
    assert_eq!(
        end_hold(&controller.url(""), &token).await?.status(),
        StatusCode::OK
    );

    stays(
        &format!("{worker} to run on once adopted and the hold ended"),
        WATCH,
        async || Ok(container_state(&worker).await?.as_deref() == Some("running")),
    )
    .await?;
    assert!(
        controller.actions_for(&worker).await?.is_empty(),
        "the controller did nothing to it: {:#}",
        controller.actions().await?
    );
    let drift: serde_json::Value = reqwest::get(format!("{api}/drift")).await?.json().await?;
    assert_eq!(drift["in_sync"], true, "{drift:#}");
    pair.stop().await
}
