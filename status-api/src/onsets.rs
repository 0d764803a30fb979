//! When each drift began. [`DriftOnsets`] carries, from one view to the next, the time each (member, kind) of
//! drift was first seen, so `/metrics` can say since when a member has been down while every series stays
//! generated from the current view. Imports nothing of the crate.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use shared::{DriftItem, DriftKind};

/// The onset of every drift of one view, sorted by container name and kind. It shares the view's items rather
/// than copying their names: at 20,000 containers a view may show thousands of drifts, and a map of their
/// names built again at every revision was a tenth of status-api's work under hundreds of events a second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftOnsets(Vec<(Arc<DriftItem>, DateTime<Utc>)>);

/// What tells one drift from another: the container's name and the kind.
fn key(item: &DriftItem) -> (&str, DriftKind) {
    (&item.name, item.kind)
}

impl DriftOnsets {
    /// The onsets of `drift`, seen at `now`: a drift that was already there keeps the onset it had, a new one
    /// begins `now`, and one that ended is forgotten (should it come back, it begins again).
    pub fn follow(&self, drift: &[Arc<DriftItem>], now: DateTime<Utc>) -> Self {
        let mut items = drift.to_vec();
        // The views' drift comes sorted; anything else is sorted here.
        if !items.is_sorted_by(|a, b| key(a) <= key(b)) {
            items.sort_by(|a, b| key(a).cmp(&key(b)));
        }
        // Both lists sorted: one walk.
        let mut before = self.0.iter().peekable();
        let onsets = items
            .into_iter()
            .map(|item| {
                while before
                    .next_if(|(known, _)| key(known) < key(&item))
                    .is_some()
                {}
                let onset = before
                    .peek()
                    .filter(|(known, _)| key(known) == key(&item))
                    .map_or(now, |(_, onset)| *onset);
                (item, onset)
            })
            .collect();
        Self(onsets)
    }

    /// When this drift began; `None` when it is not one of the drifts these onsets follow.
    pub fn since(&self, name: &str, kind: DriftKind) -> Option<DateTime<Utc>> {
        self.0
            .binary_search_by(|(item, _)| key(item).cmp(&(name, kind)))
            .ok()
            .map(|found| self.0[found].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shared::Policy;

    fn item(name: &str, kind: DriftKind) -> Arc<DriftItem> {
        Arc::new(DriftItem {
            kind,
            name: name.to_owned(),
            id: String::new(),
            state: None,
            policy: Policy::Heal,
            detail: String::new(),
            changes: Vec::new(),
            since: None,
        })
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

    /// Drift handed over in any order, with names that sort around each other, gives the onsets a map by
    /// (name, kind) would give.
    #[test]
    fn onsets_follow_drift_in_any_order_as_a_map_by_name_and_kind_would() {
        let at = |second: i64| Utc.timestamp_opt(1_800_000_000 + second, 0).unwrap();
        let names = ["a", "a-1", "b", "ab", "a.b", "z", ""];
        let kinds = [DriftKind::Stopped, DriftKind::Paused, DriftKind::Removed];
        let mut state: u64 = 20_261_208;
        let mut next = |below: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        let mut onsets = DriftOnsets::default();
        let mut expected: std::collections::HashMap<(String, DriftKind), DateTime<Utc>> =
            std::collections::HashMap::new();
        for step in 0..300 {
            let mut drift: Vec<Arc<DriftItem>> = Vec::new();
            for name in names {
                for kind in kinds {
                    if next(3) > 0 {
                        drift.push(item(name, kind));
                    }
                }
            }
            if next(2) == 0 {
                drift.reverse();
            }
            let now = at(step);
            onsets = onsets.follow(&drift, now);
            expected = drift
                .iter()
                .map(|item| {
                    let key = (item.name.clone(), item.kind);
                    let onset = expected.get(&key).copied().unwrap_or(now);
                    (key, onset)
                })
                .collect();
            for name in names {
                for kind in kinds {
                    assert_eq!(
                        onsets.since(name, kind),
                        expected.get(&(name.to_owned(), kind)).copied(),
                        "step {step}: {name} {kind}"
                    );
                }
            }
        }
    }
}
