//! A webhook receiver on 127.0.0.1, port 0: it records every request it gets (path, headers, body) and
//! answers 200, after a delay when asked to play a slow receiver, or a redirect when asked to play one that
//! sends its callers elsewhere. For the controller's notification tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::Request;
use tokio::task::JoinHandle;

use crate::wait_until;

/// One request as the receiver got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Received {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    /// A header's value, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    server: JoinHandle<()>,
}

impl WebhookReceiver {
    /// A receiver that answers 200 at once.
    pub async fn start() -> anyhow::Result<Self> {
        Self::answering_after(Duration::ZERO).await
    }

    /// A receiver that records each request when it arrives, then waits `delay` before it answers 200.
    pub async fn answering_after(delay: Duration) -> anyhow::Result<Self> {
        Self::answering(delay, None).await
    }

    /// A receiver that records each request, then answers `307 Temporary Redirect` to `location`.
    pub async fn redirecting_to(location: &str) -> anyhow::Result<Self> {
        Self::answering(Duration::ZERO, Some(location.to_owned())).await
    }

    async fn answering(delay: Duration, redirect: Option<String>) -> anyhow::Result<Self> {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
        let address = *acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr())
            .ok_or_else(|| anyhow::anyhow!("the receiver has no address"))?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let app = poem::endpoint::make(move |mut request: Request| {
            let log = log.clone();
            let redirect = redirect.clone();
            async move {
                let body = request.take_body().into_string().await.unwrap_or_default();
                let headers = request
                    .headers()
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.as_str().to_owned(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                lock(&log).push(Received {
                    method: request.method().to_string(),
                    path: request.uri().to_string(),
                    headers,
                    body,
                });
                tokio::time::sleep(delay).await;
                match redirect {
                    Some(location) => poem::Response::builder()
                        .status(poem::http::StatusCode::TEMPORARY_REDIRECT)
                        .header(poem::http::header::LOCATION, location)
                        .finish(),
                    None => poem::Response::builder().body("ok"),
                }
            }
        });
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Ok(Self {
            address,
            received,
            server,
        })
    }

    /// `http://<address><path>`, behind `prefix` (`slack+`, `ntfy+`, …).
    pub fn url(&self, prefix: &str, path: &str) -> String {
        format!("{prefix}http://{}{path}", self.address)
    }

    /// Every request so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }

    /// Waits up to `timeout` for a request that `matches`; answers it.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Received> {
        wait_until(what, timeout, || async {
            Ok(self.received().iter().any(&matches))
        })
        .await?;
        self.received()
            .into_iter()
            .find(|request| matches(request))
            .ok_or_else(|| anyhow::anyhow!("{what}: just seen, then gone"))
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(received: &Mutex<Vec<Received>>) -> MutexGuard<'_, Vec<Received>> {
    received
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
