//! The bookkeeping that lets engine events be applied concurrently without reordering them: which
//! containers have events waiting, which have an inspect in flight, and how many events are not yet applied.
//! It does no I/O: the watch loop asks it for the next inspect to start and tells it when one answered.
//!
//! The rules: at most [`MAX_IN_FLIGHT`] inspects at once; at most one per container, so a container's events
//! are applied in the order they came; and the events that arrive for a container while its inspect is in
//! flight wait as one batch, answered by one inspect started after the last of them — an inspect reads the
//! newest state, so it answers every event before it.
//!
//! The backlog counts only the events whose effect is not in the view yet. An event that already told the
//! view its effect ([`super::Inventory::foresee`]: `start`, `die`, `pause`, `unpause`, a `create`) still gets
//! its inspect, which fills in the rest, but the view is not behind the engine on its account.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

/// How many inspects for events run at once: enough to keep up with a burst on a slow engine, few enough
/// not to crowd out its other clients.
pub const MAX_IN_FLIGHT: usize = 16;

/// Events of one container that one inspect answers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The engine's time of each event whose effect waits for this inspect, in the order they came
    /// (`None` when the engine gave none).
    pub times: Vec<Option<DateTime<Utc>>>,
    /// Events whose effect the view already shows, which this inspect only completes.
    pub known: usize,
    /// One of them was `destroy`: the container is gone and needs no inspect.
    pub destroyed: bool,
}

impl Batch {
    fn oldest(&self) -> Option<DateTime<Utc>> {
        self.times.iter().flatten().min().copied()
    }

    /// How many events this inspect answers.
    pub fn len(&self) -> usize {
        self.times.len() + self.known
    }
}

/// What waits for one container.
#[derive(Debug, Default)]
struct Pending {
    /// The engine time of the oldest event of the batch in flight; `in_flight` says whether there is one.
    in_flight: bool,
    in_flight_oldest: Option<DateTime<Utc>>,
    in_flight_events: usize,
    /// Events that came after the inspect in flight started.
    queued: Option<Batch>,
}

/// The applier's state for one connection to the engine.
#[derive(Debug, Default)]
pub struct Applier {
    pending: HashMap<String, Pending>,
    /// Containers with a batch queued and no inspect in flight, first come first served.
    ready: VecDeque<String>,
    in_flight: usize,
    backlog: usize,
}

impl Applier {
    /// One event received for container `id`, dated `time` by the engine, its effect not in the view yet.
    pub fn receive(&mut self, id: &str, time: Option<DateTime<Utc>>, destroyed: bool) {
        self.backlog += 1;
        let batch = self.batch_for(id);
        batch.times.push(time);
        batch.destroyed |= destroyed;
    }

    /// One event received for container `id` whose effect the view already shows: it is inspected like
    /// any other, but it is not backlog.
    pub fn receive_known(&mut self, id: &str) {
        self.batch_for(id).known += 1;
    }

    /// The batch queued for `id`, made and put in line if there is none.
    fn batch_for(&mut self, id: &str) -> &mut Batch {
        let pending = self.pending.entry(id.to_owned()).or_default();
        let first = pending.queued.is_none();
        if first && !pending.in_flight {
            self.ready.push_back(id.to_owned());
        }
        pending.queued.get_or_insert_with(Batch::default)
    }

    /// The next inspect to start, if the bound allows one and a container waits.
    pub fn next_job(&mut self) -> Option<(String, Batch)> {
        if self.in_flight >= MAX_IN_FLIGHT {
            return None;
        }
        let id = self.ready.pop_front()?;
        let pending = self.pending.get_mut(&id)?;
        let batch = pending.queued.take()?;
        pending.in_flight = true;
        pending.in_flight_oldest = batch.oldest();
        pending.in_flight_events = batch.times.len();
        self.in_flight += 1;
        Some((id, batch))
    }

    /// The inspect for `id` answered and its batch is applied. Events that came meanwhile are queued again.
    pub fn finish(&mut self, id: &str) {
        let Some(pending) = self.pending.get_mut(id) else {
            return;
        };
        if !pending.in_flight {
            return;
        }
        self.in_flight -= 1;
        self.backlog -= pending.in_flight_events;
        pending.in_flight = false;
        pending.in_flight_oldest = None;
        pending.in_flight_events = 0;
        if pending.queued.is_some() {
            self.ready.push_back(id.to_owned());
        } else {
            self.pending.remove(id);
        }
    }

    /// Whether events of `id` wait for an inspect of their own: one that will read newer state than any
    /// inspect of it that answered before it started.
    pub fn is_waiting(&self, id: &str) -> bool {
        self.pending
            .get(id)
            .is_some_and(|pending| pending.queued.is_some())
    }

    /// The containers with events not yet applied (queued or in flight).
    pub fn pending_ids(&self) -> impl Iterator<Item = &String> {
        self.pending.keys()
    }

    /// Events received whose effect is not in the view yet.
    pub fn backlog(&self) -> usize {
        self.backlog
    }

    /// Inspects in flight.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The engine time of the oldest event whose effect is not in the view yet.
    pub fn oldest(&self) -> Option<DateTime<Utc>> {
        self.pending
            .values()
            .flat_map(|pending| {
                [
                    pending.in_flight_oldest,
                    pending.queued.as_ref().and_then(Batch::oldest),
                ]
            })
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_800_000_000 + second, 0)
    }

    #[test]
    fn one_inspect_per_container_and_the_events_meanwhile_become_one_batch() {
        let mut applier = Applier::default();
        applier.receive("a", at(1), false);
        let (id, first) = applier.next_job().expect("a waits");
        assert_eq!((id.as_str(), first.times.len()), ("a", 1));
        for second in 2..=4 {
            applier.receive("a", at(second), false);
        }
        assert_eq!(applier.next_job(), None, "a has an inspect in flight");
        assert_eq!(applier.backlog(), 4);
        assert_eq!(applier.oldest(), at(1));

        applier.finish("a");
        assert_eq!(applier.backlog(), 3);
        let (_, batch) = applier.next_job().expect("the three that came meanwhile");
        assert_eq!(batch.times, vec![at(2), at(3), at(4)]);
        applier.finish("a");
        assert_eq!((applier.backlog(), applier.oldest()), (0, None));
        assert_eq!(applier.next_job(), None);
    }

    #[test]
    fn at_most_the_bound_run_at_once_first_come_first_served() {
        let mut applier = Applier::default();
        let ids: Vec<String> = (0..MAX_IN_FLIGHT + 4).map(|n| format!("c{n}")).collect();
        for id in &ids {
            applier.receive(id, at(0), false);
        }
        let started: Vec<String> =
            std::iter::from_fn(|| applier.next_job().map(|(id, _)| id)).collect();
        assert_eq!(started, ids[..MAX_IN_FLIGHT]);
        assert_eq!(applier.in_flight(), MAX_IN_FLIGHT);

        applier.finish("c3");
        let (next, _) = applier.next_job().expect("a slot is free");
        assert_eq!(next, ids[MAX_IN_FLIGHT]);
        assert_eq!(applier.next_job(), None);
    }

    #[test]
    fn an_event_the_view_already_shows_is_inspected_but_is_no_backlog() {
        let mut applier = Applier::default();
        applier.receive_known("a");
        assert_eq!((applier.backlog(), applier.oldest()), (0, None));
        let (id, batch) = applier.next_job().expect("a is inspected all the same");
        assert_eq!((id.as_str(), batch.len(), batch.times.len()), ("a", 1, 0));

        // Meanwhile: one known event and one the view has not seen; only the latter is behind.
        applier.receive_known("a");
        applier.receive("a", at(7), false);
        assert_eq!((applier.backlog(), applier.oldest()), (1, at(7)));
        applier.finish("a");
        assert_eq!(
            applier.backlog(),
            1,
            "the in-flight batch had no backlog to take away"
        );
        let (_, batch) = applier.next_job().expect("the two that came meanwhile");
        assert_eq!((batch.len(), batch.known), (2, 1));
        applier.finish("a");
        assert_eq!((applier.backlog(), applier.oldest()), (0, None));
        assert!(applier.pending_ids().next().is_none());
    }

    #[test]
    fn a_destroy_anywhere_in_a_batch_marks_it_gone() {
        let mut applier = Applier::default();
        applier.receive("a", at(1), false);
        applier.receive("a", at(2), true);
        let (_, batch) = applier.next_job().expect("a waits");
        assert!(batch.destroyed);
    }
}
