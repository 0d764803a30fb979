//! The HTTP plumbing both servers share: binding the port first (so the real address is known before
//! anything runs) behind the connection guard, the `{"error", "message"}` answer every 4xx and 5xx carries,
//! the bounded `method` metric label, and the bare-socket probe behind the images' `healthcheck` subcommand
//! (the images are `FROM scratch`: no curl).

use std::time::Duration;

use super::connections::{ConnectionLimits, GuardedAcceptor};

/// The HTTP port could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}: {source}")]
pub struct BindError {
    pub address: std::net::SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// The acceptor both servers serve from: poem's TCP acceptor behind the connection guard.
pub type HttpAcceptor = GuardedAcceptor<poem::listener::TcpAcceptor>;

/// Binds the HTTP listener before anything runs, so the caller learns the real address (port 0 resolved) —
/// what tests and start-up logs need — and puts it behind the connection guard with `limits`.
pub async fn bind_http(
    address: std::net::SocketAddr,
    limits: ConnectionLimits,
) -> Result<(HttpAcceptor, std::net::SocketAddr), BindError> {
    use poem::listener::{Acceptor, Listener};

    let acceptor = poem::listener::TcpListener::bind(address)
        .into_acceptor()
        .await
        .map_err(|source| BindError { address, source })?;
    let bound = acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .unwrap_or(address);
    Ok((GuardedAcceptor::new(acceptor, limits), bound))
}

/// The `method` label of a request metric: one of the nine standard methods, else `other`. The raw method
/// would let any client mint a new series per request (3,000 made-up methods once grew `/metrics` from
/// 93 KB to 5.9 MB).
pub fn method_label(method: &poem::http::Method) -> &'static str {
    // Methods are case-sensitive: `get` is not GET.
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

/// A JSON error answer, `{"error": code, "message": …}`: the one shape of every 4xx and 5xx of both programs.
pub fn error_json(
    status: poem::http::StatusCode,
    code: &str,
    message: impl Into<String>,
) -> poem::Response {
    let body = crate::model::ErrorBody {
        error: code.to_owned(),
        message: message.into(),
    };
    poem::Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(serde_json::to_vec(&body).unwrap_or_default())
}

/// The JSON answer for an error the router or an extractor raised: unknown paths and methods get the hints
/// the caller gives (what this server does serve), anything else its status with a snake_case code.
pub fn router_error(
    err: &poem::Error,
    method: &str,
    path: &str,
    endpoints_hint: &str,
    methods_hint: &str,
) -> poem::Response {
    use poem::http::StatusCode;

    if err.is::<poem::error::NotFoundError>() {
        return error_json(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no endpoint at {method} {path}: {endpoints_hint}"),
        );
    }
    if err.is::<poem::error::MethodNotAllowedError>() {
        return error_json(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} does not accept {method}: {methods_hint}"),
        );
    }
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(error = %err, %method, %path, "request failed");
    }
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    error_json(status, &code, err.to_string())
}

/// Probes `http://<address>/health` with a bare HTTP/1.1 request — the `healthcheck` subcommand of both
/// binaries, for images built `FROM scratch` that have no curl. `Ok` when the answer is a 2xx.
pub fn probe_health(address: std::net::SocketAddr, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};

    // A server listening on every interface is probed on loopback.
    let address = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            std::net::SocketAddr::from(([127, 0, 0, 1], address.port()))
        }
        ip if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, address.port()))
        }
        _ => address,
    };
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|err| err.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|err| err.to_string())?;
    // One write: a request sent in pieces may meet a peer that answered and closed after the first one.
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("cannot send to {address}: {err}"))?;
    // Read until the status line is complete or the peer is done; a segment may end mid-line.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 256 {
        let read = stream
            .read(&mut buf)
            .map_err(|err| format!("no answer from {address}: {err}"))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buf[..read]);
    }
    let status_line = String::from_utf8_lossy(&head);
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('2') {
        Ok(())
    } else {
        Err(format!(
            "{address}/health answered {:?}",
            status_line.lines().next().unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_are_labels_of_their_own() {
        use poem::http::Method;

        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::TRACE), "TRACE");
        for made_up in ["get", "BREW", "X1234", "PROPFIND"] {
            let method = Method::from_bytes(made_up.as_bytes()).expect("a valid token");
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }

    #[test]
    fn the_health_probe_reads_the_status_line() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let address = listener.local_addr().expect("address");
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            for answer in [
                "HTTP/1.1 200 OK\r\n\r\n",
                "HTTP/1.1 503 Service Unavailable\r\n\r\n",
            ] {
                let (mut stream, _) = listener.accept().expect("accepts");
                // Answer only once the whole request is in, as a real server would.
                let mut request = Vec::new();
                let mut buf = [0u8; 256];
                while !request.ends_with(b"\r\n\r\n") {
                    let read = stream.read(&mut buf).expect("reads the request");
                    assert!(read > 0, "the probe closed before finishing its request");
                    request.extend_from_slice(&buf[..read]);
                }
                assert!(request.starts_with(b"GET /health HTTP/1.1\r\n"));
                stream.write_all(answer.as_bytes()).expect("answers");
            }
        });
        assert_eq!(probe_health(address, Duration::from_secs(2)), Ok(()));
        let err = probe_health(address, Duration::from_secs(2)).expect_err("503 is unhealthy");
        assert!(err.contains("503"), "{err}");
        server.join().expect("server thread");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let gone = closed.local_addr().expect("address");
        drop(closed);
        assert!(probe_health(gone, Duration::from_secs(1)).is_err());
    }
}
