//! The controller describes itself over real HTTP: `/openapi.json` lists its five endpoints, `/docs` is
//! Swagger UI served from the binary (its script and style too) under a Content-Security-Policy, and every
//! 405 names the methods the path takes in `Allow`.

use reqwest::header::{ALLOW, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use test_support::{StatusControllerServer, TestScope};

use crate::helpers::{api_for_scope, init_logs};

#[tokio::test]
async fn the_controller_serves_its_document_and_swagger_ui() -> anyhow::Result<()> {
    init_logs();
    let scope = TestScope::new();
    let api = api_for_scope(&scope).await?;
    let controller = StatusControllerServer::start(&api, &[]).await?;
    let client = reqwest::Client::new();

    let document: Value = client
        .get(controller.url("/openapi.json"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(document["info"]["title"], "dockstate status-controller");
    let paths = document["paths"].as_object().expect("paths");
    for path in ["/health", "/ready", "/metrics", "/actions", "/hold"] {
        assert!(paths.contains_key(path), "{path} in {:?}", paths.keys());
    }
    for method in ["get", "post", "delete"] {
        assert!(
            document["paths"]["/hold"][method].is_object(),
            "{method} /hold"
        );
    }

    let page = client.get(controller.url("/docs")).send().await?;
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()[CONTENT_SECURITY_POLICY].to_str()?.to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await?;
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("<title>dockstate status-controller — API docs</title>"),
        "{html}"
    );
    for (path, kind) in [
        ("/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/swagger-ui.css", "text/css"),
        ("/docs/swagger-init.js", "text/javascript"),
    ] {
        assert!(html.contains(path), "{path} in the page");
        let response = client.get(controller.url(path)).send().await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let content_type = response.headers()[CONTENT_TYPE].to_str()?.to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert!(!response.bytes().await?.is_empty(), "{path}");
    }
    controller.stop().await?;
    api.stop().await
}

#[tokio::test]
async fn every_405_of_the_controller_says_allow() -> anyhow::Result<()> {
    init_logs();
    let scope = TestScope::new();
    let api = api_for_scope(&scope).await?;
    let controller = StatusControllerServer::start(&api, &[]).await?;
    let client = reqwest::Client::new();
    for (method, path, allowed) in [
        (Method::POST, "/actions", "GET, HEAD"),
        (Method::DELETE, "/health", "GET, HEAD"),
        (Method::PUT, "/ready", "GET, HEAD"),
        (Method::POST, "/metrics", "GET, HEAD"),
        (Method::PUT, "/hold", "GET, HEAD, POST, DELETE"),
        (Method::PATCH, "/hold", "GET, HEAD, POST, DELETE"),
        (Method::POST, "/openapi.json", "GET, HEAD"),
        (Method::POST, "/docs", "GET, HEAD"),
    ] {
        let response = client
            .request(method.clone(), controller.url(path))
            .send()
            .await?;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            response.headers().get(ALLOW).and_then(|v| v.to_str().ok()),
            Some(allowed),
            "{method} {path}"
        );
        let body: Value = response.json().await?;
        assert_eq!(body["error"], "method_not_allowed", "{method} {path}");
    }
    controller.stop().await?;
    api.stop().await
}
