//! When each drift the loop plans for was first seen, for the heal-time metric: from the first pass that
//! planned its action to the end of the action that healed it. A drift no pass plans for any more is
//! forgotten, and one held back on purpose (the maintenance hold) starts its time when the hold ends.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::model::{Action, ActionKind};

/// First sightings, by container and action.
#[derive(Debug, Default)]
pub struct FirstSeen {
    at: HashMap<(String, ActionKind), Instant>,
}

impl FirstSeen {
    /// A pass planned `actions`: what it did not plan is not drift any more.
    pub fn planned(&mut self, actions: &[Action]) {
        let planned: HashSet<(&str, ActionKind)> = actions
            .iter()
            .map(|action| (action.container.as_str(), action.kind))
            .collect();
        self.at
            .retain(|(container, kind), _| planned.contains(&(container.as_str(), *kind)));
    }

    /// When `action`'s drift was first seen: `now`, if at this pass.
    pub fn seen(&mut self, action: &Action, now: Instant) -> Instant {
        *self
            .at
            .entry((action.container.clone(), action.kind))
            .or_insert(now)
    }

    /// `action` is held back on purpose: not a drift the controller is slow to heal, so its time starts
    /// again at the pass that may act on it.
    pub fn held(&mut self, action: &Action) {
        self.at.remove(&(action.container.clone(), action.kind));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn action(container: &str, kind: ActionKind) -> Action {
        Action {
            container: container.into(),
            id: format!("{container}-id"),
            kind,
            drift: None,
            policy: Default::default(),
            state: None,
            reason: "a test".into(),
            waits_for: None,
            retry_at: None,
        }
    }

    #[test]
    fn a_drift_keeps_its_first_sighting_until_it_is_not_planned_or_held() {
        let start = Instant::now();
        let later = start + Duration::from_secs(5);
        let mut first = FirstSeen::default();
        let web = action("web", ActionKind::Start);
        let db = action("db", ActionKind::Start);

        first.planned(&[web.clone(), db.clone()]);
        assert_eq!(first.seen(&web, start), start);
        assert_eq!(first.seen(&db, start), start);
        assert_eq!(first.seen(&web, later), start, "seen before");

        first.planned(&[web.clone(), action("db", ActionKind::Restart)]);
        assert_eq!(first.seen(&web, later), start, "still planned");
        assert_eq!(
            first.seen(&db, later),
            later,
            "another action: not planned any more"
        );

        first.held(&web);
        assert_eq!(first.seen(&web, later), later, "held: starts again");
    }
}
