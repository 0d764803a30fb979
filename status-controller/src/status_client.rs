//! The HTTP client of status-api: the long poll of `/status`, `/snapshot` and the recreation specs, behind
//! [`StatusSource`] so the loop can be tested against a fake. Every error names the step that failed, so a
//! hold can say why, and "status-api is down" is never confused with "status-api answered no".

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use shared::runtime::secret::Secret;
use shared::{ContainerSpec, ErrorBody, SnapshotSummary};

use crate::model::{Hold, HoldReason, StatusAnswer};

mod read_status;

use read_status::ReadStatus;

/// How long any other request may take, and the margin a long poll gets beyond its wait.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("status-api at {url} is unreachable")]
    ApiUnreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("status-api has no snapshot yet (it takes one as soon as Docker answers)")]
    NoSnapshot,
    #[error("the snapshot has no container named {0}")]
    NotInSnapshot(String),
    #[error("status-api refused {what} ({status}): {message}")]
    Refused {
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("status-api's answer to {what} could not be read")]
    BadAnswer {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("status-api's answer to {what} could not be decoded")]
    Undecodable {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = StatusError> = std::result::Result<T, E>;

impl From<&StatusError> for Hold {
    fn from(err: &StatusError) -> Self {
        let reason = match err {
            StatusError::ApiUnreachable { .. } => HoldReason::ApiUnreachable,
            StatusError::NoSnapshot => HoldReason::NoSnapshot,
            StatusError::NotInSnapshot(_)
            | StatusError::Refused { .. }
            | StatusError::BadAnswer { .. }
            | StatusError::Undecodable { .. } => HoldReason::BadAnswer,
        };
        Self::new(reason, shared::error_chain(err))
    }
}

/// What the controller asks status-api. Cheap to clone: the loop keeps a long poll in flight on a clone.
pub trait StatusSource: Clone + Send + Sync + 'static {
    /// `GET /status?all=true`, as a long poll when `since` is given: answered at once if the revision is not
    /// `since`, else at the next change or after `wait`.
    fn status(
        &self,
        since: Option<u64>,
        wait: Duration,
    ) -> impl Future<Output = Result<StatusAnswer>> + Send;
    /// `GET /snapshot`: the baseline.
    fn snapshot(&self) -> impl Future<Output = Result<Arc<SnapshotSummary>>> + Send;
    /// `GET /snapshot/containers/{name}/spec`: what is needed to recreate `name`.
    fn spec(&self, name: &str) -> impl Future<Output = Result<ContainerSpec>> + Send;
}

/// A status-api client. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct StatusClient {
    http: reqwest::Client,
    base: Url,
    /// status-api's bearer token, for the recreation specs.
    token: Option<Secret>,
    /// The snapshot last read, and the body it was read from.
    last_snapshot: Arc<Mutex<Option<ReadSnapshot>>>,
    /// The `/status` answer last read, and the body it was read from.
    last_status: Arc<Mutex<Option<Arc<ReadStatus>>>>,
}

/// A snapshot and the body it was decoded from. Every periodic pass reads the snapshot again, and status-api
/// answers the same bytes until it re-baselines: an answer byte for byte the same as the last one is the
/// same snapshot, so it is not decoded again (at 20,000 members a third of the pass), only compared. Keeps
/// the body (about 400 bytes a member) as long as the snapshot lasts.
struct ReadSnapshot {
    body: Bytes,
    snapshot: Arc<SnapshotSummary>,
}

impl std::fmt::Debug for ReadSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSnapshot")
            .field("body_bytes", &self.body.len())
            .field("taken_at", &self.snapshot.taken_at)
            .finish()
    }
}

impl StatusClient {
    /// A client for the status-api at `base` (a URL whose path ends with `/`, as `--api-url` gives it):
    /// `http://`, or `https://` with the certificate checked against the roots built into the binary (the
    /// image is FROM scratch and has no CA bundle), as notifications do.
    pub fn new(base: Url, token: Option<Secret>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("status-controller/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only the TLS set-up can fail, and the built-in roots always load.
            .unwrap_or_default();
        Self {
            http,
            base,
            token,
            last_snapshot: Arc::default(),
            last_status: Arc::default(),
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // The base ends with `/`, which leaves an empty last segment to replace.
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The snapshot in `body`: the last one read when `body` is the same, else decoded (and kept).
    fn decode_snapshot(&self, body: Bytes, what: &'static str) -> Result<Arc<SnapshotSummary>> {
        let mut last = self
            .last_snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(read) = last.as_ref().filter(|read| read.body == body) {
            return Ok(read.snapshot.clone());
        }
        let snapshot: Arc<SnapshotSummary> = Arc::new(
            serde_json::from_slice(&body)
                .map_err(|source| StatusError::Undecodable { what, source })?,
        );
        *last = Some(ReadSnapshot {
            body,
            snapshot: snapshot.clone(),
        });
        Ok(snapshot)
    }

    /// The answer in `body`, decoded where it differs from the last one read ([`ReadStatus`]). Decoded outside
    /// the lock: the long poll and a periodic pass may both be reading.
    fn decode_status(&self, body: Bytes, what: &'static str) -> Result<StatusAnswer> {
        let lock = || {
            self.last_status
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let last = lock().clone();
        if let Some(last) = last.as_ref().filter(|last| last.read_from(&body)) {
            return Ok(last.answer().clone());
        }
        let read = ReadStatus::decode(body, last.as_deref())
            .map_err(|source| StatusError::Undecodable { what, source })?;
        let answer = read.answer().clone();
        *lock() = Some(Arc::new(read));
        Ok(answer)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response> {
        request
            .timeout(timeout)
            .send()
            .await
            .map_err(|source| StatusError::ApiUnreachable {
                url: self.base.to_string(),
                source,
            })
    }
}

impl StatusSource for StatusClient {
    /// `GET /status?all=true`, as a long poll when `since` is given: status-api answers at once if its
    /// revision is not `since`, else at the next change or after `wait`.
    /// Containers unchanged since the last answer are not decoded again ([`ReadStatus`]).
    async fn status(&self, since: Option<u64>, wait: Duration) -> Result<StatusAnswer> {
        let mut url = self.url(&["status"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("all", "true");
            if let Some(since) = since {
                query.append_pair("since", &since.to_string());
                query.append_pair("wait", &wait.as_secs().to_string());
            }
        }
        let timeout = match since {
            Some(_) => wait + REQUEST_TIMEOUT,
            None => REQUEST_TIMEOUT,
        };
        let response = self.send(self.http.get(url), timeout).await?;
        match response.status() {
            StatusCode::OK => {
                let what = "GET /status";
                let body = response
                    .bytes()
                    .await
                    .map_err(|source| StatusError::BadAnswer { what, source })?;
                self.decode_status(body, what)
            }
            _ => Err(refused(response, "GET /status").await),
        }
    }

    /// `GET /snapshot`: the baseline, or [`StatusError::NoSnapshot`] before status-api has one. The same
    /// answer as the last is not decoded again ([`ReadSnapshot`]).
    async fn snapshot(&self) -> Result<Arc<SnapshotSummary>> {
        let response = self
            .send(self.http.get(self.url(&["snapshot"])), REQUEST_TIMEOUT)
            .await?;
        match response.status() {
            StatusCode::OK => {
                let what = "GET /snapshot";
                let body = response
                    .bytes()
                    .await
                    .map_err(|source| StatusError::BadAnswer { what, source })?;
                self.decode_snapshot(body, what)
            }
            StatusCode::SERVICE_UNAVAILABLE => Err(StatusError::NoSnapshot),
            _ => Err(refused(response, "GET /snapshot").await),
        }
    }

    /// `GET /snapshot/containers/{name}/spec` with the bearer token: what is needed to recreate `name`.
    async fn spec(&self, name: &str) -> Result<ContainerSpec> {
        let mut request = self
            .http
            .get(self.url(&["snapshot", "containers", name, "spec"]));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response = self.send(request, REQUEST_TIMEOUT).await?;
        match response.status() {
            StatusCode::OK => read_json(response, "GET /snapshot/containers/{name}/spec").await,
            StatusCode::NOT_FOUND => Err(StatusError::NotInSnapshot(name.to_owned())),
            StatusCode::SERVICE_UNAVAILABLE => Err(StatusError::NoSnapshot),
            _ => Err(refused(response, "GET /snapshot/containers/{name}/spec").await),
        }
    }
}

async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &'static str,
) -> Result<T> {
    response
        .json()
        .await
        .map_err(|source| StatusError::BadAnswer { what, source })
}

/// An error answer, with status-api's own message when it sent the usual `{error, message}` body.
async fn refused(response: reqwest::Response, what: &'static str) -> StatusError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&body)
        .map(|error| error.message)
        .unwrap_or_else(|_| body.chars().take(200).collect());
    StatusError::Refused {
        what,
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_below_the_base_path() {
        let client = StatusClient::new(Url::parse("http://api:8080/prefix/").expect("url"), None);
        assert_eq!(
            client.url(&["status"]).as_str(),
            "http://api:8080/prefix/status"
        );
        assert_eq!(
            client
                .url(&["snapshot", "containers", "web-1", "spec"])
                .as_str(),
            "http://api:8080/prefix/snapshot/containers/web-1/spec"
        );
        let root = StatusClient::new(Url::parse("http://api:8080/").expect("url"), None);
        assert_eq!(root.url(&["ready"]).as_str(), "http://api:8080/ready");
    }

    /// The periodic pass reads the snapshot again each time: the same answer is the same snapshot, decoded
    /// once; another answer (status-api re-baselined) is decoded; an unreadable one is refused.
    #[test]
    fn the_same_snapshot_answer_is_decoded_once() {
        let client = StatusClient::new(Url::parse("http://api:8080/").expect("url"), None);
        let body = |taken_at: &str| {
            Bytes::from(format!(
                r#"{{"taken_at":"{taken_at}","scope":null,"containers":[]}}"#
            ))
        };
        let what = "GET /snapshot";
        let first = client
            .decode_snapshot(body("2026-12-01T10:00:00Z"), what)
            .expect("decodes");
        let again = client
            .decode_snapshot(body("2026-12-01T10:00:00Z"), what)
            .expect("decodes");
        assert!(Arc::ptr_eq(&first, &again), "not decoded again");
        let other = client
            .decode_snapshot(body("2026-12-01T11:00:00Z"), what)
            .expect("decodes");
        assert_ne!(other.taken_at, first.taken_at);
        let err = client
            .decode_snapshot(Bytes::from_static(b"{\"taken_at\""), what)
            .expect_err("cut short");
        assert!(matches!(err, StatusError::Undecodable { .. }), "{err}");
        assert!(format!("{client:?}").contains("body_bytes"), "{client:?}");
    }

    /// An `https://` `--api-url` is spoken to over TLS: what reaches the server is a TLS ClientHello naming
    /// the host (SNI), and a server that does not answer in TLS leaves the controller holding, unreachable.
    #[tokio::test]
    async fn an_https_api_url_is_spoken_to_over_tls() {
        use tokio::io::AsyncReadExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("a connection");
            let mut hello = vec![0; 512];
            let read = stream.read(&mut hello).await.expect("reads");
            hello.truncate(read);
            hello
        });
        let url = crate::config::parse_api_url(&format!("https://localhost:{port}"))
            .expect("https is accepted");
        let client = StatusClient::new(url, None);
        let err = client
            .status(None, Duration::ZERO)
            .await
            .expect_err("no TLS answer");
        assert!(matches!(err, StatusError::ApiUnreachable { .. }), "{err}");
        let hello = server.await.expect("the server ran");
        assert_eq!(
            hello.first(),
            Some(&0x16),
            "a TLS handshake record: {hello:?}"
        );
        assert!(
            hello
                .windows(b"localhost".len())
                .any(|window| window == b"localhost"),
            "the ClientHello names the host"
        );
    }

    /// The token goes on the wire whole (a `Secret` displays as a placeholder, and `bearer_auth` takes
    /// anything displayable), yet the client's `Debug` never shows it.
    #[tokio::test]
    async fn the_spec_request_carries_the_token_and_debug_hides_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        const TOKEN: &str = "status-client-s3cret";
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let base = Url::parse(&format!(
            "http://{}/",
            listener.local_addr().expect("an address")
        ))
        .expect("url");
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("a connection");
            let mut head = Vec::new();
            let mut chunk = [0; 1024];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                let read = stream.read(&mut chunk).await.expect("reads");
                assert!(read > 0, "the request ended early");
                head.extend_from_slice(&chunk[..read]);
            }
            stream
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await
                .expect("answers");
            String::from_utf8(head).expect("a text head")
        });
        let client = StatusClient::new(base, Some(Secret::from(TOKEN)));
        assert!(!format!("{client:?}").contains(TOKEN), "{client:?}");
        let err = client.spec("web-1").await.expect_err("404");
        assert!(matches!(err, StatusError::NotInSnapshot(_)), "{err}");
        let head = server.await.expect("the server ran").to_ascii_lowercase();
        assert!(
            head.contains(&format!(
                "authorization: bearer {}",
                TOKEN.to_ascii_lowercase()
            )),
            "{head}"
        );
    }
}
