//! When the synthetic engine sends an event and to which container: a steady rate, every other event to a
//! probe container (whose lag the bench measures), the containers of each kind taken in turn so that one
//! container's events are as far apart as the rate allows. Pure: the time is an input.

use std::time::Duration;

use super::fleet::is_probe;

/// Which container gets each next event.
#[derive(Debug, Clone)]
pub struct Schedule {
    probes: Vec<usize>,
    others: Vec<usize>,
    sent: u64,
}

impl Schedule {
    /// For a fleet of `count` containers.
    pub fn new(count: usize) -> Self {
        let (probes, others) = (0..count).partition(|&index| is_probe(index));
        Self {
            probes,
            others,
            sent: 0,
        }
    }

    /// The container the next event goes to: probes and others by turns (probes only when there are no
    /// others, and the reverse), each kind round-robin.
    pub fn next_container(&mut self) -> Option<usize> {
        let turn = self.sent;
        self.sent += 1;
        let (first, second) = if turn.is_multiple_of(2) {
            (&self.probes, &self.others)
        } else {
            (&self.others, &self.probes)
        };
        let pool = if first.is_empty() { second } else { first };
        (!pool.is_empty()).then(|| pool[usize::try_from(turn / 2).unwrap_or(0) % pool.len()])
    }
}

/// How many events are due `elapsed` into a run at `rate` per second when `sent` have gone: the ones whose
/// time has come (event k is due at k / rate), never more than `burst` at once, so that an emitter that fell
/// behind catches up in steps instead of one flood.
pub fn due(elapsed: Duration, rate: f64, sent: u64, burst: u64) -> u64 {
    // Event k (from 0) is due at k / rate: by `elapsed`, floor(elapsed × rate) + 1 of them.
    let by_now = (elapsed.as_secs_f64() * rate).floor() as u64 + 1;
    by_now.saturating_sub(sent).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_others_take_turns_each_round_robin() {
        let mut schedule = Schedule::new(30);
        let picked: Vec<usize> = (0..8).filter_map(|_| schedule.next_container()).collect();
        // Probes are 0, 10, 20; the others the rest.
        assert_eq!(picked, vec![0, 1, 10, 2, 20, 3, 0, 4]);
    }

    #[test]
    fn a_fleet_of_one_kind_still_gets_every_event() {
        let mut schedule = Schedule::new(1);
        assert_eq!(schedule.next_container(), Some(0));
        assert_eq!(schedule.next_container(), Some(0));
        assert_eq!(Schedule::new(0).next_container(), None);
    }

    #[test]
    fn one_container_s_events_are_as_far_apart_as_the_fleet_allows() {
        let mut schedule = Schedule::new(1000);
        let picks: Vec<usize> = (0..4000)
            .filter_map(|_| schedule.next_container())
            .collect();
        let at: Vec<usize> = picks
            .iter()
            .enumerate()
            .filter(|(_, &c)| c == 10)
            .map(|(i, _)| i)
            .collect();
        // 100 probes by turns: every 200th event.
        assert!(at.windows(2).all(|pair| pair[1] - pair[0] == 200), "{at:?}");
    }

    #[test]
    fn events_fall_due_at_the_rate_and_a_late_emitter_catches_up_in_bursts() {
        let ms = Duration::from_millis;
        assert_eq!(due(ms(0), 100.0, 0, 64), 1);
        assert_eq!(due(ms(0), 100.0, 1, 64), 0);
        assert_eq!(due(ms(95), 100.0, 1, 64), 9);
        assert_eq!(due(ms(1000), 2000.0, 1000, 64), 64);
        assert_eq!(due(ms(1000), 2000.0, 2001, 64), 0);
        // Over a second at 500/s: 500 (+ the one at 0).
        let mut sent = 0;
        for tick in 0..=1000 {
            sent += due(ms(tick), 500.0, sent, 64);
        }
        assert_eq!(sent, 501);
    }
}
