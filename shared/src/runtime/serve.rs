//! The connection loop both servers run: each accepted connection is served by hyper (HTTP/1.1, or HTTP/2 with
//! prior knowledge) and every request is handed to the poem endpoint. It does what
//! `poem::Server::run_with_graceful_shutdown` does, without boxing the connection: poem's boxed connection
//! splits the socket behind a lock and cannot write vectored, so hyper copied every answer into one buffer
//! before writing it (10 % of status-api's time under load, profiled with `perf` at 100 containers). Here
//! hyper writes the head and the prepared body in one `writev`, and the body bytes are never copied.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use poem::listener::Acceptor;
use poem::{Endpoint, IntoEndpoint};
use tokio::sync::watch;

/// The body type poem's answers convert into.
type Body = http_body_util::combinators::BoxBody<Bytes, io::Error>;

/// Accepts and serves connections from `acceptor` until `signal` completes; then stops accepting, asks every
/// open connection to finish the request under way and close (HTTP/1.1 keep-alive off, HTTP/2 GOAWAY), and
/// waits for them up to `drain`. Accept errors are the acceptor's to handle (the connection guard backs off);
/// one that reaches here ends the loop.
pub async fn serve<A, E>(
    mut acceptor: A,
    endpoint: E,
    signal: impl Future<Output = ()>,
    drain: Duration,
) -> io::Result<()>
where
    A: Acceptor,
    A::Io: 'static,
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    let endpoint = Arc::new(endpoint.into_endpoint());
    let graceful = GracefulShutdown::new();
    // Set when the drain timeout passed: the connections still open are dropped, not left running.
    let (abandon, abandoned) = watch::channel(false);
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(signal);
    let result = loop {
        let (io, local, remote, scheme) = tokio::select! {
            () = &mut signal => break Ok(()),
            accepted = acceptor.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => break Err(err),
            },
        };
        let endpoint = endpoint.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let endpoint = endpoint.clone();
            let request =
                poem::Request::from((request, local.clone(), remote.clone(), scheme.clone()));
            async move {
                let response: hyper::Response<Body> = endpoint.get_response(request).await.into();
                Ok::<_, Infallible>(response)
            }
        });
        let connection = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned(),
        );
        let mut abandoned = abandoned.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    // A connection that fails (reset, bad request line) is that client's problem: hyper
                    // has answered or closed it already.
                    if let Err(err) = ended {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                }
                _ = abandoned.wait_for(|abandoned| *abandoned) => {}
            }
        });
    };
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?drain, "connections still open after the drain timeout were abandoned");
        abandon.send_replace(true);
    }
    result
}

#[cfg(test)]
mod tests {
    use poem::listener::{Listener, TcpListener};
    use poem::{get, handler, Route};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::*;

    const LARGE: usize = 300_000;

    #[handler]
    fn large() -> Vec<u8> {
        (0..LARGE).map(|i| (i % 251) as u8).collect()
    }

    #[handler]
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_millis(300)).await;
        "done"
    }

    #[handler]
    async fn hang() -> &'static str {
        std::future::pending::<()>().await;
        "never"
    }

    /// A server on a free port, stopped when the sender is used or dropped; answers its address and the
    /// task that ends with `serve`'s result.
    async fn start(
        drain: Duration,
    ) -> (
        std::net::SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("binds");
        let address = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a TCP address");
        let (stop, stopped) = oneshot::channel::<()>();
        let app = Route::new()
            .at("/large", get(large))
            .at("/slow", get(slow))
            .at("/hang", get(hang));
        let task = tokio::spawn(serve(
            acceptor,
            app,
            async move {
                let _ = stopped.await;
            },
            drain,
        ));
        (address, stop, task)
    }

    /// Reads one HTTP/1.1 answer with a `content-length` from `stream`: its head and its body.
    async fn read_answer(stream: &mut TcpStream) -> (String, Vec<u8>) {
        let mut buffer = Vec::new();
        let mut chunk = [0_u8; 65536];
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .and_then(|value| value.trim().parse().ok())
                    .expect("a content-length");
                while buffer.len() < end + 4 + length {
                    let read = stream.read(&mut chunk).await.expect("reads");
                    assert!(read > 0, "the connection closed mid-body");
                    buffer.extend_from_slice(&chunk[..read]);
                }
                let body = buffer[end + 4..end + 4 + length].to_vec();
                return (head, body);
            }
            let read = stream.read(&mut chunk).await.expect("reads");
            assert!(read > 0, "the connection closed before an answer");
            buffer.extend_from_slice(&chunk[..read]);
        }
    }

    #[tokio::test]
    async fn large_answers_arrive_whole_on_a_kept_alive_connection() {
        let (address, stop, task) = start(Duration::from_secs(5)).await;
        let mut stream = TcpStream::connect(address).await.expect("connects");
        for _ in 0..2 {
            stream
                .write_all(b"GET /large HTTP/1.1\r\nhost: test\r\n\r\n")
                .await
                .expect("writes");
            let (head, body) = read_answer(&mut stream).await;
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert_eq!(body.len(), LARGE);
            assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        }
        drop(stream);
        let _ = stop.send(());
        task.await.expect("no panic").expect("served");
    }

    #[tokio::test]
    async fn a_shutdown_lets_the_request_under_way_finish_and_then_refuses_connections() {
        let (address, stop, task) = start(Duration::from_secs(5)).await;
        let mut stream = TcpStream::connect(address).await.expect("connects");
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .expect("writes");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = stop.send(());
        let (head, body) = read_answer(&mut stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(body, b"done");
        // Keep-alive is off once the drain began: the server closes after this answer.
        let mut rest = Vec::new();
        stream
            .read_to_end(&mut rest)
            .await
            .expect("reads to the end");
        assert!(rest.is_empty());
        task.await.expect("no panic").expect("served");
        assert!(TcpStream::connect(address).await.is_err());
    }

    #[tokio::test]
    async fn a_request_that_never_ends_is_abandoned_after_the_drain_timeout() {
        let (address, stop, task) = start(Duration::from_millis(100)).await;
        let mut stream = TcpStream::connect(address).await.expect("connects");
        stream
            .write_all(b"GET /hang HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .expect("writes");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("serve returns once the drain timeout passed")
            .expect("no panic")
            .expect("served");
        // The abandoned connection is closed, not left hanging.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("the connection is closed")
            .expect("reads to the end");
        assert!(rest.is_empty());
    }
}
