//! The drift of each new view, worked out from the last one's: only the names whose containers changed are
//! compared with the snapshot again. [`super::drift()`] compares every member at every revision — at 20,000
//! containers that was most of status-api's CPU, and what kept its view behind a few hundred events a second,
//! and a fifth of the controller's pass (docs/benchmarks.md). The answer is the same as `drift`'s, item for
//! item (the tests hold them side by side): a name's drift depends on its member and the containers of that
//! name alone, unless a member or a container shares another's namespace (`--network container:…`), when it
//! depends on that other container too. Then, after a new snapshot, and for containers not sorted by name and
//! id, the drift is computed over everything, as before.
//!
//! What tells a container that did not change: the same shared status (`Arc`) as last time. status-api keeps
//! its statuses shared between revisions; the controller shares those of an answer that are byte for byte the
//! same as the last answer's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{ContainerStatus, DriftItem, DriftKind, Scope, SnapshotMember, SnapshotSummary};

/// What the drift compares containers with: a snapshot's members, sorted by name.
pub trait Members {
    fn members(&self) -> &[SnapshotMember];
}

impl Members for SnapshotSummary {
    fn members(&self) -> &[SnapshotMember] {
        &self.containers
    }
}

/// The last drift worked out, and what it was worked out from: `M`, the snapshot (the same `Arc` is the
/// same snapshot).
#[derive(Debug)]
pub struct Drifts<M> {
    /// The snapshot the items compare with.
    baseline: Option<Arc<M>>,
    /// Where each member is in the snapshot's list, by name.
    members: HashMap<String, usize>,
    /// The containers the items were worked out from, sorted by name and id.
    containers: Vec<Arc<ContainerStatus>>,
    /// Whether a member or one of `containers` joined another's namespace: the drift is then worked out over
    /// everything each time ([`shares_namespaces`]).
    sharing: bool,
    /// The drift, by name and kind, as `drift` sorts it; shared with whoever shows it, not copied.
    items: BTreeMap<(String, DriftKind), Arc<DriftItem>>,
}

impl<M> Default for Drifts<M> {
    fn default() -> Self {
        Self {
            baseline: None,
            members: HashMap::new(),
            containers: Vec::new(),
            sharing: false,
            items: BTreeMap::new(),
        }
    }
}

/// What orders the containers: name, then id.
fn key(container: &ContainerStatus) -> (&str, &str) {
    (&container.name, &container.id)
}

impl<M: Members> Drifts<M> {
    /// The drift of `containers` against `baseline` in `scope`: what [`super::drift()`] answers, sorted by
    /// name. Containers sorted by name, then id (as status-api lists them) are compared again only where they
    /// changed; in any other order, everything is.
    pub fn follow(
        &mut self,
        baseline: &Arc<M>,
        containers: Vec<Arc<ContainerStatus>>,
        scope: &Scope,
    ) -> Vec<Arc<DriftItem>> {
        let same_baseline = self
            .baseline
            .as_ref()
            .is_some_and(|known| Arc::ptr_eq(known, baseline));
        let changed = (same_baseline && !self.sharing)
            // `None` when the containers are out of order: they cannot be walked.
            .then(|| changed_names(&self.containers, &containers))
            .flatten()
            // A container that changed may have joined another's namespace: everything again.
            .filter(|changed| !changed.sharing);
        match changed {
            Some(changed) => {
                for name in changed.names {
                    self.compare(baseline, &containers, &name, scope);
                }
                self.containers = containers;
            }
            None => self.start_over(baseline, containers, scope),
        }
        self.items.values().cloned().collect()
    }

    /// Everything compared again, as `drift` does.
    fn start_over(
        &mut self,
        baseline: &Arc<M>,
        containers: Vec<Arc<ContainerStatus>>,
        scope: &Scope,
    ) {
        if !self
            .baseline
            .as_ref()
            .is_some_and(|known| Arc::ptr_eq(known, baseline))
        {
            self.members = baseline
                .members()
                .iter()
                .enumerate()
                .map(|(index, member)| (member.name.clone(), index))
                .collect();
            self.baseline = Some(baseline.clone());
        }
        // Unsorted containers cannot be walked against the next ones: the next view starts over too.
        let sorted = containers.is_sorted_by(|a, b| key(a) <= key(b));
        self.sharing = !sorted || shares_namespaces(baseline.members(), &containers);
        self.items = super::drift(baseline.members(), &containers, scope)
            .into_iter()
            .map(|item| ((item.name.clone(), item.kind), Arc::new(item)))
            .collect();
        self.containers = containers;
    }

    /// Compares the one name `name` again: its member and its containers.
    fn compare(
        &mut self,
        baseline: &M,
        containers: &[Arc<ContainerStatus>],
        name: &str,
        scope: &Scope,
    ) {
        let member = self
            .members
            .get(name)
            .map(|index| std::slice::from_ref(&baseline.members()[*index]))
            .unwrap_or_default();
        let start = containers.partition_point(|container| container.name.as_str() < name);
        let end = start
            + containers[start..]
                .iter()
                .take_while(|container| container.name == name)
                .count();
        for kind in DriftKind::ALL {
            self.items.remove(&(name.to_owned(), kind));
        }
        for item in super::drift(member, &containers[start..end], scope) {
            self.items
                .insert((item.name.clone(), item.kind), Arc::new(item));
        }
    }
}

/// Whether any member or container joined another's namespace: its drift then depends on that other one.
fn shares_namespaces(members: &[SnapshotMember], containers: &[Arc<ContainerStatus>]) -> bool {
    members.iter().any(|member| !member.shares.is_empty())
        || containers
            .iter()
            .any(|container| !container.shares.is_empty())
}

/// What differs between two lists of containers.
#[derive(Debug, Default, PartialEq, Eq)]
struct Changed {
    /// The names whose containers differ, sorted.
    names: Vec<String>,
    /// Whether a container of the second list that differs joined another's namespace.
    sharing: bool,
}

/// The names whose containers differ between `before`, sorted by (name, id), and `after`: a container added,
/// removed or changed (another shared status); `None` when `after` is not sorted so. Unchanged statuses are
/// the same pointers, so this is a walk that compares pointers, not names or fields: a status that is the same
/// pointer on both sides is the same container, unchanged. The order of `after` is checked where it differs
/// from `before` only: two neighbours both unchanged keep the order they had there.
fn changed_names<'a>(
    before: &[Arc<ContainerStatus>],
    after: &'a [Arc<ContainerStatus>],
) -> Option<Changed> {
    let mut changed: Vec<String> = Vec::new();
    let mut sharing = false;
    // The last container of `after` walked past, and whether it was unchanged.
    let mut last: Option<(&Arc<ContainerStatus>, bool)> = None;
    let mut in_order = |is: &'a Arc<ContainerStatus>, same: bool| {
        let ordered = match last {
            Some((previous, previous_same)) => (previous_same && same) || key(previous) <= key(is),
            None => true,
        };
        last = Some((is, same));
        ordered
    };
    let mut note = |name: &str| {
        if changed.last().is_none_or(|last| last != name) {
            changed.push(name.to_owned());
        }
    };
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(was), Some(is)) if Arc::ptr_eq(was, is) => {
                if !in_order(is, true) {
                    return None;
                }
                old.next();
                new.next();
            }
            (Some(gone), None) => {
                note(&gone.name);
                old.next();
            }
            (None, Some(came)) => {
                if !in_order(came, false) {
                    return None;
                }
                sharing |= !came.shares.is_empty();
                note(&came.name);
                new.next();
            }
            (Some(was), Some(is)) => match key(was).cmp(&key(is)) {
                std::cmp::Ordering::Less => {
                    note(&was.name);
                    old.next();
                }
                std::cmp::Ordering::Greater => {
                    if !in_order(is, false) {
                        return None;
                    }
                    sharing |= !is.shares.is_empty();
                    note(&is.name);
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    // Not the same pointer (above): the status was replaced.
                    if !in_order(is, false) {
                        return None;
                    }
                    sharing |= !is.shares.is_empty();
                    note(&is.name);
                    old.next();
                    new.next();
                }
            },
        }
    }
    changed.sort();
    changed.dedup();
    Some(Changed {
        names: changed,
        sharing,
    })
}

#[cfg(test)]
mod tests;
