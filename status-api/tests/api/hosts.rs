//! Only the hosts it serves: a request that names status-api by a DNS name it was not given in
//! `--allowed-hosts` is refused on every route with 421 `host_not_allowed` (what a DNS-rebinding page would
//! send), while IP addresses, `localhost` and the allowed names are served — over real HTTP on loopback.

use std::net::SocketAddr;

use reqwest::header::HOST;
use reqwest::StatusCode;
use serde_json::Value;
use test_support::TestScope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{answer, assert_error_shape, spawn_api, Options, TestApi};

/// Every route, and one that is none: the check comes before routing.
const PATHS: [&str; 10] = [
    "/status",
    "/status?all=true&name=web",
    "/snapshot",
    "/drift",
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/",
    "/no/such/route",
];

/// A client that reaches the server under `name`, as a browser that resolved it would.
fn client_naming(name: &str, address: SocketAddr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().resolve(name, address).build()?)
}

async fn get_as(api: &TestApi, name: &str, path: &str) -> anyhow::Result<(StatusCode, Value)> {
    let address = api.address();
    let client = client_naming(name, address)?;
    let url = format!("http://{name}:{}{path}", address.port());
    answer(client.get(url).send().await?).await
}

/// Sends `request` as is on a new connection; the status line and body of the answer.
async fn raw(address: SocketAddr, request: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn a_foreign_name_is_refused_on_every_route_and_ips_localhost_and_allowed_names_are_served(
) -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(
        &scope,
        Options {
            allowed_hosts: Some("dockstate-api.test".into()),
            ..Options::default()
        },
    )
    .await?;
    let address = api.address();

    for path in PATHS {
        let expected = |status: StatusCode| {
            status != StatusCode::MISDIRECTED_REQUEST && !status.is_server_error()
        };
        // By IP, by localhost (and a name under it), by the allowed name (case and a trailing dot aside).
        let (status, body) = api.get(path).await?;
        assert!(expected(status), "{path} by IP: {status} {body}");
        for name in ["localhost", "app.localhost", "dockstate-api.test"] {
            let (status, body) = get_as(&api, name, path).await?;
            assert!(expected(status), "{path} as {name}: {status} {body}");
        }
        let (status, body) = answer(
            api.client
                .get(api.url(path))
                .header(HOST, format!("DOCKSTATE-API.test.:{}", address.port()))
                .send()
                .await?,
        )
        .await?;
        assert!(
            expected(status),
            "{path} as DOCKSTATE-API.test.: {status} {body}"
        );
        let (status, body) = answer(
            api.client
                .get(api.url(path))
                .header(HOST, format!("[::1]:{}", address.port()))
                .send()
                .await?,
        )
        .await?;
        assert!(expected(status), "{path} as [::1]: {status} {body}");

        // A page on another name that re-pointed it at this address.
        let (status, body) = get_as(&api, "rebind.example", path).await?;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{path}: {body}");
        assert_error_shape(&body, path);
        assert_eq!(body["error"], "host_not_allowed", "{path}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        for part in [
            "`rebind.example:",
            "--allowed-hosts",
            "STATUS_API_ALLOWED_HOSTS",
        ] {
            assert!(message.contains(part), "{path}: {message}");
        }
    }
    // Writes are refused before the token is even looked at.
    let client = client_naming("rebind.example", address)?;
    let response = client
        .post(format!("http://rebind.example:{}/snapshot", address.port()))
        .bearer_auth("anything")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);

    // HTTP/1.0 without a Host names nothing: served (no browser sends that). A target in absolute form
    // names its host there, and that is checked too.
    let old = raw(address, "GET /health HTTP/1.0\r\n\r\n").await?;
    assert!(old.starts_with("HTTP/1.0 200"), "{old}");
    let absolute = raw(
        address,
        "GET http://rebind.example/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await?;
    assert!(absolute.starts_with("HTTP/1.1 421"), "{absolute}");
    assert!(absolute.contains("host_not_allowed"), "{absolute}");

    // Refusals are counted like any answer.
    let (_, metrics) = api.text("/metrics").await?;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("http_server_requests_total{")
                && line.contains("status=\"421\"")),
        "no 421 series in /metrics"
    );
    api.stop().await
}

#[tokio::test]
async fn without_allowed_hosts_only_ips_and_localhost_are_served() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let api = spawn_api(&scope, Options::default()).await?;
    assert_eq!(
        get_as(&api, "localhost", "/status").await?.0,
        StatusCode::OK
    );
    assert_eq!(api.get("/status").await?.0, StatusCode::OK);
    let (status, body) = get_as(&api, "status-api", "/status").await?;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{body}");
    assert_eq!(body["error"], "host_not_allowed", "{body}");
    api.stop().await
}
