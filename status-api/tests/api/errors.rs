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
            message.contains(&format!("`{parameter}`")),
            "{path}: the message must name `{parameter}`: {message}"
        );
        let received = path
            .rsplit_once(&format!("{parameter}="))
            .map(|(_, value)| value.split('&').next().unwrap_or_default())
            .unwrap_or_default()
            .replace("%20", " ");
        assert!(
            message.contains(&format!("`{received}`"))
                || (received.is_empty() && message.contains("empty")),
            "{path}: the message must show the value received: {message}"
        );
        assert!(
            !message.contains("occurred while parsing") && !message.contains("uint64"),
            "{path}: plain words, not the parser's: {message}"
        );
    }
    let (status, body) = api.get("/status?name=web(").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("`name` is `web(`") && m.contains("regular expression")),
        "{body}"
    );
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
        "/snapshot/containers/x/nope",
    ] {
        let (status, body) = api.get(path).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_error_shape(&body, path);
    }
    let response = api.client.delete(api.url("/status")).send().await?;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    let body: serde_json::Value = response.json().await?;
    assert_error_shape(&body, "DELETE /status");
    let response = api.client.put(api.url("/snapshot")).send().await?;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, HEAD, POST");
    let response = api
        .client
        .get(api.url("/snapshot/containers/x"))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "PUT, DELETE");
    let response = api
        .client
        .post(api.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    api.stop().await
}

#[tokio::test]
async fn an_oversized_request_head_gets_a_json_answer() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let long_query = format!("/status?name={}", "a".repeat(20_000));
    let response = api.client.get(api.url(&long_query)).send().await?;
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["error"], "uri_too_long", "{body}");
    assert_error_shape(&body, "a 20 KB query");

    for (what, request) in [
        (
            "one 100 KB header",
            api.client
                .get(api.url("/health"))
                .header("x-big", "b".repeat(100_000)),
        ),
        (
            "a 2 MB header",
            api.client
                .get(api.url("/health"))
                .header("x-big", "b".repeat(2_000_000)),
        ),
        ("120 headers", {
            let mut request = api.client.get(api.url("/health"));
            for n in 0..120 {
                request = request.header(format!("x-h{n}"), "1");
            }
            request
        }),
    ] {
        let response = request.send().await?;
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{what}"
        );
        let body: serde_json::Value = response.json().await?;
        assert_eq!(body["error"], "headers_too_large", "{what}: {body}");
    }
    // The server is unharmed.
    assert_eq!(api.get("/health").await?.0, StatusCode::OK);
    api.stop().await
}

#[tokio::test]
async fn filters_are_bounded_before_any_work_is_done() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let repeated = |parameter: &str, value: &str, count: usize| {
        vec![format!("{parameter}={value}"); count].join("&")
    };
    for parameter in ["name", "label"] {
        let path = format!("/status?{}", repeated(parameter, "web", 9));
        let (status, body) = api.get(&path).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_error_shape(&body, &path);
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("`{parameter}` is given 9 times"))
                && message.contains("at most 8"),
            "{message}"
        );
        let path = format!("/status?{}", repeated(parameter, "web", 8));
        assert_eq!(api.get(&path).await?.0, StatusCode::OK, "{path}");
    }
    // What compiled to 10 MiB in 150 ms is refused at the size limit; an ASCII `\w` is small.
    let (status, body) = api.get("/status?name=(%3Fu)%5Cw%7B200%7D").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("more than 32 KiB")),
        "{body}"
    );
    assert_eq!(
        api.get("/status?name=%5Cw%7B200%7D").await?.0,
        StatusCode::OK
    );
    // A long poll with a pattern that cannot be used is told so at once, not when the wait is over.
    let revision = api.revision().await?;
    for pattern in ["web(", "(%3Fu)%5Cw%7B200%7D"] {
        let path = format!("/status?since={revision}&wait=60&name={pattern}");
        let started = std::time::Instant::now();
        let (status, body) = api.get(&path).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{path} answered after {:?}",
            started.elapsed()
        );
    }
    api.stop().await
}
