//! When each drift began. [`DriftOnsets`] carries, from one view to the next, the time each (member, kind) of
//! drift was first seen, so `/metrics` can say since when a member has been down while every series stays
//! generated from the current view. Imports nothing of the crate.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shared::{DriftItem, DriftKind};

/// The onset of every drift of one view, by container name and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftOnsets(HashMap<(String, DriftKind), DateTime<Utc>>);

impl DriftOnsets {
    /// The onsets of `drift`, seen at `now`: a drift that was already there keeps the onset it had, a new one
    /// begins `now`, and one that ended is forgotten (should it come back, it begins again).
    pub fn follow(&self, drift: &[DriftItem], now: DateTime<Utc>) -> Self {
        Self(
            drift
                .iter()
                .map(|item| {
                    let key = (item.name.clone(), item.kind);
                    let onset = self.0.get(&key).copied().unwrap_or(now);
                    (key, onset)
                })
                .collect(),
        )
    }

    /// When this drift began; `None` when it is not one of the drifts these onsets follow.
    pub fn since(&self, name: &str, kind: DriftKind) -> Option<DateTime<Utc>> {
        self.0.get(&(name.to_owned(), kind)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shared::Policy;

    fn item(name: &str, kind: DriftKind) -> DriftItem {
        DriftItem {
            kind,
            name: name.to_owned(),
            id: String::new(),
            state: None,
            policy: Policy::Heal,
            detail: String::new(),
            changes: Vec::new(),
            since: None,
        }
    }

    #[test]
    fn a_drift_keeps_its_onset_until_it_ends_and_begins_again_when_it_comes_back() {
        let at = |second: i64| Utc.timestamp_opt(1_800_000_000 + second, 0).unwrap();
        let first = DriftOnsets::default().follow(&[item("web", DriftKind::Stopped)], at(0));
        assert_eq!(first.since("web", DriftKind::Stopped), Some(at(0)));

        // Still stopped, and a new drift beside it: the old one keeps its onset.
        let second = first.follow(
            &[
                item("db", DriftKind::Paused),
                item("web", DriftKind::Stopped),
            ],
            at(5),
        );
        assert_eq!(second.since("web", DriftKind::Stopped), Some(at(0)));
        assert_eq!(second.since("db", DriftKind::Paused), Some(at(5)));
        // Another kind for the same name is another drift.
        assert_eq!(second.since("web", DriftKind::Removed), None);

        // Healed, then stopped again: a new onset.
        let healed = second.follow(&[item("db", DriftKind::Paused)], at(9));
        assert_eq!(healed.since("web", DriftKind::Stopped), None);
        let again = healed.follow(&[item("web", DriftKind::Stopped)], at(12));
        assert_eq!(again.since("web", DriftKind::Stopped), Some(at(12)));
        assert_eq!(again.since("db", DriftKind::Paused), None);
    }
}
