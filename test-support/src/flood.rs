//! What the starvation tests of both programs share: a flood of connections that never complete a request,
//! a probe on a fresh connection, and what a process holds (resident memory, open descriptors).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A field of /proc/<pid>/status in KiB, e.g. `VmRSS`.
pub fn memory_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// The file descriptors `pid` holds open.
pub fn open_fds(pid: u32) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Opens `count` connections that never complete a request: every other one sends half the headers of a
/// GET of `path`, the rest nothing. Connections the server closes to make room are kept (closed) all the
/// same.
pub async fn flood(
    address: SocketAddr,
    count: usize,
    path: &str,
) -> anyhow::Result<Vec<TcpStream>> {
    let half_request = format!("GET {path} HTTP/1.1\r\nHost: flood\r\nX-Slow: ");
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address))
            .await
            .context("connecting timed out")??;
        if i % 2 == 1 {
            // Refused writes are connections already closed for room: what the cap is for.
            let _ = stream.write_all(half_request.as_bytes()).await;
        }
        held.push(stream);
    }
    Ok(held)
}

/// GET `path` on a fresh connection with a few seconds' timeout; its status and how long it took.
pub async fn probe(address: SocketAddr, path: &str) -> anyhow::Result<(u16, Duration)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()?;
    let started = Instant::now();
    let response = client.get(format!("http://{address}{path}")).send().await?;
    Ok((response.status().as_u16(), started.elapsed()))
}
