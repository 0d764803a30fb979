//! The connection table and the guarded accept loop, without a server: eviction order, deadlines, back-off.

use super::*;

#[test]
fn max_connections_is_a_positive_count() {
    assert_eq!(parse_max_connections("1024"), Ok(1024));
    for bad in ["0", "-1", "many", "", "2000000"] {
        let err = parse_max_connections(bad).expect_err(bad);
        assert!(err.contains("1 to 1000000"), "{err}");
    }
}

#[test]
fn a_full_table_closes_the_longest_idle_connection_first() {
    let table = Table::default();
    let start = Instant::now();
    let (_, oldest, _) = table.admit(3, start);
    let (_, serving, _) = table.admit(3, start);
    let (_, recent, _) = table.admit(3, start + Duration::from_secs(1));
    // `serving` has its headers in and is being answered: it is spared, though as idle as `oldest`.
    serving.on_read(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n", start);
    oldest.on_read(b"GET /st", start);

    let (_, _, evicted) = table.admit(3, start + Duration::from_secs(2));
    assert_eq!(evicted, 1);
    assert!(oldest.is_closed());
    assert!(!serving.is_closed() && !recent.is_closed());
    assert_eq!(table.len(), 3);
}

/// An acceptor out of file descriptors: every accept fails with EMFILE.
struct OutOfFiles(Arc<AtomicU64>);

impl Acceptor for OutOfFiles {
    type Io = tokio::net::TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        Vec::new()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::from_raw_os_error(libc::EMFILE))
    }
}

#[tokio::test]
async fn accept_errors_are_backed_off_not_retried_in_a_hot_loop() {
    let attempts = Arc::new(AtomicU64::new(0));
    let mut guarded =
        GuardedAcceptor::new(OutOfFiles(attempts.clone()), ConnectionLimits::default());
    let accepted = tokio::time::timeout(Duration::from_millis(300), guarded.accept()).await;
    assert!(
        accepted.is_err(),
        "an acceptor out of files accepts nothing"
    );
    // 10, 20, 40, 80, 160 ms apart: about 5 tries in 300 ms. A hot loop makes hundreds of thousands.
    let tried = attempts.load(Ordering::SeqCst);
    assert!(
        (3..=10).contains(&tried),
        "{tried} accept attempts in 300 ms"
    );
    assert!(
        guarded.backoff >= Some(Duration::from_millis(40)),
        "the pause doubles: {:?}",
        guarded.backoff
    );
}

#[test]
fn the_sweep_closes_slow_headers_and_idle_connections() {
    let limits = ConnectionLimits::default();
    let table = Table::default();
    let start = Instant::now();
    let (_, slow, _) = table.admit(10, start);
    let (_, keep_alive, _) = table.admit(10, start);
    keep_alive.on_read(b"GET /health HTTP/1.1\r\n\r\n", start);
    keep_alive.on_write(start);

    let (closed_slow, closed_idle) = table.sweep(&limits, start + HEADER_DEADLINE / 2);
    assert_eq!((closed_slow, closed_idle), (0, 0));
    let (closed_slow, closed_idle) =
        table.sweep(&limits, start + HEADER_DEADLINE + Duration::from_millis(1));
    assert_eq!((closed_slow, closed_idle), (1, 0));
    assert!(slow.is_closed() && !keep_alive.is_closed());
    let (_, closed_idle) = table.sweep(&limits, start + IDLE_TIMEOUT + Duration::from_secs(1));
    assert_eq!(closed_idle, 1);
    assert_eq!(table.len(), 0);
}
