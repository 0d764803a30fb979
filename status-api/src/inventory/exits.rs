//! How each container's last exit came about, read from the order of its events: an inspect cannot tell a
//! job that finished from a `docker stop` (both leave an exited container, often with code 0), but the event
//! stream can. `docker stop` sends `kill` (the stop signal), then `die`, then `stop`; `docker kill` sends
//! `kill`, then `die`; the kernel's OOM killer sends `oom` before the `die`; a process that ends by itself
//! sends a bare `die`. Pure bookkeeping, no I/O: the watch loop tells it every event in the order the engine
//! sent them, and it fills in [`ContainerStatus::exit_cause`] of whatever goes into the view.
//!
//! An exit it did not see — before status-api started, or while the stream was down — stays `unseen`: the
//! events of that run are gone, and guessing would be worse than saying so ([`shared::drift::completed`]
//! says what an unseen exit means).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use shared::{ContainerStatus, ExitCause};

/// How far before its `die` event a container's recorded `FinishedAt` may be and still be that exit: the
/// engine records the exit first and sends the event after, milliseconds later on a healthy engine, seconds
/// on a drowning one.
const EXIT_BEFORE_EVENT: TimeDelta = TimeDelta::seconds(10);

/// How far after its `die` event: only clock rounding.
const EXIT_AFTER_EVENT: TimeDelta = TimeDelta::seconds(1);

/// What the events said about one container since it last started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Track {
    /// A stop or kill was asked for (`requested`) or the OOM killer struck (`oom`) while it ran.
    asked: Option<ExitCause>,
    /// Its last exit as the events told it, and the engine's time of that `die`; `None` while it runs.
    last: Option<(ExitCause, Option<DateTime<Utc>>)>,
}

/// Every container's [`Track`], by id. Lives as long as the inventory, across reconnects.
#[derive(Debug, Default)]
pub struct Exits {
    tracks: HashMap<String, Track>,
    /// Whether the engine's events tell a stop from an exit. Podman 4's Docker-compatible stream sends a
    /// `podman stop` as a bare `died` (no `kill` before it), which would read as a job that finished: there
    /// every exit is `unseen`, and healed as before.
    untold: bool,
}

impl Exits {
    /// One event of container `id` (`action` in Docker's words, see [`crate::docker::event_action`]), at the
    /// engine's time `at`.
    pub fn event(&mut self, id: &str, action: &str, at: Option<DateTime<Utc>>) {
        if action == "destroy" {
            self.tracks.remove(id);
            return;
        }
        if !matches!(action, "kill" | "stop" | "oom" | "die" | "start") {
            return;
        }
        let track = self.tracks.entry(id.to_owned()).or_default();
        match action {
            // A `stop` comes after the `die` it caused: the exit was asked for, whatever came before.
            "stop" if track.last.is_some() => {
                if let Some((cause @ ExitCause::Natural, _)) = &mut track.last {
                    *cause = ExitCause::Requested;
                }
            }
            "kill" | "stop" => {
                track.asked.get_or_insert(ExitCause::Requested);
            }
            "oom" => track.asked = Some(ExitCause::Oom),
            "die" => {
                let cause = track.asked.take().unwrap_or(ExitCause::Natural);
                track.last = Some((cause, at));
            }
            // "start": a new run, with nothing asked yet.
            _ => *track = Track::default(),
        }
    }

    /// How the exit `status` shows came about, when the events told it: the last `die` seen, if the exit
    /// the status shows is that one (its `finished_at` matches the event's time).
    pub fn cause(&self, status: &ContainerStatus) -> Option<ExitCause> {
        let (cause, died_at) = self.tracks.get(&status.id)?.last?;
        let (Some(died_at), Some(finished_at)) = (died_at, status.finished_at) else {
            return Some(cause);
        };
        (finished_at >= died_at - EXIT_BEFORE_EVENT && finished_at <= died_at + EXIT_AFTER_EVENT)
            .then_some(cause)
    }

    /// Fills in how `status`'s last exit came about, as far as the events told it: none while it has no
    /// exit code (running, paused, never ran); an OOM kill the engine recorded stays one.
    pub fn annotate(&self, status: &mut ContainerStatus) {
        if status.exit_code.is_none() {
            status.exit_cause = None;
            return;
        }
        if status.exit_cause == Some(ExitCause::Oom) {
            return;
        }
        let told = if self.untold {
            None
        } else {
            self.cause(status)
        };
        status.exit_cause = Some(told.unwrap_or(ExitCause::Unseen));
    }

    /// Says whether the engine watched tells a stop from an exit by its events (Docker does; Podman's
    /// Docker-compatible stream does not).
    pub fn set_engine_tells_stops(&mut self, tells: bool) {
        self.untold = !tells;
    }

    /// Forgets every container but those `keep` says exist, so a `destroy` missed while the stream was down
    /// leaves nothing behind.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.tracks.retain(|id, _| keep(id));
    }

    /// How many containers are tracked (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tracks.len()
    }
}

#[cfg(test)]
mod tests {
    use shared::{ContainerState, Health};

    use super::*;

    fn at(millis: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + millis)
    }

    fn exited(finished: Option<DateTime<Utc>>) -> ContainerStatus {
        ContainerStatus {
            id: "a".into(),
            name: "job".into(),
            image: "busybox".into(),
            image_id: "sha256:1".into(),
            state: ContainerState::Exited,
            health: Health::None,
            exit_code: Some(0),
            restart_count: 0,
            created_at: None,
            started_at: None,
            finished_at: finished,
            labels: Default::default(),
            ports: Vec::new(),
            in_snapshot: false,
            policy: Default::default(),
            shares: Default::default(),
            settling: false,
            restart_policy: None,
            exit_cause: Some(ExitCause::Unseen),
            spec_changes: Vec::new(),
            tag_image_id: None,
            spec: None,
        }
    }

    /// The cause after `events` (each at its millisecond), for an exit finished at `finished`.
    fn cause_after(events: &[(&str, i64)], finished: i64) -> Option<ExitCause> {
        let mut exits = Exits::default();
        for (action, millis) in events {
            exits.event("a", action, at(*millis));
        }
        let mut status = exited(at(finished));
        exits.annotate(&mut status);
        status.exit_cause
    }

    #[test]
    fn the_order_of_the_events_tells_how_an_exit_came_about() {
        use ExitCause::{Natural, Oom, Requested, Unseen};
        type Case<'a> = (&'a str, &'a [(&'a str, i64)], Option<ExitCause>);
        let table: [Case<'_>; 9] = [
            ("a bare die", &[("start", 0), ("die", 100)], Some(Natural)),
            (
                "docker stop",
                &[("start", 0), ("kill", 50), ("die", 100), ("stop", 110)],
                Some(Requested),
            ),
            (
                "docker stop that had to kill",
                &[("kill", 50), ("kill", 99), ("die", 100), ("stop", 110)],
                Some(Requested),
            ),
            (
                "docker kill",
                &[("kill", 90), ("die", 100)],
                Some(Requested),
            ),
            (
                "a stop event after the die (Podman's order)",
                &[("die", 100), ("stop", 110)],
                Some(Requested),
            ),
            ("the OOM killer", &[("oom", 90), ("die", 100)], Some(Oom)),
            (
                "a kill in an earlier run does not count",
                &[("kill", 10), ("die", 20), ("start", 30), ("die", 100)],
                Some(Natural),
            ),
            ("nothing seen", &[], Some(Unseen)),
            ("only its start seen", &[("start", 0)], Some(Unseen)),
        ];
        for (what, events, expected) in table {
            assert_eq!(cause_after(events, 99), expected, "{what}");
        }
    }

    #[test]
    fn on_an_engine_whose_events_do_not_tell_stops_every_exit_is_unseen() {
        let mut exits = Exits::default();
        exits.set_engine_tells_stops(false);
        exits.event("a", "start", at(0));
        exits.event("a", "die", at(1_000));
        let mut status = exited(at(1_000));
        exits.annotate(&mut status);
        assert_eq!(status.exit_cause, Some(ExitCause::Unseen));
        exits.set_engine_tells_stops(true);
        exits.annotate(&mut status);
        assert_eq!(status.exit_cause, Some(ExitCause::Natural));
    }

    #[test]
    fn an_exit_other_than_the_one_seen_is_unseen() {
        // The die seen was a run ago: this exit, minutes later, happened while the stream was down.
        assert_eq!(
            cause_after(&[("kill", 0), ("die", 100)], 300_000),
            Some(ExitCause::Unseen)
        );
        // The engine records the exit a moment before it sends the event.
        assert_eq!(
            cause_after(&[("die", 5_000)], 4_990),
            Some(ExitCause::Natural)
        );
    }

    #[test]
    fn running_and_never_run_containers_have_no_cause_and_an_oom_stays_one() {
        let mut exits = Exits::default();
        exits.event("a", "die", at(100));
        let mut running = exited(None);
        running.state = ContainerState::Running;
        running.exit_code = None;
        exits.annotate(&mut running);
        assert_eq!(running.exit_cause, None);

        let mut oom = exited(at(100));
        oom.exit_cause = Some(ExitCause::Oom);
        exits.annotate(&mut oom);
        assert_eq!(oom.exit_cause, Some(ExitCause::Oom));
    }

    #[test]
    fn a_destroyed_container_is_forgotten_and_other_events_change_nothing() {
        let mut exits = Exits::default();
        exits.event("a", "die", at(1));
        exits.event("a", "rename", at(2));
        exits.event("a", "health_status", at(3));
        assert_eq!(exits.cause(&exited(at(1))), Some(ExitCause::Natural));
        exits.event("a", "destroy", at(4));
        assert_eq!(exits.len(), 0);
        exits.event("b", "rename", at(5));
        assert_eq!(
            exits.len(),
            0,
            "nothing kept for events that say nothing of exits"
        );

        exits.event("c", "die", at(6));
        exits.event("d", "die", at(7));
        exits.retain(|id| id == "d");
        assert_eq!(exits.len(), 1, "a re-list no longer finds c");
    }
}
