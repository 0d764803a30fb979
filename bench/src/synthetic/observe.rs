//! How far status-api's view trails the synthetic engine: a long poll on `/status` filtered to the probe
//! containers (a tenth of them, so the observer's own parsing stays small beside status-api's work), each
//! answer's time and what it shows, then each probe `start` and `die` matched to the first answer that shows
//! it (a `started_at`, a `finished_at` at or after the event's own time, which the engine reports exactly).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::fleet::PROBE_LABEL;
use super::server::{now_ns, Emitted};

/// What one answer showed of one probe container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// When the answer arrived (ns since the epoch).
    pub at_ns: i64,
    pub started_ns: Option<i64>,
    pub finished_ns: Option<i64>,
}

/// Everything the observer saw: per probe name, each change in what was shown; and the backlog over time.
#[derive(Debug, Default)]
pub struct Seen {
    pub shown: HashMap<String, Vec<Shown>>,
    /// (answer time ns, `event_backlog`).
    pub backlog: Vec<(i64, u64)>,
    pub answers: u64,
}

/// Long-polls `base/status` for the probes until `stop` turns true, into `seen`.
pub async fn observe(
    base: String,
    seen: Arc<Mutex<Seen>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut revision: Option<u64> = None;
    loop {
        let mut url = format!("{base}/status?all=true&label={PROBE_LABEL}=1");
        if let Some(revision) = revision {
            url.push_str(&format!("&since={revision}&wait=2"));
        }
        let answer = tokio::select! {
            answer = client.get(&url).timeout(Duration::from_secs(10)).send() => answer?.error_for_status()?.bytes().await?,
            _ = stop.changed() => return Ok(()),
        };
        let at_ns = now_ns();
        let body: Value = serde_json::from_slice(&answer)?;
        revision = body["revision"].as_u64();
        let mut seen = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("observer lock poisoned"))?;
        record(&mut seen, &body, at_ns);
    }
}

/// Adds one answer to what was seen.
pub fn record(seen: &mut Seen, body: &Value, at_ns: i64) {
    seen.answers += 1;
    seen.backlog
        .push((at_ns, body["event_backlog"].as_u64().unwrap_or(0)));
    for container in body["containers"].as_array().into_iter().flatten() {
        let Some(name) = container["name"].as_str() else {
            continue;
        };
        let now = Shown {
            at_ns,
            started_ns: nanos_of(&container["started_at"]),
            finished_ns: nanos_of(&container["finished_at"]),
        };
        let history = seen.shown.entry(name.to_owned()).or_default();
        if history.last().is_none_or(|last| {
            (last.started_ns, last.finished_ns) != (now.started_ns, now.finished_ns)
        }) {
            history.push(now);
        }
    }
}

fn nanos_of(value: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()?
        .timestamp_nanos_opt()
}

/// Each probe `start` and `die` of `emitted` (named by `name_of`), matched to the first answer that shows
/// it: its lag (answer − event), and how many were never shown.
pub fn lags(
    emitted: &[Emitted],
    seen: &Seen,
    name_of: impl Fn(usize) -> Option<String>,
) -> (Vec<Duration>, usize) {
    let mut lags = Vec::new();
    let mut unseen = 0;
    for event in emitted
        .iter()
        .filter(|event| event.action != "health_status")
    {
        let Some(name) = name_of(event.index) else {
            continue;
        };
        let shown = seen.shown.get(&name).into_iter().flatten().find(|shown| {
            let time = if event.action == "start" {
                shown.started_ns
            } else {
                shown.finished_ns
            };
            time.is_some_and(|time| time >= event.time_ns)
        });
        match shown {
            Some(shown) => lags.push(Duration::from_nanos(
                u64::try_from(shown.at_ns - event.time_ns).unwrap_or(0),
            )),
            None => unseen += 1,
        }
    }
    (lags, unseen)
}

/// The backlog's growth in events per second over `samples` (least squares), 0 with fewer than two.
pub fn growth_per_second(samples: &[(i64, u64)]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let n = samples.len() as f64;
    let t0 = samples[0].0;
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|&(t, b)| ((t - t0) as f64 / 1e9, b as f64))
        .collect();
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_b = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_b)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(containers: Value, backlog: u64) -> Value {
        serde_json::json!({"revision": 1, "event_backlog": backlog, "containers": containers})
    }

    #[test]
    fn each_event_is_matched_to_the_first_answer_that_shows_it() {
        let mut seen = Seen::default();
        let at = |s: &str| serde_json::json!(s);
        record(
            &mut seen,
            &answer(
                serde_json::json!([{"name": "syn-00000", "started_at": at("1970-01-01T00:00:01Z"), "finished_at": null}]),
                0,
            ),
            1_500_000_000,
        );
        record(
            &mut seen,
            &answer(
                serde_json::json!([{"name": "syn-00000", "started_at": at("1970-01-01T00:00:01Z"), "finished_at": at("1970-01-01T00:00:02.5Z")}]),
                3,
            ),
            2_600_000_000,
        );
        // The same again is not a change.
        record(
            &mut seen,
            &answer(
                serde_json::json!([{"name": "syn-00000", "started_at": at("1970-01-01T00:00:01Z"), "finished_at": at("1970-01-01T00:00:02.5Z")}]),
                1,
            ),
            2_700_000_000,
        );
        record(
            &mut seen,
            &answer(
                serde_json::json!([{"name": "syn-00000", "started_at": at("1970-01-01T00:00:03Z"), "finished_at": at("1970-01-01T00:00:02.5Z")}]),
                0,
            ),
            3_050_000_000,
        );
        assert_eq!(seen.shown["syn-00000"].len(), 3);
        assert_eq!(seen.backlog.len(), 4);
        let emitted = [
            Emitted {
                index: 0,
                action: "die",
                time_ns: 2_500_000_000,
            },
            Emitted {
                index: 0,
                action: "health_status",
                time_ns: 2_550_000_000,
            },
            Emitted {
                index: 0,
                action: "start",
                time_ns: 3_000_000_000,
            },
            Emitted {
                index: 0,
                action: "die",
                time_ns: 4_000_000_000,
            },
            Emitted {
                index: 1,
                action: "die",
                time_ns: 4_000_000_000,
            },
        ];
        let (lags, unseen) = lags(&emitted, &seen, |index| {
            (index == 0).then(|| "syn-00000".to_owned())
        });
        assert_eq!(
            lags,
            vec![Duration::from_millis(100), Duration::from_millis(50)]
        );
        // The last die of syn-00000 never showed; index 1 is no probe.
        assert_eq!(unseen, 1);
    }

    #[test]
    fn the_backlog_s_growth_is_its_slope() {
        let flat: Vec<(i64, u64)> = (0..10).map(|s| (s * 1_000_000_000, 5)).collect();
        assert_eq!(growth_per_second(&flat), 0.0);
        let growing: Vec<(i64, u64)> = (0..10).map(|s| (s * 500_000_000, 100 * s as u64)).collect();
        assert!((growth_per_second(&growing) - 200.0).abs() < 1e-9);
        assert_eq!(growth_per_second(&[(0, 3)]), 0.0);
    }
}
