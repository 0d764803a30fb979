//! What the loop recorded of the actions it does not carry out (reports, dry run, quarantine), so that each
//! is recorded once per appearance, not once per pass: an action recorded at one pass and planned the same
//! way at the next is not recorded again; one that went away and came back is.

use std::collections::{HashMap, HashSet};

use shared::DriftKind;

use crate::model::{Action, ActionKind, ActionResult};

/// The last record of each container, and the containers recorded at the pass under way.
#[derive(Debug, Default)]
pub struct Announced {
    last: HashMap<String, (ActionKind, Option<DriftKind>, ActionResult)>,
    this_pass: HashSet<String>,
}

impl Announced {
    /// `action` is recorded with `result` at this pass: whether that is new, to be told.
    pub fn first(&mut self, action: &Action, result: ActionResult) -> bool {
        self.this_pass.insert(action.container.clone());
        let key = (action.kind, action.drift, result);
        self.last.insert(action.container.clone(), key) != Some(key)
    }

    /// The pass is over: what was not recorded at it went away, so it is told again when it comes back.
    pub fn end_pass(&mut self) {
        let this_pass = std::mem::take(&mut self.this_pass);
        self.last
            .retain(|container, _| this_pass.contains(container));
    }

    /// The action a container's quarantine was announced with (the one it held back), and its drift; a start
    /// when there was none.
    pub fn quarantined_action(&self, container: &str) -> (ActionKind, Option<DriftKind>) {
        match self.last.get(container) {
            Some((kind, drift, ActionResult::Quarantined)) => (*kind, *drift),
            _ => (ActionKind::Start, None),
        }
    }

    /// Forgets `container`'s last record: whatever comes next is told.
    pub fn forget(&mut self, container: &str) {
        self.last.remove(container);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(container: &str, kind: ActionKind, drift: Option<DriftKind>) -> Action {
        Action {
            container: container.into(),
            id: format!("{container}-id"),
            kind,
            drift,
            policy: Default::default(),
            state: None,
            reason: "a test".into(),
            waits_for: None,
            retry_at: None,
        }
    }

    #[test]
    fn an_action_is_told_once_per_appearance() {
        let mut announced = Announced::default();
        let report = action("web", ActionKind::Report, Some(DriftKind::Changed));
        assert!(announced.first(&report, ActionResult::Reported), "new");
        assert!(
            !announced.first(&report, ActionResult::Reported),
            "same pass"
        );
        announced.end_pass();
        assert!(
            !announced.first(&report, ActionResult::Reported),
            "next pass"
        );
        assert!(
            announced.first(&report, ActionResult::DryRun),
            "another result is another record"
        );
        let stop = action("web", ActionKind::Stop, Some(DriftKind::Changed));
        assert!(
            announced.first(&stop, ActionResult::DryRun),
            "another action too"
        );
        announced.end_pass();

        announced.end_pass();
        assert!(
            announced.first(&stop, ActionResult::DryRun),
            "gone for a pass, then back"
        );
        announced.forget("web");
        assert!(announced.first(&stop, ActionResult::DryRun), "forgotten");
    }

    #[test]
    fn a_quarantine_is_told_with_the_action_it_held_back() {
        let mut announced = Announced::default();
        assert_eq!(
            announced.quarantined_action("web"),
            (ActionKind::Start, None),
            "none held back"
        );
        let restart = action("web", ActionKind::Restart, Some(DriftKind::Unhealthy));
        announced.first(&restart, ActionResult::Quarantined);
        assert_eq!(
            announced.quarantined_action("web"),
            (ActionKind::Restart, Some(DriftKind::Unhealthy))
        );
        announced.first(&restart, ActionResult::DryRun);
        assert_eq!(
            announced.quarantined_action("web"),
            (ActionKind::Start, None),
            "its last record is not a quarantine"
        );
    }
}
