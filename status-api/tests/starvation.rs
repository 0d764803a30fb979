//! The status-api binary cannot be starved: a flood of idle and half-sent connections leaves `/health` and
//! `/ready` answering and memory bounded (the connection cap closes the longest-idle ones), a client that
//! never finishes its headers is cut off at the header deadline, and made-up methods add no series to
//! `/metrics`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use shared::runtime::connections::{raise_fd_limit, DEFAULT_MAX_CONNECTIONS, HEADER_DEADLINE};
use test_support::flood::{flood, memory_kib, open_fds, probe};
use test_support::{wait_until, TestScope};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Connections the flood opens: twice the default cap.
const FLOOD: usize = 2_000;

/// status-api, the binary, on a free port in `scope`; its address once it listens. Its logs are drained so
/// a full pipe never blocks it.
async fn start(scope: &TestScope, state: &std::path::Path) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_status-api"))
        .args(["--listen", "127.0.0.1:0", "--resync-interval", "1h"])
        .args(["--scope", &scope.scope(), "--log-format", "json"])
        .arg("--state-dir")
        .arg(state)
        .env_remove("RUST_LOG")
        .env_remove("STATUS_API_MAX_CONNECTIONS")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("piped")?).lines();
    let address = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await? {
            let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if log["message"] == "status-api listening" {
                return Ok::<_, anyhow::Error>(
                    log["address"].as_str().unwrap_or_default().parse()?,
                );
            }
        }
        anyhow::bail!("status-api exited before it listened")
    })
    .await??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ready = format!("http://{address}/ready");
    wait_until(
        "status-api to be ready",
        Duration::from_secs(20),
        || async { Ok(reqwest::get(&ready).await?.status().is_success()) },
    )
    .await?;
    Ok((child, address))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_neither_locks_out_probes_nor_grows_memory() -> anyhow::Result<()> {
    // The flood's own ends need descriptors too: FLOOD per wave, two waves.
    let limit = raise_fd_limit().context("reads the open-file limit")?;
    anyhow::ensure!(
        limit > (2 * FLOOD + 512) as u64,
        "this test needs an open-file limit above {}; it is {limit}",
        2 * FLOOD + 512
    );
    let scope = TestScope::new();
    let state = tempfile::tempdir()?;
    let (child, address) = start(&scope, state.path()).await?;
    let pid = child.id().context("running")?;
    let rss_before = memory_kib(pid, "VmRSS")?;

    let first = flood(address, FLOOD, "/status").await?;
    for path in ["/health", "/ready"] {
        let (status, took) = probe(address, path).await?;
        eprintln!("{path} answered {status} in {took:?} with {FLOOD} flood connections opened");
        assert_eq!(status, 200, "{path} during the flood");
    }
    let rss_first = memory_kib(pid, "VmRSS")?;
    // The cap holds: never more connections than --max-connections, plus the process's own files.
    let fds = open_fds(pid)?;
    assert!(
        fds <= DEFAULT_MAX_CONNECTIONS + 64,
        "status-api holds {fds} descriptors, over the cap of {DEFAULT_MAX_CONNECTIONS} connections"
    );

    // A second wave, the first still held: memory stays where the cap put it.
    let second = flood(address, FLOOD, "/status").await?;
    for path in ["/health", "/ready"] {
        let (status, took) = probe(address, path).await?;
        eprintln!(
            "{path} answered {status} in {took:?} with {} flood connections opened",
            2 * FLOOD
        );
        assert_eq!(status, 200, "{path} during the second wave");
    }
    let rss_second = memory_kib(pid, "VmRSS")?;
    eprintln!(
        "VmRSS: {rss_before} KiB before, {rss_first} KiB after {FLOOD} connections, {rss_second} KiB after {}; {} descriptors open",
        2 * FLOOD,
        open_fds(pid)?
    );
    // Measured: ~17 MiB for a full table of 1,024 connections, ~2 MiB more for a second wave at the cap.
    assert!(
        rss_first.saturating_sub(rss_before) < 48 * 1024,
        "{FLOOD} connections grew VmRSS from {rss_before} to {rss_first} KiB"
    );
    assert!(
        rss_second.saturating_sub(rss_first) < 16 * 1024,
        "a second wave at the cap grew VmRSS from {rss_first} to {rss_second} KiB"
    );
    drop((first, second));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_made_up_methods_add_no_series() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let state = tempfile::tempdir()?;
    let (_child, address) = start(&scope, state.path()).await?;

    // Slowloris: half a request, then nothing. The server must hang up once the header deadline passes.
    let mut slow = TcpStream::connect(address).await?;
    slow.write_all(b"GET /status HTTP/1.1\r\nHost: slow\r\n")
        .await?;
    let opened = Instant::now();
    let slowloris = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        // Whatever the server says (a 4xx, or nothing), the connection must end.
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return opened.elapsed(),
                Ok(_) => {}
            }
        }
    });

    // Meanwhile, 5,000 requests with made-up methods.
    let metrics_url = format!("http://{address}/metrics");
    let series = |text: &str| {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .count()
    };
    let label_sets = |text: &str| {
        text.lines()
            .filter(|line| line.starts_with("http_server_requests_total{"))
            .count()
    };
    let text = reqwest::get(&metrics_url).await?.text().await?;
    let (before, sets_before) = (series(&text), label_sets(&text));
    let client = reqwest::Client::new();
    for i in 0..5_000 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes())?;
        let status = client
            .request(method, format!("http://{address}/status"))
            .send()
            .await?
            .status();
        assert!(
            status.is_client_error(),
            "a made-up method answered {status}"
        );
    }
    let text = reqwest::get(&metrics_url).await?.text().await?;
    let after = series(&text);
    eprintln!("/metrics: {before} series before 5,000 made-up methods, {after} after");
    assert!(
        text.contains(r#"method="other""#),
        "made-up methods are counted as `other`: {text}"
    );
    assert!(!text.contains("MADEUP"), "a made-up method became a label");
    // New label sets: (other, /status, 405) and the first scrape's own (GET, /metrics, 200).
    let sets_after = label_sets(&text);
    assert!(
        sets_after <= sets_before + 2,
        "request label sets grew from {sets_before} to {sets_after}:\n{text}"
    );
    // Each label set is a counter and a histogram (19 lines): two of them at most.
    assert!(
        after.saturating_sub(before) <= 40,
        "/metrics grew from {before} to {after} series"
    );

    let closed_after = tokio::time::timeout(Duration::from_secs(60), slowloris)
        .await
        .context("the slowloris connection was still open after 60 s")??;
    eprintln!("the slowloris connection was closed after {closed_after:?}");
    assert!(
        closed_after >= HEADER_DEADLINE - Duration::from_millis(500),
        "closed after {closed_after:?}, before the {HEADER_DEADLINE:?} header deadline"
    );
    Ok(())
}
