//! The field-by-field difference between a member's snapshot spec and its container's, as the `changed`
//! drift reports it (`kubectl diff` for one container). Pure: two [`SpecSummary`]s in, the changes out.

use crate::spec_summary::{ChangeKind, FieldName, FieldValue, SpecChange, SpecSummary};

/// Every field in which `current` differs from `snapshot`, in field order. Mounts are compared only when both
/// summaries know them (snapshots written before dockstate recorded `Mounts` do not). A value never shown
/// (environment, command line) is reported as changed, added or removed, without it.
pub fn diff(snapshot: &SpecSummary, current: &SpecSummary) -> Vec<SpecChange> {
    let compare_mounts = snapshot.mounts_known() && current.mounts_known();
    let mut before = snapshot.fields().peekable();
    let mut after = current.fields().peekable();
    let mut changes = Vec::new();
    loop {
        let (name, was, is) = match (before.peek(), after.peek()) {
            (None, None) => break,
            (Some((a, _)), Some((b, _))) if a == b => {
                let (name, was) = before.next().expect("peeked");
                let (_, is) = after.next().expect("peeked");
                (name, Some(was), Some(is))
            }
            (Some((a, _)), Some((b, _))) if a < b => {
                let (name, was) = before.next().expect("peeked");
                (name, Some(was), None)
            }
            (Some(_), None) => {
                let (name, was) = before.next().expect("peeked");
                (name, Some(was), None)
            }
            (_, Some(_)) => {
                let (name, is) = after.next().expect("peeked");
                (name, None, Some(is))
            }
        };
        if name.0 == "mount" && !compare_mounts {
            continue;
        }
        if let Some(change) = change(name, was, is) {
            changes.push(change);
        }
    }
    changes
}

fn change(
    (field, key): &FieldName,
    was: Option<&FieldValue>,
    is: Option<&FieldValue>,
) -> Option<SpecChange> {
    let kind = match (was, is) {
        (Some(was), Some(is)) if was == is => return None,
        (Some(_), Some(_)) => ChangeKind::Changed,
        (Some(_), None) => ChangeKind::Removed,
        (None, Some(_)) => ChangeKind::Added,
        (None, None) => return None,
    };
    let shown =
        |value: Option<&FieldValue>| value.and_then(FieldValue::shown).map(ToOwned::to_owned);
    Some(SpecChange {
        field: (*field).to_owned(),
        key: (!key.is_empty()).then(|| key.clone()),
        change: kind,
        snapshot: shown(was),
        current: shown(is),
    })
}

#[cfg(test)]
mod tests;
