//! `/openapi.json`, `/docs`, `/metrics`, `/health`, `/ready`.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use test_support::{docker, ensure_test_images, TestScope, BUSYBOX_IMAGE};
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
        ("/snapshot/containers/{name}", "put"),
        ("/snapshot/containers/{name}", "delete"),
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
async fn the_document_says_exactly_what_the_server_does() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let spec = api.get_ok("/openapi.json").await?;
    let parameters = spec["paths"]["/status"]["get"]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let parameter = |name: &str| {
        parameters
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    for name in ["all", "state", "label", "name", "since", "wait"] {
        assert_eq!(parameter(name)["required"], false, "`{name}` is optional");
    }
    for name in ["state", "label", "name"] {
        assert_eq!(
            parameter(name)["schema"]["type"],
            "array",
            "`{name}` repeats"
        );
    }
    assert_eq!(parameter("label")["schema"]["items"]["minLength"], 1);
    assert_eq!(parameter("name")["schema"]["items"]["maxLength"], 64);
    assert_eq!(parameter("label")["schema"]["items"]["maxLength"], 100);
    assert_eq!(parameter("state")["schema"]["maxItems"], 7);
    assert_eq!(parameter("wait")["schema"]["maximum"], 60.0);

    // Everything sent as null is declared nullable.
    let schemas = &spec["components"]["schemas"];
    for (schema, field) in [
        ("ContainerStatus", "exit_code"),
        ("ContainerStatus", "created_at"),
        ("ContainerStatus", "started_at"),
        ("ContainerStatus", "finished_at"),
        ("StatusResponse", "scope"),
        ("StatusResponse", "snapshot_taken_at"),
        ("StatusResponse", "server_container_id"),
        ("StatusResponse", "not_ready_reason"),
        ("SnapshotSummary", "scope"),
        ("DriftItem", "state"),
        ("DriftItem", "since"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["nullable"], true,
            "{schema}.{field} is sent as null"
        );
    }
    // The token operations require the token: no empty alternative.
    for (path, method) in [
        ("/snapshot", "post"),
        ("/snapshot/containers/{name}/spec", "get"),
    ] {
        assert_eq!(
            spec["paths"][path][method]["security"],
            serde_json::json!([{"BearerToken": []}]),
            "{method} {path}"
        );
    }
    // Every object answer carries an example.
    for (name, schema) in schemas.as_object().into_iter().flatten() {
        if schema["type"] == "object" {
            assert!(schema["example"].is_object(), "{name} has no example");
        }
    }
    api.stop().await
}

#[tokio::test]
async fn large_answers_are_compressed_and_docs_are_cacheable() -> anyhow::Result<()> {
    use std::io::Read;

    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    for path in [
        "/docs/swagger-ui-bundle.js",
        "/openapi.json",
        "/ui.js",
        "/status",
        "/status?all=true&name=x",
    ] {
        let plain = api.client.get(api.url(path)).send().await?;
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        let plain = plain.bytes().await?;
        let gzip = api
            .client
            .get(api.url(path))
            .header("accept-encoding", "gzip, br")
            .send()
            .await?;
        assert_eq!(gzip.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(gzip.headers()["vary"], "accept-encoding", "{path}");
        let packed = gzip.bytes().await?;
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut unpacked)?;
        if path.starts_with("/status") {
            // Another revision may have come between the two requests: compare the shape, not the bytes.
            let value: serde_json::Value = serde_json::from_slice(&unpacked)?;
            assert!(value["containers"].is_array(), "{path}");
        } else {
            assert_eq!(unpacked, plain, "{path}");
            assert!(packed.len() * 2 < plain.len(), "{path} compresses");
        }
    }

    let docs = api.client.get(api.url("/docs")).send().await?;
    let etag = docs.headers()["etag"].clone();
    assert!(docs.headers()["cache-control"]
        .to_str()?
        .contains("max-age"));
    let again = api
        .client
        .get(api.url("/docs"))
        .header("if-none-match", etag)
        .send()
        .await?;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let icon = api.client.get(api.url("/favicon.ico")).send().await?;
    assert_eq!(icon.status(), StatusCode::OK);
    assert!(icon.headers()["content-type"]
        .to_str()?
        .starts_with("image/"));
    api.stop().await
}

#[tokio::test]
async fn docs_serve_swagger_ui_from_the_binary() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let docs = api.client.get(api.url("/docs")).send().await?;
    assert_eq!(docs.status(), StatusCode::OK);
    let policy = docs.headers()["content-security-policy"]
        .to_str()?
        .to_owned();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    let html = docs.text().await?;
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "no quirks mode: {html}"
    );
    assert!(
        html.contains("<title>dockstate status-api — API docs</title>"),
        "{html}"
    );
    for part in [
        html.clone(),
        api.text("/docs/swagger-ui-bundle.js").await?.1,
        api.text("/docs/swagger-ui.css").await?.1,
        api.text("/docs/swagger-init.js").await?.1,
    ] {
        assert!(
            part.contains("swagger") || part.contains("Swagger"),
            "{}",
            &part[..part.len().min(300)]
        );
        assert!(
            !part.contains("cdn."),
            "the UI must not load from a CDN: this works offline"
        );
    }
    api.stop().await
}

#[tokio::test]
async fn the_live_page_is_served_from_the_binary() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    let root = api.client.get(api.url("/")).send().await?;
    assert_eq!(root.status(), StatusCode::OK);
    assert_eq!(
        root.url().path(),
        "/",
        "/ is the page itself, not a redirect"
    );
    assert!(root.headers()["content-type"]
        .to_str()?
        .starts_with("text/html"));
    let policy = root.headers()["content-security-policy"]
        .to_str()?
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = root.text().await?;
    for asset in ["/ui.js", "/ui.css"] {
        assert!(html.contains(asset), "the page loads {asset}");
        let (status, body) = api.text(asset).await?;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(!body.is_empty(), "{asset}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    api.stop().await
}

#[tokio::test]
async fn metrics_pass_promtool_and_carry_the_spec_names() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    scope.run("db", BUSYBOX_IMAGE, &[]).await?;
    let api = spawn_api(&scope, Options::default()).await?;
    // A member down and a stranger up: a series for each container, and one for each drift.
    let (web, db, stranger) = (scope.name("web"), scope.name("db"), scope.name("stranger"));
    // Whole seconds: the engine's event times, from which drift begins, have no finer grain.
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    docker(&["kill", &web]).await?;
    scope.run("stranger", BUSYBOX_IMAGE, &[]).await?;
    api.wait_for_drift(&web, "stopped", Duration::from_secs(10))
        .await?;
    api.wait_for_drift(&stranger, "unexpected", Duration::from_secs(10))
        .await?;
    api.get("/status").await?;
    api.get("/status?state=bogus").await?;
    // Each drift says since when it has been seen: after the kill, not after now.
    let drift = api.get_ok("/drift").await?;
    for (name, kind) in [(&web, "stopped"), (&stranger, "unexpected")] {
        let item = drift["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|item| item["name"] == name.as_str() && item["kind"] == kind)
            .ok_or_else(|| anyhow::anyhow!("no {kind} drift of {name}: {drift}"))?;
        let since =
            chrono::DateTime::parse_from_rfc3339(item["since"].as_str().unwrap_or_default())?;
        assert!(
            since >= before && since <= chrono::Utc::now(),
            "{name} {kind} since {since}, the kill at {before}"
        );
    }
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
    assert!(
        text.contains(r#"dockstate_drift{kind="unexpected"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"dockstate_drift{kind="paused"} 0"#),
        "{text}"
    );
    for series in [
        format!(r#"dockstate_container_drift{{name="{web}",kind="stopped",policy="heal"}} 1"#),
        format!(
            r#"dockstate_container_drift{{name="{stranger}",kind="unexpected",policy="heal"}} 1"#
        ),
        format!(
            r#"dockstate_container_state{{name="{web}",state="exited",in_snapshot="true",policy="heal"}} 1"#
        ),
        format!(
            r#"dockstate_container_state{{name="{db}",state="running",in_snapshot="true",policy="heal"}} 1"#
        ),
        format!(
            r#"dockstate_container_state{{name="{stranger}",state="running",in_snapshot="false",policy="heal"}} 1"#
        ),
        "dockstate_snapshot_members 2\n".to_owned(),
        "dockstate_ready 1\n".to_owned(),
        "dockstate_event_backlog 0\n".to_owned(),
    ] {
        assert!(text.contains(&series), "{series} missing from:\n{text}");
    }
    assert!(
        text.lines().any(|line| line.starts_with(&format!(
            r#"dockstate_container_drift_since_timestamp_seconds{{name="{web}",kind="stopped",policy="heal"}} 1"#
        ))),
        "{text}"
    );
    assert!(
        !text.contains(&format!(r#"dockstate_container_drift{{name="{db}""#)),
        "a member in sync has no drift series:\n{text}"
    );
    let engine = api.get_ok("/ready").await?["engine"].clone();
    assert!(
        text.contains(&format!(
            r#"engine="docker",engine_version="{}",api_version="{}",scope="{}"}} 1"#,
            engine["version"].as_str().unwrap_or_default(),
            engine["api_version"].as_str().unwrap_or_default(),
            scope.scope()
        )),
        "dockstate_info names the engine and the scope:\n{text}"
    );

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
