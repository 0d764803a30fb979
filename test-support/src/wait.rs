//! Waiting for a condition with a bounded poll, so tests never sleep a fixed time and hope.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

/// How often [`wait_until`] asks again.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Calls `check` at once and then every 20 ms until it returns `Ok(true)`, and returns how long that took.
///
/// `Ok(false)` and `Err(_)` both mean "not yet": a check often inspects a container that is, for a moment,
/// being removed or recreated, and that must not fail the test. The last error is reported if time runs out,
/// as `timed out after <timeout> waiting for <what>`. A check that hangs is cut off at the deadline too.
pub async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let mut last_error = None;
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(true)) => return Ok(start.elapsed()),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => last_error = Some(e),
            Err(_elapsed) => break,
        }
        if Instant::now() + POLL_EVERY > deadline {
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    match last_error {
        Some(e) => bail!("timed out after {timeout:?} waiting for {what} (last error: {e:#})"),
        None => bail!("timed out after {timeout:?} waiting for {what}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_once_the_check_passes() {
        let calls = AtomicU32::new(0);
        let took = wait_until("three calls", Duration::from_secs(1), || async {
            Ok(calls.fetch_add(1, Ordering::SeqCst) == 2)
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(took, 2 * POLL_EVERY);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_last_error() {
        let err = wait_until("never", Duration::from_millis(100), || async {
            anyhow::bail!("still broken")
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("timed out after 100ms waiting for never"),
            "{err}"
        );
        assert!(err.contains("still broken"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_is_cut_off_at_the_deadline() {
        let err = wait_until("a hang", Duration::from_millis(50), || {
            std::future::pending::<anyhow::Result<bool>>()
        })
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "timed out after 50ms waiting for a hang");
    }
}
