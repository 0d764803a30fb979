//! Only the hosts it serves: the controller's server refuses, on every route, a request that names it by a
//! DNS name not given in `--allowed-hosts` (421 `host_not_allowed`: what a DNS-rebinding page would send to
//! read `/actions`), and serves IP addresses, `localhost` and the allowed names — real HTTP on loopback.

use std::net::SocketAddr;

use reqwest::header::HOST;
use reqwest::StatusCode;
use serde_json::Value;
use test_support::{StatusControllerServer, TestScope};

use crate::helpers::{api_for_scope, init_logs};

const PATHS: [&str; 6] = [
    "/health", "/ready", "/metrics", "/actions", "/hold", "/nope",
];

/// GET `path` from the server at `address`, reached under `name` (resolved to that address, as a browser that
/// looked it up would); its status and JSON body.
async fn get_as(
    address: SocketAddr,
    name: &str,
    path: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let client = reqwest::Client::builder().resolve(name, address).build()?;
    let response = client
        .get(format!("http://{name}:{}{path}", address.port()))
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

#[tokio::test]
async fn a_foreign_name_is_refused_on_every_route_and_ips_localhost_and_allowed_names_are_served(
) -> anyhow::Result<()> {
    init_logs();
    let scope = TestScope::new();
    let api = api_for_scope(&scope).await?;
    let controller =
        StatusControllerServer::start(&api, &["--allowed-hosts", "dockstate-controller.test"])
            .await?;
    let address = controller.address;
    let served =
        |status: StatusCode| status != StatusCode::MISDIRECTED_REQUEST && !status.is_server_error();
    for path in PATHS {
        let (status, body) = get_as(address, &address.ip().to_string(), path).await?;
        assert!(served(status), "{path} by IP: {status} {body}");
        for name in ["localhost", "dockstate-controller.test"] {
            let (status, body) = get_as(address, name, path).await?;
            assert!(served(status), "{path} as {name}: {status} {body}");
        }
        let response = reqwest::Client::new()
            .get(controller.url(path))
            .header(
                HOST,
                format!("Dockstate-Controller.Test.:{}", address.port()),
            )
            .send()
            .await?;
        assert!(served(response.status()), "{path}: {}", response.status());

        let (status, body) = get_as(address, "rebind.example", path).await?;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{path}: {body}");
        assert_eq!(body["error"], "host_not_allowed", "{path}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        for part in [
            "`rebind.example:",
            "--allowed-hosts",
            "STATUS_CONTROLLER_ALLOWED_HOSTS",
        ] {
            assert!(message.contains(part), "{path}: {message}");
        }
    }
    // The hold is refused before its token is looked at.
    let client = reqwest::Client::builder()
        .resolve("rebind.example", address)
        .build()?;
    let response = client
        .post(format!(
            "http://rebind.example:{}/hold?for=1m",
            address.port()
        ))
        .bearer_auth("anything")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    controller.stop().await?;
    api.stop().await
}
