//! What the loop tells the HTTP server: whether the controller may act (and why not), when the loop last got
//! somewhere, and which containers are in quarantine. The loop writes it; `/ready`, `/health` and `/actions`
//! read it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::SnapshotSummary;

use crate::model::Hold;
use crate::model::LONG_POLL_WAIT;

/// `/health` fails when the loop has not got anywhere for this long: three long polls.
pub const STALL_AFTER: Duration = Duration::from_secs(3 * LONG_POLL_WAIT.as_secs());

/// One check of the controller's `/ready`: whether it passes, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadinessCheck {
    pub ok: bool,
    pub detail: String,
}

/// A container in quarantine, as `/actions` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineView {
    pub container: String,
    /// Until when it is left alone.
    pub until: DateTime<Utc>,
    /// Attempts before it was quarantined.
    pub attempts: u32,
}

/// The loop's state as the HTTP server sees it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControllerState {
    inner: Arc<Mutex<StateInner>>,
}

#[derive(Debug)]
struct StateInner {
    snapshot: Option<(DateTime<Utc>, usize)>,
    view: ViewState,
    last_progress: Instant,
    quarantined: Vec<QuarantineView>,
}

#[derive(Debug, Clone)]
enum ViewState {
    Starting,
    Fresh { revision: u64 },
    Held(Hold),
}

impl Default for ControllerState {
    fn default() -> Self {
        Self::new()
    }
}

impl ControllerState {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(StateInner {
                snapshot: None,
                view: ViewState::Starting,
                last_progress: Instant::now(),
                quarantined: Vec::new(),
            })),
        }
    }

    /// Ready when the snapshot is loaded and the latest view was complete and fresh. The checks say why not.
    pub fn readiness(&self) -> (bool, BTreeMap<&'static str, ReadinessCheck>) {
        let inner = self.lock();
        let snapshot = match inner.snapshot {
            Some((taken_at, members)) => ReadinessCheck {
                ok: true,
                detail: format!(
                    "{}, taken at {}",
                    shared::count_of(members, "container"),
                    taken_at.to_rfc3339()
                ),
            },
            None => ReadinessCheck {
                ok: false,
                detail: "not read from status-api yet".into(),
            },
        };
        let view = match &inner.view {
            ViewState::Starting => ReadinessCheck {
                ok: false,
                detail: "status-api not asked yet".into(),
            },
            ViewState::Fresh { revision } => ReadinessCheck {
                ok: true,
                detail: format!("complete and fresh at revision {revision}"),
            },
            ViewState::Held(hold) => ReadinessCheck {
                ok: false,
                detail: format!("holding: {hold}"),
            },
        };
        let ready = snapshot.ok && view.ok;
        (
            ready,
            BTreeMap::from([("snapshot", snapshot), ("status_api", view)]),
        )
    }

    /// How long since the loop last got somewhere (an answer, a pass, or a hold).
    pub fn since_progress(&self) -> Duration {
        self.lock().last_progress.elapsed()
    }

    pub fn quarantined(&self) -> Vec<QuarantineView> {
        self.lock().quarantined.clone()
    }

    /// Records a hold; true when it is news (the first, or another reason than before).
    pub fn hold(&self, hold: Hold) -> bool {
        let mut inner = self.lock();
        inner.last_progress = Instant::now();
        let news =
            !matches!(&inner.view, ViewState::Held(previous) if previous.reason == hold.reason);
        inner.view = ViewState::Held(hold);
        news
    }

    /// Records a fresh view at `revision` over `snapshot`; true when it ends a hold.
    pub fn fresh(&self, snapshot: &SnapshotSummary, revision: u64) -> bool {
        let mut inner = self.lock();
        inner.last_progress = Instant::now();
        inner.snapshot = Some((snapshot.taken_at, snapshot.containers.len()));
        let recovered = matches!(inner.view, ViewState::Held(_));
        inner.view = ViewState::Fresh { revision };
        recovered
    }

    /// Whether the latest view was held back.
    pub fn holding(&self) -> bool {
        matches!(self.lock().view, ViewState::Held(_))
    }

    pub fn set_quarantined(&self, quarantined: Vec<QuarantineView>) {
        self.lock().quarantined = quarantined;
    }

    /// Pretends the loop last made progress at `at`, to test what `/health` says about a stalled loop.
    #[cfg(test)]
    pub(crate) fn set_last_progress(&self, at: Instant) {
        self.lock().last_progress = at;
    }

    fn lock(&self) -> MutexGuard<'_, StateInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HoldReason;

    #[test]
    fn readiness_needs_the_snapshot_and_a_fresh_view() {
        let state = ControllerState::new();
        assert!(!state.readiness().0, "not ready before anything is known");
        let snapshot = SnapshotSummary {
            taken_at: Utc::now(),
            scope: None,
            containers: vec![],
        };
        assert!(!state.fresh(&snapshot, 4), "not a recovery");
        let (ready, checks) = state.readiness();
        assert!(ready, "{checks:?}");
        assert!(state.hold(Hold::new(HoldReason::ApiUnreachable, "down")));
        assert!(
            !state.hold(Hold::new(HoldReason::ApiUnreachable, "still down")),
            "not news"
        );
        let (ready, checks) = state.readiness();
        assert!(!ready);
        assert!(
            checks["status_api"].detail.contains("api_unreachable"),
            "{checks:?}"
        );
        assert!(checks["snapshot"].ok, "the snapshot stays known");
        assert!(state.fresh(&snapshot, 5), "a recovery");
    }
}
