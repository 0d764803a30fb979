//! The engine's unix socket, with its connections kept open between calls. The client library opens a new
//! connection for every request on a unix socket (its pool is switched off there); at 20,000 containers a
//! first start makes 20,000 inspects, and a connect, an accept and a close for each was a fifth of the work
//! on both sides (docs/benchmarks.md, "Thousands of containers"). Here the requests go through a pooled
//! client instead: up to [`IDLE_PER_ENGINE`] idle connections are kept, each for at most [`IDLE_TIMEOUT`].
//!
//! What it changes and what it does not: every request is still one HTTP/1.1 request on one connection of
//! its own while it runs (a stream of events keeps its connection for as long as it runs), with the same
//! timeout. A connection the engine closed while idle (a restart) is dropped from the pool when its close
//! is read; a request that finds it closed before any byte was written is sent again on a new connection
//! by the pool itself, and anything later fails the request as before, never silently.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::{BollardRequest, Docker, API_DEFAULT_VERSION};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;

/// How many idle connections to the engine are kept: as many as status-api's inspects in flight at once
/// (16), so a burst of events reuses them; with the requests under way, well inside the 64 descriptors each
/// program keeps apart from its connection cap for the engine and its files.
pub const IDLE_PER_ENGINE: usize = 16;
/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The request timeout until the caller sets its own (`Docker::with_timeout`), as the client library's.
const DEFAULT_TIMEOUT_SECONDS: u64 = 120;

/// A Docker client for the unix socket at `path` (with or without `unix://`), its connections kept open
/// between requests. Fails, as the client library does, when no socket is there.
pub fn connect(path: &str) -> Result<Docker, BollardError> {
    let socket = PathBuf::from(path.trim_start_matches("unix://"));
    if !socket.exists() {
        return Err(BollardError::SocketNotFoundError(
            socket.display().to_string(),
        ));
    }
    let client = Arc::new(
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_ENGINE)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(UnixConnector),
    );
    let socket: Arc<Path> = Arc::from(socket);
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let (client, socket) = (client.clone(), socket.clone());
            async move {
                let (mut parts, body) = request.into_parts();
                parts.uri = on_socket(&socket, &parts.uri);
                client
                    .request(BollardRequest::from_parts(parts, body))
                    .await
                    .map_err(|err| BollardError::HyperLegacyError { err })
            }
        },
        // The client library writes each request's URI against this address; the transport puts the
        // request on the socket whatever it says.
        Some("http://docker.sock"),
        DEFAULT_TIMEOUT_SECONDS,
        API_DEFAULT_VERSION,
    )
}

/// `uri`'s path and query, on the socket at `socket`.
fn on_socket(socket: &Path, uri: &hyper::Uri) -> hyper::Uri {
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    hyperlocal::Uri::new(socket, path).into()
}

/// The socket `host` names (`unix:///…`), or, with no host, the one `DOCKER_HOST` names or Docker's own —
/// as the client library's own defaults read them; `None` for any other kind of host (`tcp://…`).
pub fn socket_of(host: Option<&str>) -> Option<String> {
    match host.filter(|host| !host.is_empty()) {
        Some(host) => host.starts_with("unix://").then(|| host.to_owned()),
        None => Some(
            std::env::var("DOCKER_HOST")
                .ok()
                .filter(|host| host.starts_with("unix://"))
                .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_keeps_its_path_and_query_and_goes_to_the_socket() {
        let uri: hyper::Uri = "http://docker.sock/v1.41/containers/json?all=true&filters=%7B%7D"
            .parse()
            .expect("a uri");
        let on = on_socket(Path::new("/run/docker.sock"), &uri);
        assert_eq!(on.scheme_str(), Some("unix"));
        assert_eq!(
            on.path_and_query().map(|path| path.as_str()),
            Some("/v1.41/containers/json?all=true&filters=%7B%7D")
        );
        assert_eq!(
            on,
            hyper::Uri::from(hyperlocal::Uri::new(
                "/run/docker.sock",
                "/v1.41/containers/json?all=true&filters=%7B%7D"
            ))
        );
    }

    #[test]
    fn the_socket_is_the_hosts_or_the_default_and_other_hosts_are_not_sockets() {
        assert_eq!(
            socket_of(Some("unix:///tmp/engine.sock")).as_deref(),
            Some("unix:///tmp/engine.sock")
        );
        assert_eq!(socket_of(Some("tcp://127.0.0.1:2375")), None);
        // With no host, DOCKER_HOST or Docker's own socket: a socket either way, or (tcp) not one of ours.
        let default = socket_of(None).expect("a socket without a host");
        assert!(default.starts_with("unix://"), "{default}");
    }

    #[test]
    fn no_socket_there_is_an_error_at_once() {
        let err = connect("unix:///nonexistent/dockstate/engine.sock").expect_err("no socket");
        assert!(matches!(err, BollardError::SocketNotFoundError(_)), "{err}");
    }
}
