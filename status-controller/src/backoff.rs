//! Per-container backoff and quarantine, so a crash-looping container gets a few attempts a minute, not
//! dozens, and one that keeps failing is left alone until someone looks. Built on [`shared::backoff`]; pure —
//! the caller passes the clock and the randomness — so every rule is unit-tested without sleeping.
//!
//! Every attempt counts, whatever its outcome: a start that succeeded but whose container died again at once
//! failed as surely as one the engine refused. The first attempt is never delayed, so a container that
//! dies once is back within the time of one start call.
//!
//! A quarantine follows the container, not only its name: it ends early when a container with another id
//! stands under the name (recreated by someone, and not by this controller), or when the container has run
//! for longer than the backoff's quiet period (`reset_after`). See [`HealGuard::observe`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shared::backoff::{Backoff, BackoffPolicy};

/// How hard the controller tries with one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealLimits {
    /// After each attempt, the next one waits 800 ms, doubling up to 30 s (jittered over the upper half),
    /// and the count starts over after 120 s without an attempt (kube-runtime's `DefaultBackoff`).
    pub backoff: BackoffPolicy,
    /// This many attempts without a quiet period, and the container is quarantined.
    pub quarantine_after: u32,
    /// How long a quarantine lasts. Then the count starts over.
    pub quarantine_for: Duration,
}

impl Default for HealLimits {
    fn default() -> Self {
        Self {
            backoff: BackoffPolicy::default(),
            quarantine_after: 10,
            quarantine_for: Duration::from_secs(10 * 60),
        }
    }
}

/// Whether a container may be acted on now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Act now.
    Go,
    /// Not before `until`: it was acted on a moment ago.
    Wait { until: Instant },
    /// Not before `until`: it kept failing. `entered` is true until the quarantine is kept
    /// ([`HealGuard::enter_quarantine`]), so it is announced once.
    Quarantined { until: Instant, entered: bool },
}

/// A container in quarantine, for `/actions` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    pub container: String,
    pub until: Instant,
    /// Attempts before it was quarantined.
    pub attempts: u32,
}

/// Why a quarantine ended before its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarantineEnd {
    /// Another container stands under the name now.
    NewContainer,
    /// The container has run this long, past the backoff's quiet period.
    RanFor(Duration),
}

impl std::fmt::Display for QuarantineEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NewContainer => f.write_str("new container id"),
            Self::RanFor(ran) => write!(f, "ran for {} s", ran.as_secs()),
        }
    }
}

#[derive(Debug)]
struct Track {
    /// The id of the container the attempts were made on (after a recreate, the new one).
    id: String,
    backoff: Backoff,
    last_attempt: Instant,
    not_before: Instant,
    quarantined_until: Option<Instant>,
}

/// The attempts of every container the controller acted on recently, by name.
#[derive(Debug)]
pub struct HealGuard {
    limits: HealLimits,
    tracks: HashMap<String, Track>,
}

impl HealGuard {
    pub fn new(limits: HealLimits) -> Self {
        Self {
            limits,
            tracks: HashMap::new(),
        }
    }

    /// Whether `container` may be acted on at `now`. Changes nothing, so the loop may ask it of every action
    /// it plans: a verdict of a quarantine `entered` is kept by [`Self::enter_quarantine`], and a quarantine
    /// that has served its time is cleared by the next [`Self::record_attempt`].
    pub fn gate(&self, container: &str, now: Instant) -> Gate {
        let Some(track) = self.tracks.get(container) else {
            return Gate::Go;
        };
        if let Some(until) = track.quarantined_until {
            if now < until {
                return Gate::Quarantined {
                    until,
                    entered: false,
                };
            }
            // Served its time: tried again at once, whatever backoff was left when it began.
            return Gate::Go;
        }
        let quiet =
            now.saturating_duration_since(track.last_attempt) >= self.limits.backoff.reset_after;
        if !quiet && track.backoff.failures() >= self.limits.quarantine_after {
            return Gate::Quarantined {
                until: now + self.limits.quarantine_for,
                entered: true,
            };
        }
        if now < track.not_before {
            return Gate::Wait {
                until: track.not_before,
            };
        }
        Gate::Go
    }

    /// Puts `container` in quarantine until `until`, as a [`Gate::Quarantined`] verdict with `entered` said.
    pub fn enter_quarantine(&mut self, container: &str, until: Instant) {
        if let Some(track) = self.tracks.get_mut(container) {
            track.quarantined_until = Some(until);
        }
    }

    /// Records an attempt on `container` (whose id is `id`) at `now`; `jitter` in `[0, 1)` spreads its
    /// delay. Returns how long the next attempt has to wait.
    pub fn record_attempt(
        &mut self,
        container: &str,
        id: &str,
        now: Instant,
        jitter: f64,
    ) -> Duration {
        let policy = self.limits.backoff;
        let track = self
            .tracks
            .entry(container.to_owned())
            .or_insert_with(|| Track {
                id: String::new(),
                backoff: Backoff::new(policy),
                last_attempt: now,
                not_before: now,
                quarantined_until: None,
            });
        if track.quarantined_until.is_some_and(|until| until <= now) {
            // Served its time: the count starts over as if it were new.
            track.quarantined_until = None;
            track.backoff.reset();
        }
        let delay = track.backoff.fail(now, jitter);
        id.clone_into(&mut track.id);
        track.last_attempt = now;
        track.not_before = now + delay;
        delay
    }

    /// The controller itself gave `container` the id `id` (a recreate): it is still the container the
    /// attempts were made on.
    pub fn adopt_id(&mut self, container: &str, id: &str) {
        if let Some(track) = self.tracks.get_mut(container) {
            id.clone_into(&mut track.id);
        }
    }

    /// What the engine shows of `container` now: its `id`, and how long it has been running (`None` when it
    /// is not). Ends its quarantine, and forgets its attempts, when it is not the container that kept failing
    /// any more: another id stands under the name, or it has run past the backoff's quiet period. Answers
    /// why, when it ended one.
    pub fn observe(
        &mut self,
        container: &str,
        id: &str,
        running_for: Option<Duration>,
        now: Instant,
    ) -> Option<QuarantineEnd> {
        let track = self.tracks.get(container)?;
        track.quarantined_until.filter(|until| now < *until)?;
        let end = if track.id != id {
            QuarantineEnd::NewContainer
        } else {
            match running_for {
                Some(ran) if ran >= self.limits.backoff.reset_after => QuarantineEnd::RanFor(ran),
                _ => return None,
            }
        };
        self.tracks.remove(container);
        Some(end)
    }

    /// Attempts on `container` since its count last started over.
    pub fn attempts(&self, container: &str) -> u32 {
        self.tracks
            .get(container)
            .map_or(0, |track| track.backoff.failures())
    }

    /// The containers in quarantine at `now`, by name.
    pub fn quarantined(&self, now: Instant) -> Vec<Quarantine> {
        let mut quarantined: Vec<Quarantine> = self
            .tracks
            .iter()
            .filter_map(|(name, track)| {
                let until = track.quarantined_until.filter(|until| now < *until)?;
                Some(Quarantine {
                    container: name.clone(),
                    until,
                    attempts: track.backoff.failures(),
                })
            })
            .collect();
        quarantined.sort_by(|a, b| a.container.cmp(&b.container));
        quarantined
    }

    /// Forgets containers that have been quiet long enough to start over anyway, so the map stays as small as
    /// the set of containers in trouble.
    pub fn forget_quiet(&mut self, now: Instant) {
        let reset_after = self.limits.backoff.reset_after;
        self.tracks.retain(|_, track| {
            track.quarantined_until.is_some_and(|until| now < until)
                || now.saturating_duration_since(track.last_attempt) < reset_after
        });
    }

    pub fn limits(&self) -> &HealLimits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upper end of the jitter range: the longest delays.
    const SLOW: f64 = 0.999_999;

    fn guard() -> HealGuard {
        HealGuard::new(HealLimits::default())
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// What the loop does with a verdict before it acts on it: a quarantine entered is kept.
    fn check(guard: &mut HealGuard, container: &str, now: Instant) -> Gate {
        let gate = guard.gate(container, now);
        if let Gate::Quarantined {
            until,
            entered: true,
        } = gate
        {
            guard.enter_quarantine(container, until);
        }
        gate
    }

    #[test]
    fn the_first_attempt_is_never_delayed() {
        let mut guard = guard();
        assert_eq!(check(&mut guard, "web", Instant::now()), Gate::Go);
        assert_eq!(guard.attempts("web"), 0);
    }

    #[test]
    fn attempts_soon_after_one_another_back_off_exponentially() {
        let mut guard = guard();
        let start = Instant::now();
        let delays: Vec<u128> = (0..8)
            .map(|i| {
                let now = start + Duration::from_secs(i);
                guard.record_attempt("web", "web-id", now, SLOW).as_millis()
            })
            .collect();
        assert_eq!(
            delays,
            vec![799, 1599, 3199, 6399, 12799, 25599, 29999, 29999]
        );
    }

    #[test]
    fn the_gate_stays_shut_until_the_delay_has_passed() {
        let mut guard = guard();
        let now = Instant::now();
        let delay = guard.record_attempt("web", "web-id", now, SLOW);
        assert_eq!(
            check(&mut guard, "web", now + delay - ms(1)),
            Gate::Wait { until: now + delay }
        );
        assert_eq!(check(&mut guard, "web", now + delay), Gate::Go);
    }

    #[test]
    fn a_crash_loop_gets_a_few_attempts_a_minute() {
        // A container that dies 550 ms after every start, healed whenever the gate lets it.
        let mut guard = HealGuard::new(HealLimits {
            quarantine_after: u32::MAX,
            ..HealLimits::default()
        });
        let start = Instant::now();
        let mut now = start;
        let mut attempts_in_first_minute = 0;
        while now < start + Duration::from_secs(60) {
            match check(&mut guard, "loop", now) {
                Gate::Go => {
                    attempts_in_first_minute += 1;
                    guard.record_attempt("loop", "loop-id", now, 0.5);
                    now += ms(550);
                }
                Gate::Wait { until } => now = until,
                Gate::Quarantined { .. } => panic!("no quarantine configured"),
            }
        }
        // Without backoff it would be 60 / 0.55 ≈ 109.
        assert!(
            (5..=9).contains(&attempts_in_first_minute),
            "{attempts_in_first_minute} attempts"
        );
    }

    #[test]
    fn a_quiet_period_starts_the_count_over() {
        let mut guard = guard();
        let start = Instant::now();
        for i in 0..5 {
            guard.record_attempt("web", "web-id", start + Duration::from_secs(i * 40), 0.0);
        }
        assert_eq!(guard.attempts("web"), 5);
        let later = start + Duration::from_secs(4 * 40 + 120);
        assert_eq!(check(&mut guard, "web", later), Gate::Go);
        assert_eq!(guard.record_attempt("web", "web-id", later, 0.0), ms(400));
        assert_eq!(guard.attempts("web"), 1);
    }

    #[test]
    fn repeated_failures_quarantine_a_container_once() {
        let limits = HealLimits {
            quarantine_after: 3,
            quarantine_for: Duration::from_secs(600),
            ..HealLimits::default()
        };
        let mut guard = HealGuard::new(limits);
        let mut now = Instant::now();
        for _ in 0..3 {
            assert_eq!(check(&mut guard, "web", now), Gate::Go);
            now += guard.record_attempt("web", "web-id", now, 0.0);
        }
        let until = now + Duration::from_secs(600);
        assert_eq!(
            check(&mut guard, "web", now),
            Gate::Quarantined {
                until,
                entered: true
            }
        );
        assert_eq!(
            check(&mut guard, "web", now + ms(1)),
            Gate::Quarantined {
                until,
                entered: false
            },
            "announced once"
        );
        assert_eq!(
            guard.quarantined(now),
            vec![Quarantine {
                container: "web".into(),
                until,
                attempts: 3
            }]
        );
        assert_eq!(check(&mut guard, "other", now), Gate::Go, "per container");

        // Served: it may be tried again, from a fresh count.
        assert_eq!(check(&mut guard, "web", until), Gate::Go);
        assert!(guard.quarantined(until).is_empty());
        assert_eq!(guard.record_attempt("web", "web-id", until, 0.0), ms(400));
        assert_eq!(guard.attempts("web"), 1);
    }

    #[test]
    fn the_gate_changes_nothing_until_its_verdict_is_kept() {
        let mut guard = tight();
        let mut now = Instant::now();
        for _ in 0..3 {
            now += guard.record_attempt("web", "web-id", now, 0.0);
        }
        let entering = Gate::Quarantined {
            until: now + Duration::from_secs(600),
            entered: true,
        };
        assert_eq!(guard.gate("web", now), entering);
        assert_eq!(
            guard.gate("web", now),
            entering,
            "asked again: still to enter"
        );
        assert!(guard.quarantined(now).is_empty(), "not kept yet");

        guard.enter_quarantine("web", now + Duration::from_secs(600));
        let until = now + Duration::from_secs(600);
        assert_eq!(
            guard.gate("web", now + ms(1)),
            Gate::Quarantined {
                until,
                entered: false
            }
        );
        // Served, even with backoff left from before: asked any number of times, the count stays until the
        // next attempt starts it over.
        assert_eq!(guard.gate("web", until), Gate::Go);
        assert_eq!(guard.gate("web", until), Gate::Go);
        assert_eq!(guard.attempts("web"), 3);
        assert_eq!(guard.record_attempt("web", "web-id", until, 0.0), ms(400));
        assert_eq!(guard.attempts("web"), 1);
    }

    /// A guard whose `web` (id `web-id`) was just quarantined after three attempts; answers the moment.
    fn quarantined_web(guard: &mut HealGuard) -> Instant {
        let mut now = Instant::now();
        for _ in 0..3 {
            now += guard.record_attempt("web", "web-id", now, 0.0);
        }
        assert!(matches!(
            check(guard, "web", now),
            Gate::Quarantined { entered: true, .. }
        ));
        now
    }

    fn tight() -> HealGuard {
        HealGuard::new(HealLimits {
            quarantine_after: 3,
            quarantine_for: Duration::from_secs(600),
            ..HealLimits::default()
        })
    }

    #[test]
    fn a_new_container_under_the_name_ends_the_quarantine() {
        let mut guard = tight();
        let now = quarantined_web(&mut guard);
        assert_eq!(guard.observe("web", "web-id", None, now + ms(10)), None);
        assert_eq!(
            guard.observe("web", "other-id", None, now + ms(20)),
            Some(QuarantineEnd::NewContainer)
        );
        assert!(guard.quarantined(now + ms(20)).is_empty());
        assert_eq!(check(&mut guard, "web", now + ms(20)), Gate::Go, "at once");
        assert_eq!(guard.attempts("web"), 0, "a fresh count");
        assert_eq!(QuarantineEnd::NewContainer.to_string(), "new container id");
    }

    #[test]
    fn a_run_past_the_quiet_period_ends_the_quarantine() {
        let mut guard = tight();
        let now = quarantined_web(&mut guard);
        let reset_after = guard.limits().backoff.reset_after;
        assert_eq!(
            guard.observe("web", "web-id", Some(reset_after - ms(1)), now),
            None,
            "not long enough yet"
        );
        assert_eq!(
            guard.observe("web", "web-id", Some(reset_after), now),
            Some(QuarantineEnd::RanFor(reset_after))
        );
        assert_eq!(check(&mut guard, "web", now), Gate::Go);
        assert_eq!(
            QuarantineEnd::RanFor(Duration::from_secs(120)).to_string(),
            "ran for 120 s"
        );
    }

    #[test]
    fn a_recreate_by_the_controller_keeps_the_quarantine_s_container() {
        let mut guard = tight();
        let mut now = Instant::now();
        now += guard.record_attempt("web", "snapshot-id", now, 0.0);
        guard.adopt_id("web", "recreated-id");
        for _ in 0..2 {
            now += guard.record_attempt("web", "recreated-id", now, 0.0);
        }
        assert!(matches!(
            check(&mut guard, "web", now),
            Gate::Quarantined { .. }
        ));
        assert_eq!(guard.observe("web", "recreated-id", None, now), None);
        assert_eq!(
            guard.observe("unknown", "x", Some(Duration::MAX), now),
            None
        );
    }

    #[test]
    fn a_container_quiet_since_its_last_attempt_is_not_quarantined() {
        let limits = HealLimits {
            quarantine_after: 2,
            ..HealLimits::default()
        };
        let mut guard = HealGuard::new(limits);
        let start = Instant::now();
        guard.record_attempt("web", "web-id", start, 0.0);
        guard.record_attempt("web", "web-id", start + ms(500), 0.0);
        assert_eq!(
            check(&mut guard, "web", start + Duration::from_secs(200)),
            Gate::Go
        );
    }

    #[test]
    fn quiet_containers_are_forgotten() {
        let mut guard = guard();
        let start = Instant::now();
        guard.record_attempt("old", "old-id", start, 0.0);
        guard.record_attempt("new", "new-id", start + Duration::from_secs(100), 0.0);
        guard.forget_quiet(start + Duration::from_secs(130));
        assert_eq!(guard.attempts("old"), 0);
        assert_eq!(guard.attempts("new"), 1);
    }

    #[test]
    fn jitter_spreads_delays_over_the_upper_half() {
        let mut low = guard();
        let mut high = guard();
        let now = Instant::now();
        assert_eq!(low.record_attempt("a", "a-id", now, 0.0), ms(400));
        assert!(high.record_attempt("a", "a-id", now, SLOW) > ms(790));
    }
}
