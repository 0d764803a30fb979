//! `/openapi.json`, `/docs`, `/metrics`, `/health`, `/ready`.

use std::process::Stdio;

use reqwest::StatusCode;
use test_support::TestScope;
use tokio::io::AsyncWriteExt;

use crate::helpers::{spawn_api, Options};

#[tokio::test]
async fn openapi_is_version_3_and_lists_every_endpoint() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let spec = api.get_ok("/openapi.json").await?;
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        spec["openapi"]
    );
    let expected = [
        ("/status", "get"),
        ("/status/{name_or_id}", "get"),
        ("/snapshot", "get"),
        ("/snapshot", "post"),
        ("/snapshot/containers/{name}/spec", "get"),
        ("/drift", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
    ];
    for (path, method) in expected {
        let operation = &spec["paths"][path][method];
        assert!(
            operation.is_object(),
            "{method} {path} is not in the document"
        );
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
    }
    let parameters = spec["paths"]["/status"]["get"]["parameters"].to_string();
    for parameter in ["all", "state", "label", "name", "since", "wait"] {
        assert!(
            parameters.contains(&format!("\"{parameter}\"")),
            "/status lacks `{parameter}`"
        );
    }
    assert!(
        spec["components"]["securitySchemes"].is_object(),
        "the bearer token is documented"
    );
    assert!(
        spec["components"]["schemas"]["ContainerStatus"]["properties"]["in_snapshot"].is_object()
    );
    api.stop().await
}

#[tokio::test]
async fn docs_serve_swagger_ui_from_the_binary() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let (status, html) = api.text("/docs").await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("swagger-ui"),
        "{}",
        &html[..html.len().min(300)]
    );
    assert!(
        !html.contains("cdn."),
        "the UI must not load from a CDN: this works offline"
    );
    let root = api.client.get(api.url("/")).send().await?;
    assert_eq!(root.url().path(), "/docs", "/ leads to the docs");
    api.stop().await
}

#[tokio::test]
async fn metrics_pass_promtool_and_carry_the_spec_names() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    api.get("/status").await?;
    api.get("/status?state=bogus").await?;
    api.get("/drift").await?;
    let (status, text) = api.text("/metrics").await?;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "http_server_requests_total",
        "http_server_request_duration_seconds_bucket",
        "dockstate_containers",
        "dockstate_drift",
        "dockstate_docker_events_total",
        "dockstate_revision",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    assert!(
        text.contains(r#"http_server_requests_total{method="GET",route="/status",status="400"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"dockstate_drift{kind="unexpected"} 0"#));

    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| anyhow::anyhow!("promtool is needed (apt-get install prometheus): {err}"))?;
    promtool
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("stdin"))?
        .write_all(text.as_bytes())
        .await?;
    let output = promtool.wait_with_output().await?;
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    api.stop().await
}

#[tokio::test]
async fn health_and_readiness_report_their_checks() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    assert_eq!(
        api.get_ok("/health").await?,
        serde_json::json!({"status": "UP"})
    );
    let ready = api.get_ok("/ready").await?;
    assert_eq!(ready["status"], "READY");
    for check in ["docker", "snapshot", "events"] {
        assert_eq!(ready["checks"][check]["status"], "UP", "{ready}");
    }
    api.stop().await
}
