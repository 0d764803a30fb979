//! Whether status-api's view keeps up under churn: N scoped containers (50 running, the rest created), random
//! ones started and stopped at a steady rate, and for every `start` and `die` the engine reports, the time from
//! the engine's own event timestamp to the first `/status` long-poll answer that shows it.
//!
//! "Shows it" is judged by the engine's own times, so coalesced events and repeated operations on one
//! container are matched correctly: a `start` is visible once `/status` carries a `started_at` later than the
//! container's previous `die`, a `die` once it carries a `finished_at` later than its previous `start`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bollard::query_parameters::{StartContainerOptions, StopContainerOptions};
use bollard::Docker;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use test_support::TestScope;

use crate::engine::{create_many, now_nanos, Event, Recorder, Spec};
use crate::procs::{self, Workdir};
use crate::stats;

/// Containers running at any time; the churn keeps it there, so 1,000 fit in memory.
const RUNNING: usize = 50;

/// A container is not touched again this soon, so each operation is a separate change to see.
const REST: Duration = Duration::from_secs(2);

/// Operations in flight at most: an engine slower than the rate skips ticks instead of piling up calls
/// until they time out. The skipped ticks are reported: the rate achieved is what was measured.
const MAX_OPERATIONS_IN_FLIGHT: usize = 64;

/// What the churn did.
#[derive(Debug, Default)]
struct Driven {
    operations: usize,
    failed: usize,
    skipped_ticks: usize,
}

/// How the churn runs (`--containers`, `--rate`, `--churn-seconds`).
#[derive(Debug, Clone, Copy)]
pub struct Churn {
    pub containers: usize,
    /// Start or stop operations per second; each stop is three watched events (kill, die, stop).
    pub rate: f64,
    pub seconds: u64,
}

/// What one `/status` answer showed of one container: when it arrived, and the container's engine times.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at_nanos: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

pub async fn run(docker: &Docker, bin_dir: &Path, churn: Churn) -> anyhow::Result<Value> {
    let scope = TestScope::new();
    let work = Workdir::new()?;
    let names: Vec<String> = (0..churn.containers)
        .map(|i| scope.name(&format!("c{i}")))
        .collect();
    let running = RUNNING.min(names.len());
    eprintln!("   creating {} containers", names.len());
    let label = scope.label();
    let mut ids = create_many(
        docker,
        &names[..running],
        Spec {
            label: &label,
            start: true,
            restart_always: false,
            slow_stop: None,
        },
    )
    .await?;
    ids.extend(
        create_many(
            docker,
            &names[running..],
            Spec {
                label: &label,
                start: false,
                restart_always: false,
                slow_stop: None,
            },
        )
        .await?,
    );

    let spawned = Instant::now();
    let api = procs::status_api(
        bin_dir,
        &scope.scope(),
        &work.state("churn"),
        &work.token(),
        procs::Logs::Warnings,
    )?;
    let ready = api.wait_ready(spawned, Duration::from_secs(180)).await?;
    eprintln!(
        "   status-api ready in {} ms; churning at {}/s for {}s",
        ready.as_millis(),
        churn.rate,
        churn.seconds
    );

    let recorder = Recorder::start(docker, &label).await?;
    let seen: Arc<Mutex<HashMap<String, Vec<Seen>>>> = Arc::default();
    let observer = tokio::spawn({
        let (base, seen) = (api.base.clone(), seen.clone());
        async move {
            if let Err(err) = observe(base, seen).await {
                eprintln!("   the /status observer stopped: {err:#}");
            }
        }
    });
    let from = now_nanos();

    let driven = drive(docker, &ids, running, churn).await?;
    // Let the last changes reach the view before judging.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to = now_nanos();
    observer.abort();

    let events = recorder.events_between(from, to);
    let watched = events
        .iter()
        .filter(|event| ["start", "kill", "die", "stop"].contains(&event.action.as_str()))
        .count();
    let (latencies, unseen) = match_events(&events, &seen.lock().expect("not poisoned"), from);
    let answers: usize = seen
        .lock()
        .map(|seen| seen.values().map(Vec::len).sum())
        .unwrap_or(0);
    eprintln!(
        "   {} events recorded, {} container changes observed in /status, unseen by action: {:?}",
        events.len(),
        answers,
        unseen
    );
    let unseen = unseen.values().sum::<usize>();
    let metrics = reqwest::get(format!("{}/metrics", api.base))
        .await?
        .text()
        .await
        .unwrap_or_default();
    let sample = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
    };
    // status-api's own view of the same thing (engine event → applied, before any answer is sent): a
    // cross-check that the figures above are the server's and not the observer's.
    let lag_count = sample("dockstate_event_lag_seconds_count ");
    let own_share = |le: &str| {
        let within = sample(&format!(
            "dockstate_event_lag_seconds_bucket{{le=\"{le}\"}} "
        ))?;
        Some((within / lag_count? * 1000.0).round() / 10.0)
    };
    drop(api);
    drop(recorder);
    Ok(json!({
        "containers": churn.containers,
        "rate": churn.rate,
        "seconds": churn.seconds,
        "operations": driven.operations,
        "failed_operations": driven.failed,
        "skipped_ticks": driven.skipped_ticks,
        "watched_events_per_second": (watched as f64 / ((to - from) as f64 / 1e9) * 10.0).round() / 10.0,
        "event_to_status": stats::summary(&latencies),
        "unseen": unseen,
        "status_api_lag": {
            "observations": lag_count,
            "percent_within_250ms": own_share("0.25"),
            "percent_within_1s": own_share("1"),
        },
        "ready_ms": ready.as_millis() as u64,
    }))
}

/// Starts and stops random containers at `churn.rate` for `churn.seconds`, keeping about [`RUNNING`]
/// running. A failed operation is counted, not fatal: its events (if any) are measured like the others.
async fn drive(
    docker: &Docker,
    ids: &[String],
    running: usize,
    churn: Churn,
) -> anyhow::Result<Driven> {
    let mut up: Vec<usize> = (0..running).collect();
    let mut down: Vec<usize> = (running..ids.len()).collect();
    let mut rested: HashMap<usize, Instant> = HashMap::new();
    let mut random = Random::seeded();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / churn.rate.max(0.1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let until = Instant::now() + Duration::from_secs(churn.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    let mut driven = Driven::default();
    let settle = |done: Result<anyhow::Result<()>, tokio::task::JoinError>, driven: &mut Driven| {
        if let Err(err) = done.map_err(anyhow::Error::from).and_then(|result| result) {
            eprintln!("   churn operation failed: {err:#}");
            driven.failed += 1;
        }
    };
    while Instant::now() < until {
        tick.tick().await;
        while let Some(done) = tasks.try_join_next() {
            settle(done, &mut driven);
        }
        if tasks.len() >= MAX_OPERATIONS_IN_FLIGHT {
            driven.skipped_ticks += 1;
            continue;
        }
        let start = up.len() < RUNNING.min(ids.len()) || up.is_empty();
        let pool = if start { &mut down } else { &mut up };
        let Some(slot) = pick(pool, &mut random, &rested) else {
            continue;
        };
        let index = pool.swap_remove(slot);
        rested.insert(index, Instant::now());
        let docker = docker.clone();
        let id = ids[index].clone();
        if start {
            up.push(index);
            tasks.spawn(async move {
                docker
                    .start_container(&id, None::<StartContainerOptions>)
                    .await
                    .with_context(|| format!("start {id}"))
            });
        } else {
            down.push(index);
            tasks.spawn(async move {
                let options = StopContainerOptions {
                    t: Some(0),
                    ..StopContainerOptions::default()
                };
                docker
                    .stop_container(&id, Some(options))
                    .await
                    .with_context(|| format!("stop {id}"))
            });
        }
        driven.operations += 1;
    }
    while let Some(done) = tasks.join_next().await {
        settle(done, &mut driven);
    }
    Ok(driven)
}

/// A random member of `pool` that has rested for [`REST`]; a few tries, then none this tick.
fn pick(pool: &[usize], random: &mut Random, rested: &HashMap<usize, Instant>) -> Option<usize> {
    (0..8).find_map(|_| {
        if pool.is_empty() {
            return None;
        }
        let slot = random.below(pool.len());
        let ready = rested
            .get(&pool[slot])
            .is_none_or(|at| at.elapsed() >= REST);
        ready.then_some(slot)
    })
}

/// Follows `/status?all=true` by long poll and records, for every container, each answer that changed it.
async fn observe(base: String, seen: Arc<Mutex<HashMap<String, Vec<Seen>>>>) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut since: Option<u64> = None;
    loop {
        let url = match since {
            Some(revision) => format!("{base}/status?all=true&since={revision}&wait=30"),
            None => format!("{base}/status?all=true"),
        };
        let body: Value = client.get(url).send().await?.json().await?;
        let at_nanos = now_nanos();
        since = body["revision"].as_u64();
        let mut seen = seen.lock().expect("not poisoned");
        for container in body["containers"].as_array().into_iter().flatten() {
            let id = container["id"].as_str().unwrap_or_default();
            let now = Seen {
                at_nanos,
                started_at: nanos_of(&container["started_at"]),
                finished_at: nanos_of(&container["finished_at"]),
            };
            let history = seen.entry(id.to_owned()).or_default();
            let changed = history.last().is_none_or(|last| {
                (last.started_at, last.finished_at) != (now.started_at, now.finished_at)
            });
            if changed {
                history.push(now);
            }
        }
    }
}

fn nanos_of(value: &Value) -> Option<i64> {
    value
        .as_str()
        .and_then(|text| text.parse::<DateTime<Utc>>().ok())
        .and_then(|time| time.timestamp_nanos_opt())
}

/// For every `start` and `die` after `from`, how long until `/status` showed it; and how many it never did.
fn match_events(
    events: &[Event],
    seen: &HashMap<String, Vec<Seen>>,
    from: i64,
) -> (Vec<Duration>, HashMap<String, usize>) {
    let mut previous: HashMap<&str, i64> = HashMap::new();
    let mut latencies = Vec::new();
    let mut unseen: HashMap<String, usize> = HashMap::new();
    for event in events {
        // Only starts and dies bound each other: a stop's second `kill` (SIGKILL after SIGTERM) can come
        // after the process already exited, so its time is later than the `FinishedAt` of the `die`.
        if !["start", "die"].contains(&event.action.as_str()) {
            continue;
        }
        let before = *previous.get(event.id.as_str()).unwrap_or(&from);
        previous.insert(&event.id, event.time_nanos);
        let shows = |s: &Seen| match event.action.as_str() {
            "start" => s.started_at.is_some_and(|t| t > before),
            _ => s.finished_at.is_some_and(|t| t > before),
        };
        match seen
            .get(&event.id)
            .and_then(|history| history.iter().find(|s| shows(s)))
        {
            Some(s) => latencies.push(Duration::from_nanos(
                u64::try_from(s.at_nanos - event.time_nanos).unwrap_or(0),
            )),
            None => *unseen.entry(event.action.clone()).or_default() += 1,
        }
    }
    (latencies, unseen)
}

/// xorshift64*: enough to pick containers, and no dependency for it.
#[derive(Debug)]
struct Random(u64);

impl Random {
    fn seeded() -> Self {
        Self(u64::try_from(now_nanos()).unwrap_or(1) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (value % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, action: &str, time_nanos: i64) -> Event {
        Event {
            id: id.into(),
            name: String::new(),
            action: action.into(),
            time_nanos,
        }
    }

    #[test]
    fn each_event_is_matched_to_the_first_answer_that_shows_it() {
        let events = [
            event("a", "start", 1_000),
            event("a", "kill", 2_000),
            // SIGKILL after the process already exited at 2_090.
            event("a", "kill", 2_095),
            event("a", "die", 2_100),
            event("a", "stop", 2_200),
        ];
        let seen = HashMap::from([(
            "a".to_owned(),
            vec![
                Seen {
                    at_nanos: 500,
                    started_at: Some(10),
                    finished_at: None,
                },
                Seen {
                    at_nanos: 1_300,
                    started_at: Some(990),
                    finished_at: None,
                },
                Seen {
                    at_nanos: 2_600,
                    started_at: Some(990),
                    finished_at: Some(2_090),
                },
            ],
        )]);
        let (latencies, unseen) = match_events(&events, &seen, 100);
        assert_eq!(
            latencies,
            [Duration::from_nanos(300), Duration::from_nanos(500)]
        );
        assert!(unseen.is_empty());

        let (_, unseen) = match_events(&events, &HashMap::new(), 100);
        assert_eq!(
            unseen,
            HashMap::from([("start".into(), 1), ("die".into(), 1)])
        );
    }

    #[test]
    fn random_picks_stay_in_range() {
        let mut random = Random::seeded();
        assert!((0..1_000).all(|_| random.below(7) < 7));
    }
}
