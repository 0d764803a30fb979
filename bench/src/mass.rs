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
        procs::Logs::HealTrace,
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

/// When `container` (a name, or an id for status-api) first reached `stage` at or after `after`, by the trace.
fn first_mark(
    marks: &[crate::trace::Mark],
    container: &str,
    stage: &str,
    after: i64,
) -> Option<i64> {
    marks
        .iter()
        .find(|mark| {
            mark.stage == stage
                && mark.container.as_deref() == Some(container)
                && mark.time_nanos >= after
        })
        .map(|mark| mark.time_nanos)
}

/// One round's kill: when, and when each container died and ran again (engine event times, ns).
struct Killed {
    at: i64,
    died: Vec<i64>,
    started: Vec<i64>,
}

impl Killed {
    /// Kill → running, for each container.
    fn each(&self) -> Vec<Duration> {
        self.started.iter().map(|&t| since(self.at, t)).collect()
    }

    /// Kill → the last one running.
    fn all(&self) -> Duration {
        self.each().into_iter().max().unwrap_or_default()
    }

    /// Each container's `die` → `start`.
    fn died_to_started(&self) -> impl Iterator<Item = Duration> + '_ {
        self.died
            .iter()
            .zip(&self.started)
            .map(|(&died, &started)| since(died, started))
    }
}

/// Kills every one of `ids` in one `kill -9` and waits until each runs again.
async fn kill_all_and_wait(
    docker: &Docker,
    events: &Recorder,
    ids: &[String],
) -> anyhow::Result<Killed> {
    let mut pids = Vec::with_capacity(ids.len());
    for id in ids {
        pids.push(main_pid(docker, id).await?);
    }
    let killed = now_nanos();
    kill_9_all(&pids).await?;
    let died = first_each(events, ids, &vec![killed; ids.len()], "die").await?;
    let died: Vec<i64> = died.iter().map(|e| e.time_nanos).collect();
    let started = first_each(events, ids, &died, "start").await?;
    Ok(Killed {
        at: killed,
        died,
        started: started.iter().map(|e| e.time_nanos).collect(),
    })
}

/// Where a mass heal's time went, member by member: the engine's `die` → status-api reading it from the
/// event stream, → status-api's inspect answered (until then the member shows `settling`: the engine holds
/// its lock while it cleans up after the exit), → the controller dispatching the start (the long poll, the
/// plan), → a heal lane free, → the re-check inspect answered, → the engine's `start` (the start call inside
/// the engine, queued behind the others). Beside it, the same containers' way under `--restart always`:
/// `die` → `start`, all inside the engine.
#[derive(Default)]
struct Stages {
    to_event: Vec<Duration>,
    to_inspected: Vec<Duration>,
    to_dispatched: Vec<Duration>,
    to_lane: Vec<Duration>,
    to_rechecked: Vec<Duration>,
    to_started: Vec<Duration>,
    /// The same stages for the member that ran last in each round: what the round's figure is made of.
    last: Vec<Value>,
}

impl Stages {
    /// One round: the members' `names` and `ids`, the kill, and the two programs' heal-trace `marks`.
    fn add_round(
        &mut self,
        (names, ids): (&[String], &[String]),
        killed: &Killed,
        marks: &[crate::trace::Mark],
    ) {
        let first_mark =
            |name: &str, stage: &str, after: i64| first_mark(marks, name, stage, after);
        let mut last: Option<(i64, Value)> = None;
        let members = names.iter().zip(ids).zip(&killed.died).zip(&killed.started);
        for (((name, id), &died), &started) in members {
            // status-api's marks: by id; its `event` mark is of any action, the die's is the first after it.
            let (Some(event), Some(dispatched)) = (
                first_mark(id, "event", died),
                first_mark(name, "dispatched", died),
            ) else {
                continue;
            };
            let inspected = first_mark(id, "inspected", event).unwrap_or(event);
            self.to_event.push(since(died, event));
            self.to_inspected.push(since(event, inspected));
            let Some(lane) = first_mark(name, "lane", dispatched) else {
                continue;
            };
            let Some(rechecked) = first_mark(name, "rechecked", lane) else {
                continue;
            };
            let stages = [
                since(died, dispatched),
                since(dispatched, lane),
                since(lane, rechecked),
                since(rechecked, started),
            ];
            self.to_dispatched.push(stages[0]);
            self.to_lane.push(stages[1]);
            self.to_rechecked.push(stages[2]);
            self.to_started.push(stages[3]);
            if last.as_ref().is_none_or(|(at, _)| started > *at) {
                let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
                last = Some((
                    started,
                    json!({
                        "kill_to_die_ms": ms(since(killed.at, died)),
                        "die_to_event_ms": ms(since(died, event)),
                        "event_to_inspected_ms": ms(since(event, inspected)),
                        "die_to_dispatched_ms": ms(stages[0]),
                        "dispatched_to_lane_ms": ms(stages[1]),
                        "lane_to_rechecked_ms": ms(stages[2]),
                        "rechecked_to_start_ms": ms(stages[3]),
                    }),
                ));
            }
        }
        self.last
            .push(last.map(|(_, stages)| stages).unwrap_or(Value::Null));
    }

    fn report(&self) -> Value {
        json!({
            "die_to_event": summary(&self.to_event),
            "event_to_inspected": summary(&self.to_inspected),
            "die_to_dispatched": summary(&self.to_dispatched),
            "dispatched_to_lane": summary(&self.to_lane),
            "lane_to_rechecked": summary(&self.to_rechecked),
            "rechecked_to_start": summary(&self.to_started),
            "last_member_per_round": self.last,
        })
    }
}

/// Mass heal: rounds of N members killed at once, and as many of N `--restart always` containers. The two
/// go first in turn (dockstate in rounds 1 and 3, Docker in round 2), so neither always meets an engine
/// still settling from the other.
pub async fn heal(docker: &Docker, bin_dir: &Path, mass: Mass) -> anyhow::Result<Value> {
    let managed = TestScope::new();
    let plain = TestScope::new();
    let work = Workdir::new()?;
    let names = |scope: &TestScope, round: usize| -> Vec<String> {
        (0..mass.heal)
            .map(|i| scope.name(&format!("mass-{round}-{i}")))
            .collect()
    };
    let create = |scope: &TestScope, round: usize, restart_always: bool| {
        let names = names(scope, round);
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
    let (api, controller) = start_pair(bin_dir, &managed, &work).await?;
    let managed_events = Recorder::start(docker, &managed.label()).await?;
    let mut round_holds = Vec::new();
    let plain_events = Recorder::start(docker, &plain.label()).await?;

    let (mut healed_all, mut restarted_all) = (Vec::new(), Vec::new());
    let (mut healed_each, mut restarted_each) = (Vec::new(), Vec::new());
    let (mut stages, mut engine_restart) = (Stages::default(), Vec::new());
    for (round, (members, restarting)) in members.iter().zip(&restarting).enumerate() {
        let dockstate_first = round % 2 == 0;
        let mut healed = None;
        let mut restarted = None;
        for dockstate_turn in [dockstate_first, !dockstate_first] {
            if dockstate_turn {
                let held_before = holds(&controller).await;
                let killed = kill_all_and_wait(docker, &managed_events, members).await?;
                round_holds.push(new_holds(&held_before, &holds(&controller).await));
                let marks: Vec<_> = [&api, &controller]
                    .iter()
                    .filter_map(|program| program.trace.as_ref())
                    .flat_map(crate::trace::TraceLog::snapshot)
                    .collect();
                stages.add_round((&names(&managed, round), members), &killed, &marks);
                healed = Some(killed);
            } else {
                let killed = kill_all_and_wait(docker, &plain_events, restarting).await?;
                engine_restart.extend(killed.died_to_started());
                restarted = Some(killed);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (Some(healed), Some(restarted)) = (healed, restarted) else {
            unreachable!("each round runs both");
        };
        eprintln!(
            "   round {} ({} first): dockstate {} ms, --restart always {} ms (ratio {:.2}); last member \
             healed: {}; controller holds meanwhile: {}",
            round + 1,
            if dockstate_first { "dockstate" } else { "Docker" },
            healed.all().as_millis(),
            restarted.all().as_millis(),
            healed.all().as_secs_f64() / restarted.all().as_secs_f64(),
            stages.last.last().unwrap_or(&Value::Null),
            round_holds.last().unwrap_or(&Value::Null)
        );
        healed_all.push(healed.all());
        healed_each.extend(healed.each());
        restarted_all.push(restarted.all());
        restarted_each.extend(restarted.each());
    }
    let mut report = heal_report(&healed_all, &restarted_all);
    report["members"] = json!(mass.heal);
    report["rounds"] = json!(mass.rounds);
    report["dockstate_each"] = summary(&healed_each);
    report["docker_restart_each"] = summary(&restarted_each);
    report["dockstate_stages"] = stages.report();
    report["docker_restart_die_to_start"] = summary(&engine_restart);
    report["controller_holds_per_round"] = json!(round_holds);
    Ok(report)
}

/// Kill → all running, dockstate against `--restart always`: each side's summary and their ratios.
fn heal_report(healed_all: &[Duration], restarted_all: &[Duration]) -> Value {
    let dockstate = summary(healed_all);
    let docker_restart = summary(restarted_all);
    let ratio = |key: &str| {
        let ratio = dockstate[key].as_f64().unwrap_or(f64::NAN)
            / docker_restart[key].as_f64().unwrap_or(f64::NAN);
        (ratio * 100.0).round() / 100.0
    };
    let per_round: Vec<f64> = healed_all
        .iter()
        .zip(restarted_all)
        .map(|(healed, restarted)| {
            (healed.as_secs_f64() / restarted.as_secs_f64() * 100.0).round() / 100.0
        })
        .collect();
    json!({
        "ratio_p50": ratio("p50_ms"),
        "ratio_max": ratio("max_ms"),
        "ratio_per_round": per_round,
        "dockstate_all_running": dockstate,
        "docker_restart_all_running": docker_restart,
    })
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
        let first_mark =
            |name: &str, stage: &str, after: i64| first_mark(&marks, name, stage, after);
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
