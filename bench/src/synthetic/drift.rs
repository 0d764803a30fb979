//! The drift alone, at one size: status-api's own `/snapshot` and `/status?all=true` read once, then
//! `shared::drift::drift` over them, timed in this process — the function status-api's view and the
//! controller's plan both run over every member — and, beside it, what decoding the `/status?all=true` body
//! into `StatusResponse` costs the controller before it can plan.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use shared::{drift::drift, Scope, SnapshotSummary, StatusResponse};

/// Each figure is the median of this many runs, or of what fits in [`BUDGET`] (at least 5).
const RUNS: usize = 100;
const BUDGET: Duration = Duration::from_secs(3);

/// The drift and the decode, timed over the views status-api at `base` serves now.
pub async fn drift_alone(base: &str) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let request = client.get(format!("{base}{path}"));
        async move {
            request
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await
                .with_context(|| format!("cannot read {path}"))
        }
    };
    let body = get("/status?all=true").await?;
    let snapshot: SnapshotSummary = serde_json::from_slice(&get("/snapshot").await?)?;

    let decode = median_of(|| serde_json::from_slice::<StatusResponse>(&body).map(drop))?;
    let status: StatusResponse = serde_json::from_slice(&body)?;
    let scope: Scope = status
        .scope
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("status-api's scope does not parse")?;
    let mut items = 0;
    let drift_time = median_of(|| {
        items = drift(&snapshot.containers, &status.containers, &scope).len();
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(json!({
        "members": snapshot.containers.len(),
        "containers": status.containers.len(),
        "items": items,
        "drift_ms": ms(drift_time),
        "decode_ms": ms(decode),
        "body_bytes": body.len(),
    }))
}

/// The median time of `run`, over [`RUNS`] runs or what fits in [`BUDGET`].
fn median_of<E: Into<anyhow::Error>>(
    mut run: impl FnMut() -> Result<(), E>,
) -> anyhow::Result<Duration> {
    let begun = Instant::now();
    let mut times = Vec::new();
    while times.len() < RUNS && (times.len() < 5 || begun.elapsed() < BUDGET) {
        let started = Instant::now();
        run().map_err(Into::into)?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Milliseconds to the microsecond: the drift at 1,000 members takes well under one.
fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}
