//! The status-api binary stays up under the costliest `/status` filters any client may send (issue 21: 40
//! `name=\w{200}` in one request once took 5.9 s and 478 MB, and a flood of them held the controller off for
//! 66 s): 50 connections send the worst requests the limits allow for `FILTER_FLOOD_SECONDS` (default 20),
//! long polls among them, while members are killed. status-api must stay under 64 MiB resident, answer
//! `/health` within 100 ms throughout (polled every 50 ms on a connection of its own), and the controller —
//! a real one, on a runtime of its own — must have a killed member running again within a second (the
//! median of three members killed one after another: one heal on a two-core machine that also runs the
//! flood's 50 clients is at the mercy of the scheduler, three are a measurement).
//!
//! The two times are also measured first without the flood, on this machine as it is now: when it is so busy
//! (other builds, other tests) that `/health` or a heal is already slow without any flood, the limits are
//! that floor plus a margin (50 ms, 500 ms) — the flood may add no more than that. Both are printed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use test_support::flood::memory_kib;
use test_support::{
    docker, ensure_test_images, wait_until, Program, StatusControllerServer, TestScope,
    BUSYBOX_IMAGE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections the flood keeps busy.
const CONNECTIONS: usize = 50;
/// How long the flood lasts unless `FILTER_FLOOD_SECONDS` says otherwise.
const DEFAULT_SECONDS: u64 = 20;
/// The most status-api may hold resident at any time.
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// The slowest `/health` answer allowed.
const HEALTH_LIMIT: Duration = Duration::from_millis(100);
/// What the flood may add to the slowest `/health` answer seen without it, on a machine too busy for the limit.
const HEALTH_MARGIN: Duration = Duration::from_millis(50);
/// The longest a killed member may stay down.
const HEAL_LIMIT: Duration = Duration::from_secs(1);
/// What the flood may add to a heal without it, on a machine too busy for the limit.
const HEAL_MARGIN: Duration = Duration::from_millis(500);
/// Members killed (one after another) with the flood and without it; the median heal is what counts.
const KILLED: usize = 3;
/// How long `/health` is polled without the flood, for its floor.
const CALIBRATION: Duration = Duration::from_secs(3);
/// The `name` values one request may carry, and the `label` values.
const MAX_VALUES: usize = 8;

/// The pattern that compiled to 10 MiB in 150 ms before the limits: now refused once it passes 32 KiB.
const UNICODE_WORDS: &str = r"(?u)\w{200}";

/// What a flood connection asks for, over and over.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// 8 patterns as large as are accepted, 8 labels, `since` the last revision seen and `wait=60`.
    LongPoll,
    /// The same without waiting.
    Accepted,
    /// 8 patterns that compile up to the size limit and are refused there.
    Refused,
}

/// A runtime started inside the test's own, which may only be let go of in the background.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("running").handle()
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the flood's answers were, by status.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    bad_request: AtomicU64,
    busy: AtomicU64,
    other: AtomicU64,
}

impl Tally {
    fn count(&self, status: u16) {
        match status {
            200 => &self.ok,
            400 => &self.bad_request,
            503 => &self.busy,
            _ => &self.other,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_costliest_filters_leave_health_fast_memory_bounded_and_heals_on_time(
) -> anyhow::Result<()> {
    let seconds = std::env::var("FILTER_FLOOD_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    let duration = Duration::from_secs(seconds);
    ensure_test_images().await?;
    let scope = TestScope::new();
    // Each killed once, so that no backoff of the controller's carries over from one kill to the next.
    let mut members = Vec::new();
    let mut calibrations = Vec::new();
    for i in 0..KILLED {
        scope.run(&format!("member{i}"), BUSYBOX_IMAGE, &[]).await?;
        scope
            .run(&format!("calibration{i}"), BUSYBOX_IMAGE, &[])
            .await?;
        members.push(scope.name(&format!("member{i}")));
        calibrations.push(scope.name(&format!("calibration{i}")));
    }
    let state = tempfile::tempdir()?;
    let api = Program::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_status-api")),
        &["--listen", "127.0.0.1:0", "--resync-interval", "1h"]
            .into_iter()
            .chain(["--scope", &scope.scope()])
            .chain(["--state-dir", &state.path().to_string_lossy()])
            .collect::<Vec<_>>(),
        &[],
    )
    .await?;
    let pid = api.pid().context("status-api runs")?;
    let base = api.url("");
    let ready = api.url("/ready");
    wait_until(
        "status-api to be ready",
        Duration::from_secs(20),
        || async { Ok(reqwest::get(&ready).await?.status().is_success()) },
    )
    .await?;
    // The controller on a runtime of its own, as it would be in its own process: the flood's clients share
    // this test's runtime, and must not be what delays a heal.
    let controller_runtime = OwnRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?,
    ));
    let controller = controller_runtime
        .handle()
        .spawn({
            let base = base.clone();
            async move { StatusControllerServer::start_against(&base, None, &[]).await }
        })
        .await??;

    let (pattern, size) = largest_accepted_pattern(&base).await?;
    let labels = vec![scope.scope(); MAX_VALUES];
    eprintln!("the largest accepted pattern: `{pattern}` (repeat count {size})");
    // This machine as it is now, without the flood: the slowest `/health` and the median heal.
    let (health_floor, _, _) = poll_health(api.url("/health"), Instant::now() + CALIBRATION).await;
    let mut calibrated = Vec::new();
    for calibration in &calibrations {
        docker(&["kill", calibration]).await?;
        calibrated.push(wait_healed(calibration, Duration::from_secs(30)).await?);
    }
    let heal_floor = median(&mut calibrated);
    let health_limit = HEALTH_LIMIT.max(health_floor + HEALTH_MARGIN);
    let heal_limit = HEAL_LIMIT.max(heal_floor + HEAL_MARGIN);
    eprintln!(
        "without the flood: /health at most {health_floor:?}, a heal {heal_floor:?}; limits {health_limit:?} \
         and {heal_limit:?}"
    );
    let rss_before = memory_kib(pid, "VmRSS")?;

    let deadline = Instant::now() + duration;
    let tally = Arc::new(Tally::default());
    let mut flood = Vec::new();
    for i in 0..CONNECTIONS {
        let kind = [Kind::LongPoll, Kind::Accepted, Kind::Refused][i % 3];
        flood.push(tokio::spawn(flood_connection(
            api.address,
            kind,
            pattern.clone(),
            labels.clone(),
            deadline,
            tally.clone(),
        )));
    }
    let health = tokio::spawn(poll_health(api.url("/health"), deadline));
    let rss = tokio::spawn(sample_rss(pid, deadline));

    // In full swing, members are killed one after another: the controller, reading status-api's long poll,
    // starts each again.
    tokio::time::sleep(duration / 4).await;
    let mut heals = Vec::new();
    for member in &members {
        docker(&["kill", member]).await?;
        match wait_healed(member, Duration::from_secs(30) + duration).await {
            Ok(down) => heals.push(down),
            Err(err) => {
                heals.clear();
                eprintln!("{err:#}");
                break;
            }
        }
    }
    let healed_in = if heals.len() == KILLED {
        let all = format!("{heals:?}");
        Ok((median(&mut heals), all))
    } else {
        Err(anyhow::anyhow!(
            "a killed member was not running again in time"
        ))
    };

    let (health_max, health_failures, health_polls) = health.await?;
    let (rss_max, rss_samples) = rss.await?;
    for connection in flood {
        connection.abort();
    }
    eprintln!(
        "{CONNECTIONS} connections for {duration:?}: {} answered 200, {} 400, {} 503 busy, {} other; \
         /health: {health_polls} polls, slowest {health_max:?}, {health_failures} failed; VmRSS {rss_before} KiB \
         before, at most {rss_max} KiB over {rss_samples} samples; members down for (median, all) {healed_in:?}",
        tally.ok.load(Ordering::Relaxed),
        tally.bad_request.load(Ordering::Relaxed),
        tally.busy.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    let (healed_in, all_heals) = healed_in?;
    // The flood reached it: accepted patterns were answered, the refused ones refused.
    assert!(tally.ok.load(Ordering::Relaxed) > 0, "no filtered answer");
    assert!(
        tally.bad_request.load(Ordering::Relaxed) > 0,
        "no refusal of `{UNICODE_WORDS}`"
    );
    assert!(
        rss_max < RSS_LIMIT_KIB,
        "status-api held {rss_max} KiB resident (limit {RSS_LIMIT_KIB} KiB)"
    );
    assert_eq!(health_failures, 0, "/health failed during the flood");
    assert!(
        health_max < health_limit,
        "/health took {health_max:?} (limit {health_limit:?}; {health_floor:?} without the flood)"
    );
    assert!(
        healed_in < heal_limit,
        "the killed members were down for {healed_in:?} at the median of {all_heals} (limit {heal_limit:?}; \
         {heal_floor:?} without the flood)"
    );
    controller.stop().await.ok();
    drop(controller_runtime);
    api.stop(Duration::from_secs(10)).await?;
    Ok(())
}

/// The largest `[a-z0-9]{N}` status-api accepts as a `name` — a pattern as costly to compile as the size limit
/// allows — found by asking it; answers the pattern and `N`.
async fn largest_accepted_pattern(base: &str) -> anyhow::Result<(String, u32)> {
    let client = reqwest::Client::new();
    let pattern = |n: u32| format!("[a-z0-9]{{{n}}}");
    let accepted = |n: u32| {
        let client = client.clone();
        let url = format!("{base}/status");
        let pattern = pattern(n);
        async move {
            let status = client
                .get(url)
                .query(&[("all", "true"), ("name", pattern.as_str())])
                .send()
                .await?
                .status();
            anyhow::ensure!(
                status == 200 || status == 400,
                "a probe of {pattern} answered {status}"
            );
            Ok::<_, anyhow::Error>(status == 200)
        }
    };
    anyhow::ensure!(accepted(1).await?, "`{}` is refused", pattern(1));
    let (mut low, mut high) = (1, 1000);
    // 1000 repeats, about 100 times what a name needs: the ceiling of the search.
    if accepted(high).await? {
        return Ok((pattern(high), high));
    }
    while high - low > 1 {
        let mid = (low + high) / 2;
        if accepted(mid).await? {
            low = mid;
        } else {
            high = mid;
        }
    }
    Ok((pattern(low), low))
}

/// One flood connection: the same costly request as soon as the last is answered, until `deadline`, over one
/// kept-alive connection (a new one if the server closes it). Written by hand so that the flood costs this
/// test little CPU: the point is what it costs status-api.
async fn flood_connection(
    address: SocketAddr,
    kind: Kind,
    pattern: String,
    labels: Vec<String>,
    deadline: Instant,
    tally: Arc<Tally>,
) -> anyhow::Result<()> {
    let names = match kind {
        Kind::LongPoll | Kind::Accepted => vec![pattern; MAX_VALUES],
        Kind::Refused => vec![UNICODE_WORDS.to_owned(); MAX_VALUES],
    };
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("all", "true");
        for label in &labels {
            query.append_pair("label", label);
        }
        for name in &names {
            query.append_pair("name", name);
        }
        query.finish()
    };
    let mut revision = 0_u64;
    let mut stream: Option<TcpStream> = None;
    while Instant::now() < deadline {
        let target = match kind {
            Kind::LongPoll => format!("/status?{query}&since={revision}&wait=60"),
            Kind::Accepted | Kind::Refused => format!("/status?{query}"),
        };
        let request = format!("GET {target} HTTP/1.1\r\nHost: {address}\r\n\r\n");
        let connection = match stream.as_mut() {
            Some(connection) => connection,
            None => stream.insert(TcpStream::connect(address).await?),
        };
        let answered = async {
            connection.write_all(request.as_bytes()).await?;
            read_answer(connection).await
        };
        match answered.await {
            Ok((status, body)) => {
                tally.count(status);
                if let (Kind::LongPoll, 200) = (kind, status) {
                    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    revision = seen["revision"].as_u64().unwrap_or(revision);
                }
            }
            Err(_) => {
                tally.count(0);
                stream = None;
            }
        }
    }
    Ok(())
}

/// Reads one HTTP/1.1 answer with a `content-length`: its status and body.
async fn read_answer(stream: &mut TcpStream) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0_u8; 16384];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|code| code.parse().ok())
                .context("a status line")?;
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .context("a content-length")?;
            while buffer.len() < end + 4 + length {
                let read = stream.read(&mut chunk).await?;
                anyhow::ensure!(read > 0, "closed mid-body");
                buffer.extend_from_slice(&chunk[..read]);
            }
            return Ok((status, buffer[end + 4..end + 4 + length].to_vec()));
        }
        let read = stream.read(&mut chunk).await?;
        anyhow::ensure!(read > 0, "closed before an answer");
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// `/health` every 50 ms on one kept-alive connection until `deadline`: the slowest answer, how many failed,
/// how many were sent.
async fn poll_health(url: String, deadline: Instant) -> (Duration, u64, u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");
    let mut ticks = tokio::time::interval(Duration::from_millis(50));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut slowest, mut failures, mut polls) = (Duration::ZERO, 0, 0);
    while Instant::now() < deadline {
        ticks.tick().await;
        let started = Instant::now();
        let ok = match client.get(&url).send().await {
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        };
        slowest = slowest.max(started.elapsed());
        polls += 1;
        if !ok {
            failures += 1;
        }
    }
    (slowest, failures, polls)
}

/// status-api's VmRSS every 50 ms until `deadline`: the most, and how many samples.
async fn sample_rss(pid: u32, deadline: Instant) -> (u64, u64) {
    let (mut most, mut samples) = (0, 0);
    while Instant::now() < deadline {
        if let Ok(kib) = memory_kib(pid, "VmRSS") {
            most = most.max(kib);
            samples += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (most, samples)
}

/// The middle value (of an odd count).
fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Waits until the killed `name` runs again; how long it was down, by the engine's own clock (from the
/// kill's `FinishedAt` to the restart's `StartedAt`), so the polling's own delay does not count.
async fn wait_healed(name: &str, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let state = docker(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.StartedAt}} {{.State.FinishedAt}}",
            name,
        ])
        .await?;
        let fields: Vec<&str> = state.split_whitespace().collect();
        if let [running, started_at, finished_at] = fields[..] {
            let started_at: DateTime<Utc> = started_at.parse()?;
            let finished_at: DateTime<Utc> = finished_at.parse()?;
            if running == "true" && started_at > finished_at {
                return Ok((started_at - finished_at).to_std()?);
            }
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "{name} was not running again within {limit:?}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
