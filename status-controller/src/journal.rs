//! The recent actions, newest first, for `GET /actions`: what was done to which container, why, how it went
//! and how long it took. Bounded, so a crash loop that runs for days costs no more memory than one that ran
//! for a minute.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::DriftKind;

use crate::model::{ActionKind, ActionResult};

/// How many records the journal keeps.
pub const CAPACITY: usize = 256;

/// One line of `GET /actions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    /// When it started.
    pub time: DateTime<Utc>,
    /// The container's name.
    pub container: String,
    /// The id acted on (for a recreate, the id the container had in the snapshot).
    pub container_id: String,
    pub action: ActionKind,
    /// The drift it answered.
    pub drift: Option<DriftKind>,
    /// Why it was planned.
    pub reason: String,
    pub result: ActionResult,
    /// What happened, when there is more to say than the result (an error, a refusal, a new id).
    pub detail: Option<String>,
    pub duration_seconds: f64,
}

/// A cheap-to-clone handle to the bounded journal.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    records: Arc<Mutex<VecDeque<ActionRecord>>>,
}

impl Journal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record, forgetting the oldest beyond [`CAPACITY`].
    pub fn push(&self, record: ActionRecord) {
        let mut records = self.lock();
        if records.len() == CAPACITY {
            records.pop_back();
        }
        records.push_front(record);
    }

    /// Up to `limit` records, newest first.
    pub fn recent(&self, limit: usize) -> Vec<ActionRecord> {
        self.lock().iter().take(limit).cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<ActionRecord>> {
        // A record list is never left half-written by a panic: keep using it.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(container: &str) -> ActionRecord {
        ActionRecord {
            time: Utc::now(),
            container: container.into(),
            container_id: "0".repeat(64),
            action: ActionKind::Start,
            drift: Some(DriftKind::Stopped),
            reason: "exited with exit code 137".into(),
            result: ActionResult::Ok,
            detail: None,
            duration_seconds: 0.25,
        }
    }

    #[test]
    fn newest_first_and_bounded() {
        let journal = Journal::new();
        for i in 0..CAPACITY + 10 {
            journal.push(record(&format!("c{i}")));
        }
        let recent = journal.recent(usize::MAX);
        assert_eq!(recent.len(), CAPACITY);
        assert_eq!(recent[0].container, format!("c{}", CAPACITY + 9));
        assert_eq!(recent[CAPACITY - 1].container, "c10");
        assert_eq!(journal.recent(2).len(), 2);
    }

    #[test]
    fn records_serialise_in_snake_case() {
        let json = serde_json::to_value(record("web")).expect("serialises");
        assert_eq!(json["action"], "start");
        assert_eq!(json["drift"], "stopped");
        assert_eq!(json["result"], "ok");
        assert_eq!(json["duration_seconds"], 0.25);
        for result in <ActionResult as strum::VariantArray>::VARIANTS {
            assert_eq!(
                serde_json::to_value(result).expect("serialises"),
                result.as_str()
            );
        }
    }
}
