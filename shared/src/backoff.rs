//! Exponential backoff with jitter, capped, reset after a quiet period — for reconnects and for
//! crash-looping containers alike. Pure: the caller passes the clock and the randomness, so every rule is
//! unit-tested without sleeping.

use std::time::{Duration, Instant};

/// The shape of a backoff. The default follows kube-runtime's: 800 ms, doubling, at most 30 s, forgotten
/// after 120 s without a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// A failure this long after the previous one starts again from `initial`.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(120),
        }
    }
}

/// The state of one backoff: how many failures in a row, and when the last one was.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    failures: u32,
    last_failure: Option<Instant>,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            last_failure: None,
        }
    }

    /// Records a failure at `now` and returns how long to wait before the next try. `jitter` in `[0, 1)`
    /// spreads the wait over its upper half (`[d/2, d)`), so many waiters do not retry in step.
    pub fn fail(&mut self, now: Instant, jitter: f64) -> Duration {
        if self
            .last_failure
            .is_some_and(|last| now.saturating_duration_since(last) >= self.policy.reset_after)
        {
            self.failures = 0;
        }
        self.last_failure = Some(now);
        let exponent = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let full = self
            .policy
            .initial
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.policy.max);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
            .max(self.policy.initial / 2)
    }

    /// Forgets every failure (after a success that proves the trouble is over).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.last_failure = None;
    }

    /// Failures in a row since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BackoffPolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let now = Instant::now();
        let waits: Vec<u128> = (0..8)
            .map(|i| {
                backoff
                    .fail(now + Duration::from_secs(i), 0.999_999)
                    .as_millis()
            })
            .collect();
        assert_eq!(
            waits,
            vec![799, 1599, 3199, 6399, 12799, 25599, 29999, 29999]
        );
    }

    #[test]
    fn jitter_spreads_over_the_upper_half() {
        let mut low = Backoff::default();
        let mut high = Backoff::default();
        let now = Instant::now();
        assert_eq!(low.fail(now, 0.0), Duration::from_millis(400));
        assert!(high.fail(now, 0.99) > Duration::from_millis(790));
    }

    #[test]
    fn a_quiet_period_resets_it() {
        let mut backoff = Backoff::default();
        let start = Instant::now();
        for i in 0..5 {
            backoff.fail(start + Duration::from_secs(i), 0.0);
        }
        assert_eq!(backoff.failures(), 5);
        let later = start + Duration::from_secs(4 + 120);
        assert_eq!(backoff.fail(later, 0.0), Duration::from_millis(400));
        assert_eq!(backoff.failures(), 1);
    }

    #[test]
    fn reset_forgets() {
        let mut backoff = Backoff::default();
        backoff.fail(Instant::now(), 0.5);
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
    }
}
