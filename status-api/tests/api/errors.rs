//! Bad input is a 400 that says what to fix; unknown paths a JSON 404; never a 500.

use reqwest::StatusCode;
use test_support::TestScope;

use crate::helpers::{assert_error_shape, spawn_api, Options};

#[tokio::test]
async fn bad_input_for_every_parameter_is_a_clear_400() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let cases = [
        ("/status?state=runing", "state"),
        ("/status?state=", "state"),
        ("/status?all=maybe", "all"),
        ("/status?wait=61", "wait"),
        ("/status?since=1&wait=61", "wait"),
        ("/status?wait=-1", "wait"),
        ("/status?wait=soon", "wait"),
        ("/status?since=-5", "since"),
        ("/status?since=abc", "since"),
        ("/status?label==value", "label"),
        ("/status?label=", "label"),
        ("/status?label=bad%20key", "label"),
    ];
    for (path, parameter) in cases {
        let (status, body) = api.get(path).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_error_shape(&body, path);
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(parameter),
            "{path}: the message must name `{parameter}`: {message}"
        );
    }
    let (_, body) = api.get("/status?state=runing").await?;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("exited"),
        "lists valid states: {body}"
    );
    let (_, body) = api.get("/status?wait=61").await?;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("0 to 60"),
        "{body}"
    );
    api.stop().await
}

#[tokio::test]
async fn unknown_things_are_json_404s() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    for path in [
        "/nope",
        "/status/no-such-container",
        "/status/a/b",
        "/snapshot/containers/x",
    ] {
        let (status, body) = api.get(path).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_error_shape(&body, path);
    }
    let response = api.client.delete(api.url("/status")).send().await?;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = response.json().await?;
    assert_error_shape(&body, "DELETE /status");
    api.stop().await
}
