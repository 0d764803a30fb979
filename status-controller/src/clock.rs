//! The loop's clock, which the executor reads too: monotonic time for backoff, wake-ups and how long an action
//! or a heal took, wall time for freshness and `/actions`. The real one follows tokio's clock, so tests that
//! pause tokio's time also pause the loop's.

use std::time::Instant;

use chrono::{DateTime, Utc};

/// Where the loop reads the time.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now, for backoff and wake-ups.
    fn now(&self) -> Instant;
    /// Wall-clock now, to compare with status-api's `observed_at`.
    fn utc(&self) -> DateTime<Utc>;
}

/// tokio's monotonic clock (paused in tests with `tokio::time::pause()`) and the system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Sleeps until `at` on tokio's clock, or forever when there is nothing to wake for: a `select!` branch that
/// fires only when a wake-up is due.
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
