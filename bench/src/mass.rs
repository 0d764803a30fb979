//! Many drifts at once: the executor's lanes, not one action, under measurement.
//!
//! Mass heal: N members' main processes killed from the host in one `kill -9` until every one runs again,
//! beside N `--restart always` containers (in another scope, so the controller ignores them) killed the
//! same way. Mass stop: N unexpected containers in scope started at once, each ignoring SIGTERM with a 1 s
//! stop timeout, until every one is stopped. Each round uses fresh containers, so neither the controller's
//! crash-loop backoff nor Docker's own restart delay carries over from one round to the next.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::query_parameters::StartContainerOptions;
use bollard::Docker;
use serde_json::{json, Value};
use test_support::TestScope;

use crate::engine::{create_many, kill_9_all, main_pid, now_nanos, Event, Recorder, Spec};
use crate::procs::{self, Program, Workdir};
use crate::stats::summary;

/// How long one container may take to run again, or to stop, before the round fails.
const ROUND_TIMEOUT: Duration = Duration::from_secs(90);
/// The stop timeout of the unexpected containers, in seconds.
const STOP_TIMEOUT_S: i64 = 1;

/// What the mass scenarios run: their sizes and how many rounds.
#[derive(Debug, Clone, Copy)]
pub struct Mass {
    /// Members killed at once in each mass-heal round.
    pub heal: usize,
    /// Unexpected containers started at once in each mass-stop round.
    pub stop: usize,
    pub rounds: usize,
}

fn since(from: i64, to: i64) -> Duration {
    Duration::from_nanos(u64::try_from(to - from).unwrap_or(0))
}

/// status-api over `scope` (whose members must exist already: they are its baseline), and the controller.
async fn start_pair(
    bin_dir: &Path,
    scope: &TestScope,
    work: &Workdir,
) -> anyhow::Result<(Program, Program)> {
    let api = procs::status_api(
        bin_dir,
        &scope.scope(),
        &work.state("mass"),
        &work.token(),
        procs::Logs::Warnings,
    )?;
    api.wait_ready(Instant::now(), Duration::from_secs(60))
        .await?;
    // Traced, so the mass stop can tell when each stop was dispatched (and its warnings, holds among
    // them, reach the benchmark's stderr).
    let controller = procs::controller(bin_dir, &api, &work.token(), procs::Logs::HealTrace)?;
    controller
        .wait_ready(Instant::now(), Duration::from_secs(60))
        .await?;
    Ok((api, controller))
}

/// The controller's holds so far, by reason, from its `/metrics`.
async fn holds(controller: &Program) -> BTreeMap<String, u64> {
    let Ok(response) = reqwest::get(format!("{}/metrics", controller.base)).await else {
        return BTreeMap::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|line| line.strip_prefix("dockstate_controller_holds_total{reason=\""))
        .filter_map(|rest| {
            let (reason, count) = rest.split_once("\"} ")?;
            Some((reason.to_owned(), count.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// The holds that came between two readings of [`holds`], as `reason +n` words.
fn new_holds(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Value {
    after
        .iter()
        .filter_map(|(reason, count)| {
            let new = count.saturating_sub(before.get(reason).copied().unwrap_or(0));
            (new > 0).then(|| (reason.clone(), json!(new)))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The first event of `action` for each of `ids` after `after` (each id's own time when `after` is per
/// id), in the order of `ids`.
async fn first_each(
    events: &Recorder,
    ids: &[String],
    after: &[i64],
    action: &str,
) -> anyhow::Result<Vec<Event>> {
    let mut found = Vec::with_capacity(ids.len());
    for (id, after) in ids.iter().zip(after) {
        let event = events
            .wait_for(&format!("{id} to {action}"), *after, ROUND_TIMEOUT, |e| {
                &e.id == id && e.action == action
            })
            .await?;
        found.push(event);
    }
    Ok(found)
}

/// Kills every one of `ids` in one `kill -9`; answers (kill → all running again, each kill → running).
async fn kill_all_and_wait(
    docker: &Docker,
    events: &Recorder,
    ids: &[String],
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let mut pids = Vec::with_capacity(ids.len());
    for id in ids {
        pids.push(main_pid(docker, id).await?);
    }
    let killed = now_nanos();
    kill_9_all(&pids).await?;
    let died = first_each(events, ids, &vec![killed; ids.len()], "die").await?;
    let died_at: Vec<i64> = died.iter().map(|e| e.time_nanos).collect();
    let started = first_each(events, ids, &died_at, "start").await?;
    let each: Vec<Duration> = started
        .iter()
        .map(|e| since(killed, e.time_nanos))
        .collect();
    let all = each.iter().max().copied().unwrap_or_default();
    Ok((all, each))
}

/// Mass heal: rounds of N members killed at once, and as many of N `--restart always` containers.
pub async fn heal(docker: &Docker, bin_dir: &Path, mass: Mass) -> anyhow::Result<Value> {
    let managed = TestScope::new();
    let plain = TestScope::new();
    let work = Workdir::new()?;
    let create = |scope: &TestScope, round: usize, restart_always: bool| {
        let names: Vec<String> = (0..mass.heal)
            .map(|i| scope.name(&format!("mass-{round}-{i}")))
            .collect();
        let label = scope.label();
        async move {
            create_many(
                docker,
                &names,
                Spec {
                    label: &label,
                    start: true,
                    restart_always,
                    slow_stop: None,
                },
            )
            .await
        }
    };
    let mut members = Vec::new();
    let mut restarting = Vec::new();
    for round in 0..mass.rounds {
        members.push(create(&managed, round, false).await?);
        restarting.push(create(&plain, round, true).await?);
    }
    eprintln!(
        "   {} + {} containers created",
        mass.heal * mass.rounds,
        mass.heal * mass.rounds
    );
    let (_api, controller) = start_pair(bin_dir, &managed, &work).await?;
    let managed_events = Recorder::start(docker, &managed.label()).await?;
    let mut round_holds = Vec::new();
    let plain_events = Recorder::start(docker, &plain.label()).await?;

    let (mut healed_all, mut restarted_all) = (Vec::new(), Vec::new());
    let (mut healed_each, mut restarted_each) = (Vec::new(), Vec::new());
    for (round, (members, restarting)) in members.iter().zip(&restarting).enumerate() {
        let held_before = holds(&controller).await;
        let (all, each) = kill_all_and_wait(docker, &managed_events, members).await?;
        round_holds.push(new_holds(&held_before, &holds(&controller).await));
        healed_all.push(all);
        healed_each.extend(each);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (plain_all, each) = kill_all_and_wait(docker, &plain_events, restarting).await?;
        restarted_all.push(plain_all);
        restarted_each.extend(each);
        eprintln!(
            "   round {}: dockstate {} ms, --restart always {} ms; controller holds meanwhile: {}",
            round + 1,
            all.as_millis(),
            plain_all.as_millis(),
            round_holds.last().unwrap_or(&Value::Null)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let dockstate = summary(&healed_all);
    let docker_restart = summary(&restarted_all);
    let ratio = dockstate["p50_ms"].as_f64().unwrap_or(f64::NAN)
        / docker_restart["p50_ms"].as_f64().unwrap_or(f64::NAN);
    let worst_ratio = dockstate["max_ms"].as_f64().unwrap_or(f64::NAN)
        / docker_restart["max_ms"].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "members": mass.heal,
        "rounds": mass.rounds,
        "dockstate_all_running": dockstate,
        "docker_restart_all_running": docker_restart,
        "ratio_p50": (ratio * 100.0).round() / 100.0,
        "ratio_max": (worst_ratio * 100.0).round() / 100.0,
        "dockstate_each": summary(&healed_each),
        "docker_restart_each": summary(&restarted_each),
        "controller_holds_per_round": round_holds,
    }))
}

/// Mass stop: rounds of N unexpected containers (SIGTERM ignored, 1 s stop timeout) started at once.
pub async fn stop(docker: &Docker, bin_dir: &Path, mass: Mass) -> anyhow::Result<Value> {
    let scope = TestScope::new();
    let work = Workdir::new()?;
    // One member, so the baseline is not empty; the unexpected ones come after it is taken.
    create_many(
        docker,
        &[scope.name("member")],
        Spec {
            label: &scope.label(),
            start: true,
            restart_always: false,
            slow_stop: None,
        },
    )
    .await?;
    let (_api, controller) = start_pair(bin_dir, &scope, &work).await?;
    let events = Recorder::start(docker, &scope.label()).await?;

    let (mut all_stopped, mut worst, mut each) = (Vec::new(), Vec::new(), Vec::new());
    let (mut to_dispatch, mut round_holds) = (Vec::new(), Vec::new());
    let (mut to_recheck, mut to_die) = (Vec::new(), Vec::new());
    for round in 0..mass.rounds {
        let names: Vec<String> = (0..mass.stop)
            .map(|i| scope.name(&format!("unexpected-{round}-{i}")))
            .collect();
        let ids = create_many(
            docker,
            &names,
            Spec {
                label: &scope.label(),
                start: false,
                restart_always: false,
                slow_stop: Some(STOP_TIMEOUT_S),
            },
        )
        .await?;
        let held_before = holds(&controller).await;
        let before = now_nanos();
        let starts = futures::future::join_all(
            ids.iter()
                .map(|id| docker.start_container(id, None::<StartContainerOptions>)),
        )
        .await;
        for started in starts {
            started?;
        }
        let started = first_each(&events, &ids, &vec![before; ids.len()], "start").await?;
        let started_at: Vec<i64> = started.iter().map(|e| e.time_nanos).collect();
        let died = first_each(&events, &ids, &started_at, "die").await?;
        let first_start = started_at.iter().min().copied().unwrap_or(before);
        let last_die = died
            .iter()
            .map(|e| e.time_nanos)
            .max()
            .unwrap_or(first_start);
        let round_each: Vec<Duration> = started_at
            .iter()
            .zip(&died)
            .map(|(start, die)| since(*start, die.time_nanos))
            .collect();
        let round_worst = round_each.iter().max().copied().unwrap_or_default();
        // Each container's way from its `start` to stopped, from the controller's heal trace: the view and
        // the plan (→ dispatched), the lane and the re-check inspect (→ re-checked), the engine's stop
        // (→ the `die` event: SIGTERM, the 1 s timeout, SIGKILL, the exit).
        let marks = controller
            .trace
            .as_ref()
            .map(crate::trace::TraceLog::snapshot)
            .unwrap_or_default();
        let first_mark = |name: &str, stage: &str, after: i64| {
            marks
                .iter()
                .find(|mark| {
                    mark.stage == stage
                        && mark.container.as_deref() == Some(name)
                        && mark.time_nanos >= after
                })
                .map(|mark| mark.time_nanos)
        };
        let mut round_dispatch = Vec::new();
        for ((name, start), die) in names.iter().zip(&started_at).zip(&died) {
            let Some(dispatched) = first_mark(name, "dispatched", *start) else {
                continue;
            };
            round_dispatch.push(since(*start, dispatched));
            if let Some(rechecked) = first_mark(name, "rechecked", dispatched) {
                to_recheck.push(since(dispatched, rechecked));
                to_die.push(since(rechecked, die.time_nanos));
            }
        }
        round_holds.push(new_holds(&held_before, &holds(&controller).await));
        all_stopped.push(since(first_start, last_die));
        worst.push(round_worst);
        each.extend(round_each);
        eprintln!(
            "   round {}: first start → all stopped {} ms, worst start → stopped {} ms, worst start → stop \
             dispatched {} ms; controller holds meanwhile: {}",
            round + 1,
            since(first_start, last_die).as_millis(),
            round_worst.as_millis(),
            round_dispatch.iter().max().copied().unwrap_or_default().as_millis(),
            round_holds.last().unwrap_or(&Value::Null)
        );
        to_dispatch.extend(round_dispatch);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(json!({
        "unexpected": mass.stop,
        "stop_timeout_s": STOP_TIMEOUT_S,
        "rounds": mass.rounds,
        "first_start_to_all_stopped": summary(&all_stopped),
        "worst_start_to_stopped": summary(&worst),
        "each_start_to_stopped": summary(&each),
        "each_start_to_stop_dispatched": summary(&to_dispatch),
        "each_dispatched_to_rechecked": summary(&to_recheck),
        "each_rechecked_to_stopped": summary(&to_die),
        "controller_holds_per_round": round_holds,
    }))
}
