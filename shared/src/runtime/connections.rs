//! The guard both HTTP servers accept connections through, so that a flood of idle or slow clients cannot
//! starve them: a cap on open connections (at the cap the longest-idle one is closed, so a probe always gets
//! in), a deadline to receive a request's headers, an idle timeout between requests, and accept errors
//! (EMFILE and kin) backed off instead of retried in a hot loop. [`super::serve`] builds hyper without a
//! timer, so hyper's own header timeout is off: these deadlines are the only ones.
//!
//! The per-connection bookkeeping (which phase of a request it is in, when it last moved) is in
//! [`tracked`]; this module owns the table of open connections and the accept loop.

mod tracked;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};

use tracked::{Conn, Expiry};
pub use tracked::{TrackedIo, MAX_HEAD, MAX_HEAD_LINES, MAX_REQUEST_LINE};

/// `--max-connections` when not given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a client has to send a request's headers, from connecting or from its first byte.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(10);
/// How long a connection may go without a byte either way; longer than the longest long poll (60 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// The first pause after an accept error; it doubles up to [`MAX_ACCEPT_BACKOFF`].
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How often the deadlines are checked: they are coarse limits, a second late is fine.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// File descriptors kept free of connections, for the engine socket, the state file and the logs.
const FD_RESERVE: u64 = 64;

/// The limits one server applies to its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most; the next one closes the longest-idle.
    pub max_connections: usize,
    /// See [`HEADER_DEADLINE`].
    pub header_deadline: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    /// The product's deadlines with a cap of `max_connections`.
    pub fn new(max_connections: usize) -> Self {
        Self {
            max_connections,
            header_deadline: HEADER_DEADLINE,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONNECTIONS)
    }
}

/// Parses `--max-connections`: a whole number from 1 to 1,000,000.
pub fn parse_max_connections(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(count @ 1..=1_000_000) => Ok(count),
        _ => Err(format!(
            "`{value}` is not a connection count: use a whole number from 1 to 1000000 (default {DEFAULT_MAX_CONNECTIONS})"
        )),
    }
}

/// The open connections of one server, by id.
#[derive(Debug, Default)]
pub(crate) struct Table {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic while holding the table cannot leave a half-made entry: keep serving.
        self.conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a new connection, first closing the longest-idle ones while the table is full. Returns the
    /// connection and how many were closed to make room.
    fn admit(&self, cap: usize, now: Instant) -> (u64, Arc<Conn>, usize) {
        let mut conns = self.lock();
        let mut evicted = 0;
        while conns.len() >= cap.max(1) {
            // Connections between requests or still sending headers go first; among them the longest idle.
            let Some(victim) = conns
                .iter()
                .max_by_key(|(_, conn)| conn.eviction_rank(now))
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(conn) = conns.remove(&victim) {
                conn.close("closed to make room for a new connection");
                evicted += 1;
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(now));
        conns.insert(id, conn.clone());
        (id, conn, evicted)
    }

    /// Closes the connections past a deadline; returns how many.
    fn sweep(&self, limits: &ConnectionLimits, now: Instant) -> (usize, usize) {
        let mut conns = self.lock();
        let (mut slow, mut idle) = (0, 0);
        conns.retain(|_, conn| match conn.expiry(limits, now) {
            None => true,
            Some(Expiry::Headers) => {
                conn.close("no complete request headers within the header deadline");
                slow += 1;
                false
            }
            Some(Expiry::Idle) => {
                conn.close("idle for longer than the idle timeout");
                idle += 1;
                false
            }
        });
        (slow, idle)
    }

    pub(crate) fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Wraps poem's TCP acceptor with the [`ConnectionLimits`]. Deadlines are swept while the server waits for
/// the next connection, which it always does while it serves, so no task of its own is needed.
pub struct GuardedAcceptor<A> {
    inner: A,
    limits: ConnectionLimits,
    table: Arc<Table>,
    sweep: tokio::time::Interval,
    backoff: Option<Duration>,
    evicted_since_log: usize,
}

impl<A> std::fmt::Debug for GuardedAcceptor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedAcceptor")
            .field("limits", &self.limits)
            .field("open", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl<A: Acceptor> GuardedAcceptor<A> {
    /// Guards `inner`. Raises this process's open-file limit to its hard limit and, should that still be
    /// too low for `limits.max_connections`, lowers the cap to fit, keeping [`FD_RESERVE`] descriptors
    /// free: a server out of descriptors could no longer reach the Docker engine. Needs a Tokio runtime.
    pub fn new(inner: A, mut limits: ConnectionLimits) -> Self {
        if let Some(open_files) = raise_fd_limit() {
            let fits =
                usize::try_from(open_files.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX);
            if fits < limits.max_connections {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    open_file_limit = open_files,
                    using = fits,
                    "the open-file limit is too low for --max-connections; capping connections lower (raise `ulimit -n` to lift it)"
                );
                limits.max_connections = fits;
            }
        }
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            inner,
            limits,
            table: Arc::default(),
            sweep,
            backoff: None,
            evicted_since_log: 0,
        }
    }

    /// The limits in force (the cap possibly lowered to the open-file limit).
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    fn on_sweep(&mut self) {
        let (slow, idle) = self.table.sweep(&self.limits, Instant::now());
        if slow + idle > 0 {
            tracing::debug!(slow, idle, "closed connections past their deadline");
        }
        // One line a second at most, however hard the cap is hit.
        if self.evicted_since_log > 0 {
            tracing::warn!(
                closed = self.evicted_since_log,
                max_connections = self.limits.max_connections,
                "connection cap reached: closed the longest-idle connections to admit new ones"
            );
            self.evicted_since_log = 0;
        }
    }

    async fn on_accept_error(&mut self, err: io::Error) {
        // A connection that died before it was accepted is that client's problem, not the listener's.
        if matches!(
            err.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        let delay = self.backoff.map_or(FIRST_ACCEPT_BACKOFF, |last| {
            (last * 2).min(MAX_ACCEPT_BACKOFF)
        });
        self.backoff = Some(delay);
        tracing::warn!(
            error = %err,
            open = self.table.len(),
            retry_in = ?delay,
            "cannot accept a connection; backing off (out of file descriptors? raise `ulimit -n` or lower --max-connections)"
        );
        tokio::time::sleep(delay).await;
    }
}

impl<A: Acceptor> Acceptor for GuardedAcceptor<A> {
    type Io = TrackedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            tokio::select! {
                _ = self.sweep.tick() => self.on_sweep(),
                accepted = self.inner.accept() => match accepted {
                    Ok((io, local, remote, scheme)) => {
                        self.backoff = None;
                        let (id, conn, evicted) =
                            self.table.admit(self.limits.max_connections, Instant::now());
                        self.evicted_since_log += evicted;
                        let io = TrackedIo::new(io, id, conn, Arc::downgrade(&self.table));
                        return Ok((io, local, remote, scheme));
                    }
                    Err(err) => self.on_accept_error(err).await,
                },
            }
        }
    }
}

/// Raises the soft open-file limit to the hard one (as Go's runtime does) and returns the soft limit now in
/// force; `None` where it cannot be read. A server holds one descriptor per connection.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed, which lives on this stack.
        #[allow(unsafe_code)]
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        // `rlim_t` is u64 on Linux, not on every unix.
        #[allow(clippy::useless_conversion)]
        Some(u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests;
