//! The synthetic engine bench (`--only synthetic`): status-api against an engine that serves thousands of
//! containers no test machine could run ([`server::SyntheticEngine`], on a unix socket, through
//! `--docker-host`), to see how its cost grows — start to ready, memory, how far the view trails a steady event
//! rate and from which rate its backlog grows, `/status?all=true`, `/metrics`, the controller's pass and the
//! drift alone.

mod drift;
mod fleet;
mod observe;
mod report;
mod schedule;
mod server;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::procs::{self, Logs, Program, Workdir};
use crate::stats::summary;
use fleet::{is_probe, name_of, Fleet};
use observe::{growth_per_second, lags, observe, Seen};
use schedule::{due, Schedule};
use server::{now_ns, Calls, SyntheticEngine};

pub use report::table;

/// What `--only synthetic` measures.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// Containers on the synthetic host, one run each.
    pub sizes: Vec<usize>,
    /// Events per second, each for `seconds`.
    pub rates: Vec<f64>,
    pub seconds: u64,
}

/// How often `/ready` is asked during a start: each answer builds the view when it changed (a cost that
/// grows with the containers), so a tighter poll would slow the start it measures.
const READY_POLL: Duration = Duration::from_millis(50);

/// After the rates asked for, while the backlog stays flat, the rate is doubled up to this.
const RAMP_LIMIT: f64 = 16_000.0;

/// Runs every size; one row per (size, rate).
pub async fn run(bin_dir: &Path, synthetic: &Synthetic) -> anyhow::Result<Value> {
    let mut rows = Vec::new();
    for &size in &synthetic.sizes {
        eprintln!("-- synthetic engine: {size} containers");
        rows.extend(one_size(bin_dir, size, synthetic).await?);
    }
    marginal_bytes(&mut rows);
    Ok(Value::Array(rows))
}

/// `--synthetic-serve PATH`: only the engine, for a status-api run by hand (under `perf` or `heaptrack`):
/// `size` containers in scope `dockstate.test=synthetic` on the unix socket `path`, events at `rate` a
/// second once status-api follows the stream, until Ctrl-C.
pub async fn serve_only(path: &Path, size: usize, rate: f64) -> anyhow::Result<()> {
    let engine = SyntheticEngine::new(Fleet::new(size, ("dockstate.test", "synthetic"), now_ns()));
    let _serving = Serving(engine.clone().serve(path).await?);
    eprintln!(
        "synthetic engine: {size} containers on unix://{} (scope dockstate.test=synthetic), {rate} events/s once \
         the event stream is followed; Ctrl-C stops it",
        path.display()
    );
    let emitting = async {
        while !engine.calls().contains_key("events") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut schedule = Schedule::new(size);
        let (begun, mut sent) = (Instant::now(), 0);
        loop {
            let now_due = due(begun.elapsed(), rate, sent, 1024);
            engine.emit((0..now_due).filter_map(|_| schedule.next_container()));
            sent += now_due;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::select! {
        () = emitting => {}
        stopped = tokio::signal::ctrl_c() => stopped?,
    }
    std::fs::remove_file(path)?;
    Ok(())
}

/// What one more container costs in resident memory: the growth from the smallest size run to each larger
/// one, so that what every process holds anyway is left out.
fn marginal_bytes(rows: &mut [Value]) {
    let at = |row: &Value| Some((row["containers"].as_f64()?, row["rss_kib"].as_f64()?));
    let Some((smallest, smallest_kib)) = rows
        .iter()
        .filter_map(at)
        .min_by(|a, b| a.0.total_cmp(&b.0))
    else {
        return;
    };
    for row in rows.iter_mut() {
        if let Some((size, kib)) = at(row).filter(|&(size, _)| size > smallest) {
            let bytes = (kib - smallest_kib) * 1024.0 / (size - smallest);
            row["marginal_bytes_per_container"] = json!(bytes.round());
        }
    }
}

/// Aborts the engine's server when dropped.
struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn one_size(
    bin_dir: &Path,
    size: usize,
    synthetic: &Synthetic,
) -> anyhow::Result<Vec<Value>> {
    let label = format!("synthetic-{}-{}", std::process::id(), now_ns());
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("engine.sock");
    let engine = SyntheticEngine::new(Fleet::new(size, ("dockstate.test", &label), now_ns()));
    let _serving = Serving(engine.clone().serve(&socket).await?);
    let host = vec![
        "--docker-host".to_owned(),
        format!("unix://{}", socket.display()),
    ];
    let work = Workdir::new()?;
    let scope = format!("dockstate.test={label}");

    // The same status-api both times, on the same state directory: the second start finds the snapshot.
    let launch = || {
        procs::status_api_with(
            bin_dir,
            &scope,
            &work.state("api"),
            &work.token(),
            Logs::Warnings,
            &host,
        )
    };
    let started = Instant::now();
    let api = launch()?;
    let ready = api
        .wait_ready_every(started, Duration::from_secs(600), READY_POLL)
        .await?;
    let start = start_phases(&engine.calls(), started, ready);
    let memory_ready = memory(&api);
    eprintln!(
        "   ready in {} ms, {} KiB resident",
        ready.as_millis(),
        memory_ready["rss_kib"]
    );
    // Started again over the snapshot it took: what a restart costs, and the memory without the first
    // snapshot's reading. The rest is measured on this one.
    api.stop().await;
    let restarted = Instant::now();
    let api = launch()?;
    let ready_again = api
        .wait_ready_every(restarted, Duration::from_secs(600), READY_POLL)
        .await?;
    let memory_restart = memory(&api);
    eprintln!(
        "   restarted: ready in {} ms, {} KiB resident",
        ready_again.as_millis(),
        memory_restart["rss_kib"]
    );

    let (status_times, status_bytes) =
        timed_gets(&format!("{}/status?all=true", api.base), 200).await?;
    let (metrics_times, metrics_text) = timed_gets(&format!("{}/metrics", api.base), 50).await?;
    let series = String::from_utf8_lossy(&metrics_text)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    let drift = drift::drift_alone(&api.base).await?;
    let pass = controller_pass(bin_dir, &api, &work, &host).await?;
    eprintln!(
        "   /status {} B, /metrics {} B, pass {} ms, drift alone {} ms, decoding /status {} ms",
        status_bytes.len(),
        metrics_text.len(),
        pass["pass_ms"],
        drift["drift_ms"],
        drift["decode_ms"]
    );

    let mut schedule = Schedule::new(size);
    let mut phases = Vec::new();
    for &rate in &synthetic.rates {
        phases.push(event_phase(&engine, &api, &mut schedule, rate, synthetic.seconds).await?);
    }
    let mut rate = synthetic.rates.iter().copied().fold(0.0, f64::max) * 2.0;
    while phases
        .last()
        .is_some_and(|last| last["backlog_grows"] == false)
        && rate <= RAMP_LIMIT
    {
        let mut phase =
            event_phase(&engine, &api, &mut schedule, rate, synthetic.seconds.min(5)).await?;
        phase["ramp"] = json!(true);
        phases.push(phase);
        rate *= 2.0;
    }
    let grows_from = phases
        .iter()
        .find(|phase| phase["backlog_grows"] == true)
        .map(|phase| phase["events_per_s"].clone());
    let unanswered: Vec<String> = engine
        .calls()
        .into_keys()
        .filter(|route| route.starts_with("404"))
        .collect();

    let common = json!({
        "containers": size,
        "ready_ms": ready.as_millis() as u64,
        "start": start,
        "rss_kib": memory_ready["rss_kib"],
        "memory_at_ready": memory_ready,
        "restart_ready_ms": ready_again.as_millis() as u64,
        "rss_kib_restart": memory_restart["rss_kib"],
        "memory_at_restart": memory_restart,
        "memory_at_end": memory(&api),
        "bytes_per_container": memory_ready["rss_kib"].as_f64().map(|kib| (kib * 1024.0 / size as f64).round()),
        "status_all": {"bytes": status_bytes.len(), "latency": summary(&status_times)},
        "status_all_p99_ms": summary(&status_times)["p99_ms"],
        "metrics": {"bytes": metrics_text.len(), "series": series, "latency": summary(&metrics_times)},
        "metrics_bytes": metrics_text.len(),
        "metrics_scrape_p99_ms": summary(&metrics_times)["p99_ms"],
        "controller": pass,
        "pass_ms": pass["pass_ms"],
        "drift": drift,
        "backlog_grows_from_events_per_s": grows_from,
        "unanswered_engine_calls": unanswered,
    });
    Ok(phases
        .into_iter()
        .map(|phase| {
            let mut row = common.clone();
            row["lag_p50_ms"] = phase["lag"]["p50_ms"].clone();
            row["lag_p99_ms"] = phase["lag"]["p99_ms"].clone();
            row["events_per_s"] = phase["events_per_s"].clone();
            row["phase"] = phase;
            row
        })
        .collect())
}

/// Where start → ready went, from the engine's side: when status-api first called it, listed, and made its
/// first and last inspect.
fn start_phases(calls: &BTreeMap<String, Calls>, started: Instant, ready: Duration) -> Value {
    let at = |route: &str, pick: fn(&Calls) -> Instant| {
        calls
            .get(route)
            .map(|calls| pick(calls).saturating_duration_since(started).as_millis() as u64)
    };
    let first_call = calls
        .values()
        .map(|calls| calls.first)
        .min()
        .map(|first| first.saturating_duration_since(started).as_millis() as u64);
    json!({
        "first_engine_call_ms": first_call,
        "first_list_ms": at("list", |c| c.first),
        "first_inspect_ms": at("inspect", |c| c.first),
        "last_inspect_ms": at("inspect", |c| c.last),
        "inspects": calls.get("inspect").map_or(0, |c| c.count),
        "lists": calls.get("list").map_or(0, |c| c.count),
        "ready_ms": ready.as_millis() as u64,
    })
}

/// Resident memory and how it splits: heap and other anonymous pages, the binary's and libraries' pages.
fn memory(program: &Program) -> Value {
    let kib = |field: &str| program.proc_status(field).map(|bytes| bytes / 1024);
    json!({
        "rss_kib": kib("VmRSS:"),
        "anon_kib": kib("RssAnon:"),
        "file_kib": kib("RssFile:"),
        "peak_kib": kib("VmHWM:"),
    })
}

/// `count` GETs of `url` one after the other (fewer if they take over 10 s together): each one's time to the
/// whole body, and the last body.
async fn timed_gets(url: &str, count: usize) -> anyhow::Result<(Vec<Duration>, bytes::Bytes)> {
    let client = reqwest::Client::new();
    let begun = Instant::now();
    let mut times = Vec::new();
    let mut body = bytes::Bytes::new();
    while times.len() < count && (times.len() < 10 || begun.elapsed() < Duration::from_secs(10)) {
        let sent = Instant::now();
        body = client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        times.push(sent.elapsed());
    }
    Ok((times, body))
}

/// The controller's pass over every member: a dry-run controller with a pass every second, its own
/// `dockstate_controller_reconcile_duration_seconds` (a periodic pass: fetching `/status?all=true`,
/// reading it, planning), then one `--once --dry-run` run from process start to exit.
async fn controller_pass(
    bin_dir: &Path,
    api: &Program,
    work: &Workdir,
    host: &[String],
) -> anyhow::Result<Value> {
    let mut more = host.to_vec();
    more.push("--dry-run".to_owned());
    let controller =
        procs::controller_with(bin_dir, api, &work.token(), Logs::Warnings, &more, "1s")?;
    controller
        .wait_ready(Instant::now(), Duration::from_secs(120))
        .await?;
    let client = reqwest::Client::new();
    let begun = Instant::now();
    let (mut sum, mut count) = (0.0, 0.0);
    while begun.elapsed() < Duration::from_secs(30) {
        let text = client
            .get(format!("{}/metrics", controller.base))
            .send()
            .await?
            .text()
            .await?;
        sum = sample(&text, "dockstate_controller_reconcile_duration_seconds_sum").unwrap_or(0.0);
        count = sample(
            &text,
            "dockstate_controller_reconcile_duration_seconds_count",
        )
        .unwrap_or(0.0);
        if count >= 6.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss_kib = controller.rss_bytes().map(|bytes| bytes / 1024);
    drop(controller);

    let once_started = Instant::now();
    let once = tokio::process::Command::new(bin_dir.join("status-controller"))
        .args([
            "--once",
            "--dry-run",
            "--listen",
            "127.0.0.1:0",
            "--api-url",
            &api.base,
            "--log-format",
            "json",
        ])
        .args(host)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .context("cannot run status-controller --once")?;
    let once_ms = once_started.elapsed().as_secs_f64() * 1000.0;
    Ok(json!({
        "pass_ms": (count > 0.0).then(|| (sum / count * 1000.0 * 100.0).round() / 100.0),
        "passes": count,
        "rss_kib": rss_kib,
        "once_ms": (once_ms * 10.0).round() / 10.0,
        "once_exit": once.status.code(),
    }))
}

/// The value of an unlabelled sample in a Prometheus text answer.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// CPU time (user + system) of a process so far, in seconds.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One rate for `seconds`: events sent on schedule while the observer long-polls the probes, then until the
/// view has caught up (at most 15 s more).
async fn event_phase(
    engine: &SyntheticEngine,
    api: &Program,
    schedule: &mut Schedule,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<Value> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop, stopped) = watch::channel(false);
    let observer = tokio::spawn(observe(api.base.clone(), seen.clone(), stopped));
    let answers = || seen.lock().map(|seen| seen.answers).unwrap_or(0);
    let waiting = Instant::now();
    while answers() == 0 && waiting.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let inspects = || engine.calls().get("inspect").map_or(0, |calls| calls.count);
    let (inspects_before, api_cpu_before, own_cpu_before) = (
        inspects(),
        cpu_seconds(api.pid()),
        cpu_seconds(Some(std::process::id())),
    );

    let begun = Instant::now();
    let begun_ns = now_ns();
    let mut emitted = Vec::new();
    let mut sent = 0;
    while begun.elapsed() < Duration::from_secs(seconds) {
        let now_due = due(begun.elapsed(), rate, sent, 1024);
        if now_due > 0 {
            emitted.extend(engine.emit((0..now_due).filter_map(|_| schedule.next_container())));
            sent += now_due;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let emitting = begun.elapsed();
    let ended_ns = now_ns();
    let (api_cpu, own_cpu) = (
        cpu_seconds(api.pid()),
        cpu_seconds(Some(std::process::id())),
    );
    let probes: Vec<_> = emitted
        .into_iter()
        .filter(|event| is_probe(event.index))
        .collect();
    let caught_up = || {
        let seen = seen.lock().ok()?;
        let settled = seen
            .backlog
            .last()
            .is_some_and(|&(at, backlog)| at > ended_ns && backlog == 0);
        (settled && lags(&probes, &seen, |index| Some(name_of(index))).1 == 0).then_some(())
    };
    let draining = Instant::now();
    while caught_up().is_none() && draining.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = draining.elapsed();
    let _ = stop.send(true);
    let observed = observer
        .await
        .map_err(anyhow::Error::from)
        .and_then(|result| result);
    let seen = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("observer lock poisoned"))?;
    let (lag, unseen) = lags(&probes, &seen, |index| Some(name_of(index)));
    let during: Vec<(i64, u64)> = seen
        .backlog
        .iter()
        .copied()
        .filter(|&(at, _)| at >= begun_ns && at <= ended_ns)
        .collect();
    let growth = growth_per_second(&during);
    let backlog_max = during
        .iter()
        .map(|&(_, backlog)| backlog)
        .max()
        .unwrap_or(0);
    let cpu = |after: Option<f64>, before: Option<f64>| {
        Some(((after? - before?) / emitting.as_secs_f64() * 100.0).round() / 100.0)
    };
    eprintln!(
        "   {rate} events/s: lag p99 {} ms ({} probe events, {unseen} unseen), backlog max {backlog_max}, growth {growth:.1}/s",
        summary(&lag)["p99_ms"],
        lag.len()
    );
    Ok(json!({
        "events_per_s": rate,
        "seconds": seconds,
        "events": sent,
        "achieved_events_per_s": (sent as f64 / emitting.as_secs_f64()).round(),
        "lag": summary(&lag),
        "unseen": unseen,
        "observer_error": observed.err().map(|err| format!("{err:#}")),
        "observer_answers": seen.answers,
        "backlog_max": backlog_max,
        "backlog_growth_per_s": (growth * 10.0).round() / 10.0,
        "backlog_grows": report::grows(growth, backlog_max, rate),
        "catch_up_ms": drain.as_millis() as u64,
        "inspects": inspects() - inspects_before,
        "status_api_cores": cpu(api_cpu, api_cpu_before),
        "bench_cores": cpu(own_cpu, own_cpu_before),
        "rss_kib_after": api.rss_bytes().map(|bytes| bytes / 1024),
    }))
}
