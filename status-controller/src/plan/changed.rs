//! What the plan does about a `changed` member: by default it reports it, as a container that is no longer
//! the one the snapshot describes; a member whose **snapshot** spec is labelled `dockstate.changed=recreate`
//! is put back to that spec instead — stopped, removed and created again from it, the `replace` a dead member
//! or an orphaned dependant gets, with the same re-checks, volumes, namespaces, backoff and quarantine.

use shared::{SnapshotMember, CHANGED_LABEL, CHANGED_RECREATE};

use crate::model::ActionKind;

/// Whether `member` asked, in its snapshot spec, to be put back when it is changed.
pub fn opted_in(member: &SnapshotMember) -> bool {
    member
        .labels
        .get(CHANGED_LABEL)
        .is_some_and(|value| value.trim() == CHANGED_RECREATE)
}

/// The action for a `changed` member with policy `heal` that is not one of the pair's own.
pub fn decide(detail: &str, opted_in: bool, can_recreate: bool) -> (ActionKind, String) {
    match (opted_in, can_recreate) {
        (false, _) => (
            ActionKind::Report,
            format!(
                "{detail}; a changed container is reported, never acted on (label the member \
                 {CHANGED_LABEL}={CHANGED_RECREATE} to have it put back, or adopt the change with PUT \
                 /snapshot/containers/NAME)"
            ),
        ),
        (true, true) => (
            ActionKind::Replace,
            format!(
                "{detail}; labelled {CHANGED_LABEL}={CHANGED_RECREATE}: it is stopped, removed and created \
                 again from its snapshot spec"
            ),
        ),
        (true, false) => (
            ActionKind::Report,
            format!(
                "{detail}; labelled {CHANGED_LABEL}={CHANGED_RECREATE}, but without --token-file its spec \
                 cannot be read, so it is reported, not put back"
            ),
        ),
    }
}
