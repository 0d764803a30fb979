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
    },
    /// Headers in; the request is being served. Once the server has written (`answered`), the next byte read
    /// starts a new request.
    Serving { answered: bool },
    /// HTTP/2 with prior knowledge: frames, not header lines, so only the idle timeout applies.
    Http2,
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

    /// Bytes arrived from the client.
    pub(crate) fn on_read(&self, bytes: &[u8], now: Instant) {
        if bytes.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.last_active = now;
        if !std::mem::replace(&mut state.read_anything, true) && bytes.starts_with(b"PRI * HTTP/2")
        {
            state.phase = Phase::Http2;
            return;
        }
        let (mut line_len, mut lines) = match state.phase {
            Phase::Headers {
                line_len, lines, ..
            } => (line_len, lines),
            Phase::Serving { answered: true } => {
                state.phase = Phase::Headers {
                    since: now,
                    line_len: 0,
                    lines: 0,
                };
                (0, 0)
            }
            // A request body, or HTTP/2 frames: nothing to look for.
            Phase::Serving { answered: false } | Phase::Http2 => return,
        };
        for byte in bytes {
            match byte {
                b'\n' if line_len == 0 && lines > 0 => {
                    state.phase = Phase::Serving { answered: false };
                    return;
                }
                b'\n' => {
                    lines += 1;
                    line_len = 0;
                }
                b'\r' => {}
                _ => line_len += 1,
            }
        }
        if let Phase::Headers {
            line_len: len,
            lines: count,
            ..
        } = &mut state.phase
        {
            (*len, *count) = (line_len, lines);
        }
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
}

impl<T> TrackedIo<T> {
    pub(crate) fn new(inner: T, id: u64, conn: Arc<Conn>, table: Weak<Table>) -> Self {
        Self {
            inner,
            id,
            conn,
            table,
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

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.conn.register(cx.waker(), true).is_some() {
            // The end of the stream: hyper closes the connection as if the client had.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.conn.on_read(&buf.filled()[before..], Instant::now());
        }
        polled
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
