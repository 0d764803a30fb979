//! One connection as the guard sees it: which phase of a request it is in (sending headers, being served,
//! between requests), when a byte last moved, and a way to close it from outside — the reader or writer
//! hyper is waiting on is woken and told the connection is over.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{ConnectionLimits, Table};

/// Where a connection is in its current request, judged from the bytes only (no HTTP parsing beyond
/// finding the blank line that ends the headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers since `since`: the accept, or the first byte of a follow-up request.
    /// `line_len` and `lines` find the blank line across reads, whether lines end in CRLF or a bare LF.
    Headers {
        since: Instant,
        line_len: usize,
        lines: usize,
        head_len: usize,
    },
    /// Headers in; the request is being served. Once the server has written (`answered`), the next byte read
    /// starts a new request.
    Serving { answered: bool },
    /// HTTP/2 with prior knowledge: frames, not header lines, so only the idle timeout applies.
    Http2,
}

/// The longest request line (method, target, version) served: a `/status` query with every filter is far
/// shorter. Longer ones are answered 414 here, with a JSON body, before hyper sees them.
pub const MAX_REQUEST_LINE: usize = 16 * 1024;
/// The largest request head (request line and headers) served; larger ones are answered 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most lines a request head may have (hyper itself refuses more than 100 headers, with an empty body).
pub const MAX_HEAD_LINES: usize = 96;

/// A request refused from its head alone, answered here: hyper's own answers to these have an empty body,
/// where every error of dockstate's is `{error, message}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    UriTooLong,
    HeadersTooLarge,
}

impl Rejection {
    /// The whole HTTP/1.1 answer; the connection closes after it.
    fn answer(self) -> Vec<u8> {
        let (status, code, message) = match self {
            Self::UriTooLong => (
                "414 URI Too Long",
                "uri_too_long",
                format!(
                    "the request line is longer than {MAX_REQUEST_LINE} bytes: shorten the query \
                     (every filter takes short values)"
                ),
            ),
            Self::HeadersTooLarge => (
                "431 Request Header Fields Too Large",
                "headers_too_large",
                format!(
                    "the request's headers are larger than {MAX_HEAD} bytes or more than \
                     {MAX_HEAD_LINES} lines: send fewer or smaller headers"
                ),
            ),
        };
        let body = serde_json::to_vec(&crate::model::ErrorBody {
            error: code.to_owned(),
            message,
        })
        .unwrap_or_default();
        let mut answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend(body);
        answer
    }
}

/// Why a connection is past its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    Headers,
    Idle,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    last_active: Instant,
    read_anything: bool,
    closed: Option<&'static str>,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// The shared half of a connection: the table holds one end, the [`TrackedIo`] hyper drives the other.
#[derive(Debug)]
pub(crate) struct Conn {
    state: Mutex<State>,
}

impl Conn {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Headers {
                    since: now,
                    line_len: 0,
                    lines: 0,
                    head_len: 0,
                },
                last_active: now,
                read_anything: false,
                closed: None,
                reader: None,
                writer: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes arrived from the client; what to answer instead of serving it when they take the request's
    /// head past a limit.
    pub(crate) fn on_read(&self, bytes: &[u8], now: Instant) -> Option<Rejection> {
        if bytes.is_empty() {
            return None;
        }
        let mut state = self.lock();
        state.last_active = now;
        if !std::mem::replace(&mut state.read_anything, true) && bytes.starts_with(b"PRI * HTTP/2")
        {
            state.phase = Phase::Http2;
            return None;
        }
        let (mut line_len, mut lines, mut head_len) = match state.phase {
            Phase::Headers {
                line_len,
                lines,
                head_len,
                ..
            } => (line_len, lines, head_len),
            Phase::Serving { answered: true } => {
                state.phase = Phase::Headers {
                    since: now,
                    line_len: 0,
                    lines: 0,
                    head_len: 0,
                };
                (0, 0, 0)
            }
            // A request body, or HTTP/2 frames: nothing to look for.
            Phase::Serving { answered: false } | Phase::Http2 => return None,
        };
        for byte in bytes {
            head_len += 1;
            match byte {
                b'\n' if line_len == 0 && lines > 0 => {
                    state.phase = Phase::Serving { answered: false };
                    return None;
                }
                b'\n' => {
                    lines += 1;
                    line_len = 0;
                }
                b'\r' => {}
                _ => line_len += 1,
            }
            if lines == 0 && line_len > MAX_REQUEST_LINE {
                return Some(Rejection::UriTooLong);
            }
            if head_len > MAX_HEAD || lines > MAX_HEAD_LINES {
                return Some(Rejection::HeadersTooLarge);
            }
        }
        if let Phase::Headers {
            line_len: len,
            lines: count,
            head_len: total,
            ..
        } = &mut state.phase
        {
            (*len, *count, *total) = (line_len, lines, head_len);
        }
        None
    }

    /// The server wrote to the client.
    pub(crate) fn on_write(&self, now: Instant) {
        let mut state = self.lock();
        state.last_active = now;
        if let Phase::Serving { answered } = &mut state.phase {
            *answered = true;
        }
    }

    /// Whether the connection is past a deadline at `now`.
    pub(crate) fn expiry(&self, limits: &ConnectionLimits, now: Instant) -> Option<Expiry> {
        let state = self.lock();
        if let Phase::Headers { since, .. } = state.phase {
            if now.saturating_duration_since(since) > limits.header_deadline {
                return Some(Expiry::Headers);
            }
        }
        (now.saturating_duration_since(state.last_active) > limits.idle_timeout)
            .then_some(Expiry::Idle)
    }

    /// Orders connections for eviction, the first to go being the greatest: any connection not in the
    /// middle of being served before one that is, then the longest idle.
    pub(crate) fn eviction_rank(&self, now: Instant) -> (bool, Duration) {
        let state = self.lock();
        let serving = state.phase == Phase::Serving { answered: false };
        (!serving, now.saturating_duration_since(state.last_active))
    }

    /// Ends the connection: hyper's next read sees the end of the stream, its next write an error.
    pub(crate) fn close(&self, reason: &'static str) {
        let (reader, writer) = {
            let mut state = self.lock();
            state.closed = Some(reason);
            (state.reader.take(), state.writer.take())
        };
        for waker in [reader, writer].into_iter().flatten() {
            waker.wake();
        }
    }

    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// Remembers who to wake on [`close`](Self::close); the reason when it is already closed.
    fn register(&self, waker: &Waker, reading: bool) -> Option<&'static str> {
        let mut state = self.lock();
        if state.closed.is_some() {
            return state.closed;
        }
        let slot = if reading {
            &mut state.reader
        } else {
            &mut state.writer
        };
        match slot {
            Some(known) if known.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        None
    }
}

/// A connection's stream, as handed to hyper: every byte either way is noted, and a closed connection
/// reads as ended and refuses writes. Leaves the table when hyper drops it.
#[derive(Debug)]
pub struct TrackedIo<T> {
    inner: T,
    id: u64,
    conn: Arc<Conn>,
    table: Weak<Table>,
    /// A [`Rejection`]'s answer and how much of it is written; hyper reads the end of the stream meanwhile.
    rejecting: Option<(Vec<u8>, usize)>,
}

impl<T> TrackedIo<T> {
    pub(crate) fn new(inner: T, id: u64, conn: Arc<Conn>, table: Weak<Table>) -> Self {
        Self {
            inner,
            id,
            conn,
            table,
            rejecting: None,
        }
    }
}

impl<T> Drop for TrackedIo<T> {
    fn drop(&mut self) {
        if let Some(table) = self.table.upgrade() {
            table.forget(self.id);
        }
    }
}

fn closed_error(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, reason)
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.rejecting.is_some() {
            return this.poll_reject(cx);
        }
        if this.conn.register(cx.waker(), true).is_some() {
            // The end of the stream: hyper closes the connection as if the client had.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if let Some(rejection) = this.conn.on_read(&buf.filled()[before..], Instant::now()) {
                // hyper never sees this request: it reads the end of the stream once the answer is out.
                buf.set_filled(before);
                this.rejecting = Some((rejection.answer(), 0));
                return this.poll_reject(cx);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> TrackedIo<T> {
    /// Writes the rejection's answer, then ends the connection: to hyper, as if the client had left.
    fn poll_reject(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((answer, written)) = self.rejecting.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while *written < answer.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => break,
                Poll::Ready(Ok(n)) => *written += n,
                // The client is gone: nothing left to tell it.
                Poll::Ready(Err(_)) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        *written = answer.len();
        self.conn.close("request head over the limit");
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(reason) = this.conn.register(cx.waker(), false) {
            return Poll::Ready(Err(closed_error(reason)));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            if written > 0 {
                this.conn.on_write(Instant::now());
            }
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(reason) = this.conn.register(cx.waker(), false) {
            return Poll::Ready(Err(closed_error(reason)));
        }
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = polled {
            if written > 0 {
                this.conn.on_write(Instant::now());
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(conn: &Conn) -> Phase {
        conn.lock().phase
    }

    #[test]
    fn headers_end_at_the_blank_line_even_across_reads() {
        let start = Instant::now();
        let conn = Conn::new(start);
        conn.on_read(b"GET /health HTTP/1.1\r\nHost: a\r", start);
        assert!(matches!(phase(&conn), Phase::Headers { since, .. } if since == start));
        conn.on_read(b"\n\r", start);
        conn.on_read(b"\n", start);
        assert_eq!(phase(&conn), Phase::Serving { answered: false });
        // A body read before the answer is part of this request.
        conn.on_read(b"\n\nbody", start);
        assert_eq!(phase(&conn), Phase::Serving { answered: false });

        // After the answer, the next byte starts a new request with a fresh header deadline.
        conn.on_write(start);
        let later = start + Duration::from_secs(30);
        conn.on_read(b"GET /ready HTTP/1.1\n", later);
        assert!(matches!(phase(&conn), Phase::Headers { since, .. } if since == later));
        conn.on_read(b"\n", later);
        assert_eq!(phase(&conn), Phase::Serving { answered: false });
    }

    #[test]
    fn an_overlong_request_line_or_head_is_refused_with_json() {
        let start = Instant::now();
        let conn = Conn::new(start);
        let target = format!(
            "GET /status?name={} HTTP/1.1\r\n",
            "a".repeat(MAX_REQUEST_LINE)
        );
        assert_eq!(
            conn.on_read(target.as_bytes(), start),
            Some(Rejection::UriTooLong)
        );

        let conn = Conn::new(start);
        assert_eq!(conn.on_read(b"GET /status HTTP/1.1\r\n", start), None);
        let header = format!("X-Big: {}\r\n", "b".repeat(8 * 1024));
        let mut refused = None;
        for _ in 0..9 {
            refused = refused.or(conn.on_read(header.as_bytes(), start));
        }
        assert_eq!(refused, Some(Rejection::HeadersTooLarge));

        let conn = Conn::new(start);
        conn.on_read(b"GET / HTTP/1.1\r\n", start);
        let many: String = (0..MAX_HEAD_LINES)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        assert_eq!(
            conn.on_read(many.as_bytes(), start),
            Some(Rejection::HeadersTooLarge)
        );

        let answer = String::from_utf8(Rejection::UriTooLong.answer()).expect("text");
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).expect("a body");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(json["error"], "uri_too_long");
        assert!(answer.contains(&format!("content-length: {}\r\n", body.len())));
    }

    #[test]
    fn http2_with_prior_knowledge_is_held_to_the_idle_timeout_only() {
        let start = Instant::now();
        let conn = Conn::new(start);
        conn.on_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", start);
        assert_eq!(phase(&conn), Phase::Http2);
        let limits = ConnectionLimits::default();
        assert_eq!(
            conn.expiry(&limits, start + limits.header_deadline * 2),
            None
        );
        assert_eq!(
            conn.expiry(&limits, start + limits.idle_timeout * 2),
            Some(Expiry::Idle)
        );
    }

    #[test]
    fn closing_wakes_the_reader() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let conn = Conn::new(Instant::now());
        assert_eq!(conn.register(&waker, true), None);
        conn.close("test");
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(conn.register(&waker, true), Some("test"));
    }
}
