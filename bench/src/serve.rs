//! `/status?all=true` throughput and latency with wrk at 16 connections, at each size, beside the engine's
//! own list call (through a loopback TCP relay to its socket, as wrk speaks only TCP) and nginx serving the
//! very same bytes as a static file — the ceiling for answering from memory. At the largest size also:
//! resident memory of both programs and the time from start to `/ready`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use bollard::Docker;
use serde_json::{json, Value};
use test_support::{EngineProxy, TestScope};

use crate::engine::{create_many, Spec};
use crate::procs::{self, free_port, Workdir};

/// Running containers at any size; the rest are created only, which keeps 1,000 within memory.
const RUNNING: usize = 50;

pub async fn run(
    docker: &Docker,
    bin_dir: &Path,
    sizes: &[usize],
    seconds: u32,
) -> anyhow::Result<Value> {
    let scope = TestScope::new();
    let work = Workdir::new()?;
    let proxy = EngineProxy::start().await?;
    let mut rows = Vec::new();
    let mut made = 0;
    let mut running_ids = Vec::new();
    let mut largest = json!(null);
    let api_version = docker.client_version().to_string();

    for (index, &size) in sizes.iter().enumerate() {
        if size > made {
            let names: Vec<String> = (made..size).map(|i| scope.name(&format!("c{i}"))).collect();
            let running_now = made.min(RUNNING);
            let to_run = RUNNING.saturating_sub(running_now).min(names.len());
            running_ids.extend(
                create_many(
                    docker,
                    &names[..to_run],
                    Spec {
                        label: &scope.label(),
                        start: true,
                        restart_always: false,
                        slow_stop: None,
                    },
                )
                .await?,
            );
            create_many(
                docker,
                &names[to_run..],
                Spec {
                    label: &scope.label(),
                    start: false,
                    restart_always: false,
                    slow_stop: None,
                },
            )
            .await?;
            made = size;
        }
        eprintln!("   {size} containers");
        let state = work.state(&format!("serve-{index}"));
        let spawned = Instant::now();
        let api = procs::status_api(
            bin_dir,
            &scope.scope(),
            &state,
            &work.token(),
            procs::Logs::Warnings,
        )?;
        let ready = api.wait_ready(spawned, Duration::from_secs(120)).await?;

        let status_url = format!("{}/status?all=true", api.base);
        let body = reqwest::get(&status_url).await?.bytes().await?;
        let listed = serde_json::from_slice::<Value>(&body)?["containers"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        anyhow::ensure!(
            listed == size,
            "status-api lists {listed} containers, expected {size}"
        );

        let status = wrk(&status_url, seconds).await?;
        let filter = format!("{{\"label\":[\"{}\"]}}", scope.label());
        let engine_url = format!(
            "http://{}/v{api_version}/containers/json?all=1&filters={}",
            proxy.docker_host().trim_start_matches("tcp://"),
            percent_encode(&filter)
        );
        let engine = wrk(&engine_url, seconds).await?;
        let nginx = Nginx::serve(&body).await?;
        let ceiling = wrk(&nginx.url, seconds).await?;
        drop(nginx);

        let ratio =
            status["rps"].as_f64().unwrap_or(0.0) / ceiling["rps"].as_f64().unwrap_or(f64::NAN);
        let mut row = json!({
            "containers": size,
            "body_bytes": body.len(),
            "status": status,
            "engine_list": engine,
            "nginx": ceiling,
            "ratio_to_nginx": (ratio * 100.0).round() / 100.0,
            "ready_ms": ready.as_secs_f64() * 1000.0,
            "rss_bytes_after_load": api.rss_bytes(),
        });
        if index + 1 == sizes.len() {
            let parked = park_long_polls(docker, &api, &running_ids).await?;
            row["long_polls"] = parked.clone();
            let controller =
                procs::controller(bin_dir, &api, &work.token(), procs::Logs::Warnings)?;
            controller
                .wait_ready(Instant::now(), Duration::from_secs(60))
                .await?;
            // One full pass at this size, and the controller's memory after it.
            tokio::time::sleep(Duration::from_secs(2)).await;
            largest = json!({
                "containers": size,
                "rss_bytes": {"status_api": api.rss_bytes(), "status_controller": controller.rss_bytes()},
                "peak_rss_bytes": {"status_api": api.peak_rss_bytes(), "status_controller": controller.peak_rss_bytes()},
                "long_polls": parked,
                "ready_ms": (ready.as_secs_f64() * 10_000.0).round() / 10.0,
            });
            row["rss_bytes_controller"] = json!(controller.rss_bytes());
        }
        rows.push(row);
    }
    Ok(json!({
        "sizes": rows,
        "largest": largest["containers"],
        "rss_bytes": largest["rss_bytes"],
        "peak_rss_bytes": largest["peak_rss_bytes"],
        "long_polls": largest["long_polls"],
        "ready_ms": largest["ready_ms"],
        "wrk": format!("wrk -t2 -c16 -d{seconds}s --latency"),
    }))
}

/// Long polls parked at once on `/status?all=true` while memory is read.
const PARKED_LONG_POLLS: usize = 200;

/// Parks [`PARKED_LONG_POLLS`] long polls on status-api and reads its resident memory while they wait; then
/// kills one running container, so every one of them is answered with the new revision at once (each a copy of
/// the same prepared body, unless the server shares it), and reads the memory again and its peak.
async fn park_long_polls(
    docker: &Docker,
    api: &procs::Program,
    running: &[String],
) -> anyhow::Result<Value> {
    let url = format!("{}/status?all=true", api.base);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let first: Value = client.get(&url).send().await?.json().await?;
    let revision = first["revision"]
        .as_u64()
        .context("/status has no revision")?;
    let polls: Vec<_> = (0..PARKED_LONG_POLLS)
        .map(|_| {
            let request = client.get(format!("{url}&since={revision}&wait=60")).send();
            tokio::spawn(async move {
                let response = request.await?.error_for_status()?;
                let body: Value = response.json().await?;
                anyhow::Ok(body["revision"].as_u64().unwrap_or(0))
            })
        })
        .collect();
    // Every one of them connected and parked: the server holds them, nothing has changed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    anyhow::ensure!(
        polls.iter().all(|poll| !poll.is_finished()),
        "a long poll was answered before anything changed"
    );
    let parked_rss = api.rss_bytes();

    let victim = running.first().context("no running container")?;
    crate::engine::kill_9(crate::engine::main_pid(docker, victim).await?).await?;
    for poll in polls {
        let answered = poll.await??;
        anyhow::ensure!(
            answered > revision,
            "a long poll was answered with revision {answered}, not a newer one than {revision}"
        );
    }
    Ok(json!({
        "parked": PARKED_LONG_POLLS,
        "rss_bytes_parked": parked_rss,
        "rss_bytes_after_answers": api.rss_bytes(),
        "peak_rss_bytes": api.peak_rss_bytes(),
    }))
}

/// Runs wrk and reads its requests/s and latency percentiles (ms).
async fn wrk(url: &str, seconds: u32) -> anyhow::Result<Value> {
    let output = tokio::process::Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{seconds}s"), "--latency", url])
        .output()
        .await
        .context("wrk is needed (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}");
    anyhow::ensure!(
        !text.contains("Non-2xx"),
        "wrk saw errors from {url}: {text}"
    );
    let rps = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk output: {text}"))?;
    let percentile = |label: &str| -> Option<f64> {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(label))
            .and_then(|value| parse_wrk_time(value.trim()))
    };
    Ok(json!({
        "rps": rps.round(),
        "p50_ms": percentile("50%").map(|ms| (ms * 100.0).round() / 100.0),
        "p99_ms": percentile("99%").map(|ms| (ms * 100.0).round() / 100.0),
    }))
}

/// `812.00us`, `1.23ms`, `2.00s` → milliseconds.
fn parse_wrk_time(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1000.0),
        "ms" => Some(number),
        "s" => Some(number * 1000.0),
        "m" => Some(number * 60_000.0),
        _ => None,
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// nginx serving one file on a free loopback port, stopped on drop.
struct Nginx {
    url: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn serve(body: &[u8]) -> anyhow::Result<Self> {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .context("nginx is needed for the ceiling (apt-get install nginx-light)")?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("status.json"), body)?;
        let port = free_port()?;
        let root = dir.path().display();
        let config = format!(
            "daemon off; worker_processes 2; user root; pid {root}/nginx.pid; error_log {root}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{ access_log off; default_type application/json;\n\
               client_body_temp_path {root}; proxy_temp_path {root}; fastcgi_temp_path {root};\n\
               uwsgi_temp_path {root}; scgi_temp_path {root};\n\
               server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), config)?;
        let child = tokio::process::Command::new(nginx)
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}/status.json");
        let started = Instant::now();
        while reqwest::get(&url)
            .await
            .map(|r| r.status().is_success())
            .ok()
            != Some(true)
        {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            url,
            child,
            _dir: dir,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_times_in_milliseconds() {
        assert_eq!(parse_wrk_time("812.00us"), Some(0.812));
        assert_eq!(parse_wrk_time("1.50ms"), Some(1.5));
        assert_eq!(parse_wrk_time("2.00s"), Some(2000.0));
        assert_eq!(parse_wrk_time("fast"), None);
    }

    #[test]
    fn filters_are_percent_encoded() {
        assert_eq!(
            percent_encode("{\"a\":[\"b=c\"]}"),
            "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D"
        );
    }
}
