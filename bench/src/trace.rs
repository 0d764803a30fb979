//! Where one heal's time goes: the debug events both programs write under their `heal_trace` targets
//! (`RUST_LOG=status_api::heal_trace=debug,status_controller::heal_trace=debug`), read from their JSON logs,
//! put beside the engine's own `die` and `start` timestamps. Each trial is one container killed with
//! `kill -9`; its milestones are the first of each step after the one before it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStdout;

use crate::stats::summary;

/// What turns the trace on, and keeps every other line at warnings.
pub const RUST_LOG: &str = "warn,status_api::heal_trace=debug,status_controller::heal_trace=debug";

/// One trace event: which step, of which container, when (host clock, ns since the epoch).
#[derive(Debug, Clone)]
pub struct Mark {
    pub stage: String,
    /// status-api names the container by id, the controller by name; `answered` has none.
    pub container: Option<String>,
    pub action: Option<String>,
    pub time_nanos: i64,
}

/// The trace events a program wrote, collected as it writes them. Lines that are not trace events (warnings)
/// pass through to the benchmark's stderr.
#[derive(Debug, Clone, Default)]
pub struct TraceLog {
    marks: Arc<Mutex<Vec<Mark>>>,
}

impl TraceLog {
    /// Reads the program's log lines from `stdout` until it closes.
    pub fn follow(&self, stdout: ChildStdout) {
        let marks = self.marks.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match parse(&line) {
                    Some(mark) => marks
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(mark),
                    None => eprintln!("{line}"),
                }
            }
        });
    }

    pub fn snapshot(&self) -> Vec<Mark> {
        self.marks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

fn parse(line: &str) -> Option<Mark> {
    let value: Value = serde_json::from_str(line).ok()?;
    if !value["target"].as_str()?.ends_with("::heal_trace") {
        return None;
    }
    let time = chrono::DateTime::parse_from_rfc3339(value["timestamp"].as_str()?).ok()?;
    Some(Mark {
        stage: value["stage"].as_str()?.to_owned(),
        container: value["container"].as_str().map(str::to_owned),
        action: value["action"].as_str().map(str::to_owned),
        time_nanos: time.timestamp_nanos_opt()?,
    })
}

/// One trial: the container (id and name), when it was killed, and the engine's `die` and `start` times.
#[derive(Debug, Clone)]
pub struct Trial {
    pub id: String,
    pub name: String,
    pub killed: i64,
    pub died: i64,
    pub started: i64,
}

/// The milestones of a heal, in order: a label, which log, the step and action, and whether the
/// container is named by id (status-api) or by name (the controller).
const MILESTONES: [(&str, Source, &str, Option<&str>); 7] = [
    (
        "status-api received the `die` event",
        Source::Api,
        "event",
        Some("die"),
    ),
    (
        "view shows it exited (settling)",
        Source::Api,
        "foreseen",
        Some("die"),
    ),
    (
        "view shows its inspect (settled)",
        Source::Api,
        "inspected",
        None,
    ),
    (
        "controller's long poll answered",
        Source::Controller,
        "answered",
        None,
    ),
    (
        "start dispatched",
        Source::Controller,
        "dispatched",
        Some("start"),
    ),
    (
        "re-check inspect answered",
        Source::Controller,
        "rechecked",
        Some("start"),
    ),
    (
        "start call returned",
        Source::Controller,
        "called",
        Some("start"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Api,
    Controller,
}

/// The median time of each milestone after the kill, and after the milestone before it, over the trials
/// where every milestone was found.
pub fn breakdown(trials: &[Trial], api: &TraceLog, controller: &TraceLog) -> Value {
    let (api, controller) = (api.snapshot(), controller.snapshot());
    let mut since_kill: Vec<Vec<Duration>> = vec![Vec::new(); MILESTONES.len() + 2];
    let mut complete = 0;
    for trial in trials {
        let Some(times) = milestones(trial, &api, &controller) else {
            continue;
        };
        complete += 1;
        for (slot, time) in since_kill.iter_mut().zip(times) {
            slot.push(Duration::from_nanos(
                u64::try_from(time - trial.killed).unwrap_or(0),
            ));
        }
    }
    let (before_start, last) = MILESTONES.split_at(MILESTONES.len() - 1);
    let labels = std::iter::once("engine `die` event")
        .chain(before_start.iter().map(|(label, ..)| *label))
        .chain(["engine `start` event"])
        .chain(last.iter().map(|(label, ..)| *label));
    let mut previous = 0.0;
    let steps: Vec<Value> = labels
        .zip(&since_kill)
        .map(|(label, samples)| {
            let at = summary(samples)["p50_ms"].as_f64().unwrap_or(f64::NAN);
            let step = json!({
                "milestone": label,
                "p50_since_kill_ms": at,
                "p50_step_ms": ((at - previous) * 10.0).round() / 10.0,
            });
            previous = at;
            step
        })
        .collect();
    let count = |marks: &[Mark]| {
        let mut stages = std::collections::BTreeMap::<&str, usize>::new();
        for mark in marks {
            *stages.entry(mark.stage.as_str()).or_default() += 1;
        }
        json!(stages)
    };
    json!({
        "trials": trials.len(),
        "traced": complete,
        "steps": steps,
        "marks": {"status_api": count(&api), "status_controller": count(&controller)},
    })
}

/// The time of every milestone of one trial in the order they happen: `die`, the traced steps up to the
/// re-check, the engine's `start` event, the start call's return; `None` when a step is missing (a heal
/// that took another path).
fn milestones(trial: &Trial, api: &[Mark], controller: &[Mark]) -> Option<Vec<i64>> {
    let mut times = vec![trial.died];
    let mut after = trial.killed;
    for (_, source, stage, action) in MILESTONES {
        let (marks, who) = match source {
            Source::Api => (api, trial.id.as_str()),
            Source::Controller => (controller, trial.name.as_str()),
        };
        let found = marks.iter().find(|mark| {
            mark.time_nanos >= after
                && mark.stage == stage
                && action.is_none_or(|action| mark.action.as_deref() == Some(action))
                && mark
                    .container
                    .as_deref()
                    .is_none_or(|container| container == who)
        })?;
        after = found.time_nanos;
        times.push(found.time_nanos);
    }
    // The engine says `start` just before the start call returns.
    times.insert(times.len() - 1, trial.started);
    Some(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(stage: &str, container: Option<&str>, action: Option<&str>, at: i64) -> Mark {
        Mark {
            stage: stage.to_owned(),
            container: container.map(str::to_owned),
            action: action.map(str::to_owned),
            time_nanos: at,
        }
    }

    #[test]
    fn a_trace_line_is_read_and_other_lines_are_not() {
        let line = r#"{"timestamp":"2026-12-02T13:00:00.250000Z","level":"DEBUG","message":"engine event","container":"abc","action":"die","stage":"event","target":"status_api::heal_trace"}"#;
        let parsed = parse(line).expect("a trace line");
        assert_eq!(parsed.stage, "event");
        assert_eq!(parsed.container.as_deref(), Some("abc"));
        assert_eq!(parsed.time_nanos % 1_000_000_000, 250_000_000);
        assert!(parse(r#"{"target":"status_api::inventory","stage":"event"}"#).is_none());
        assert!(parse("not json").is_none());
    }

    #[test]
    fn milestones_are_taken_in_order_and_for_the_right_container() {
        let ms = 1_000_000;
        let api = vec![
            mark("event", Some("other"), Some("die"), 20 * ms),
            mark("event", Some("id1"), Some("die"), 31 * ms),
            mark("foreseen", Some("id1"), Some("die"), 32 * ms),
            mark("inspected", Some("id1"), None, 60 * ms),
        ];
        let controller = vec![
            // Answered before the inspect: not the answer that led to the start.
            mark("answered", None, None, 33 * ms),
            mark("answered", None, None, 62 * ms),
            mark("dispatched", Some("web"), Some("start"), 63 * ms),
            mark("rechecked", Some("web"), Some("start"), 66 * ms),
            mark("called", Some("web"), Some("start"), 300 * ms),
        ];
        let trial = Trial {
            id: "id1".into(),
            name: "web".into(),
            killed: 0,
            died: 30 * ms,
            started: 290 * ms,
        };
        let times = milestones(&trial, &api, &controller).expect("complete");
        assert_eq!(
            times,
            [30, 31, 32, 60, 62, 63, 66, 290, 300].map(|t| t * ms)
        );
        let log = |marks: Vec<Mark>| TraceLog {
            marks: Arc::new(Mutex::new(marks)),
        };
        let result = breakdown(&[trial], &log(api), &log(controller));
        assert_eq!(result["traced"], 1);
        assert_eq!(result["steps"][3]["p50_step_ms"], 28.0);
        assert_eq!(result["steps"][7]["milestone"], "engine `start` event");
        assert_eq!(result["steps"][8]["p50_step_ms"], 10.0);
    }
}
