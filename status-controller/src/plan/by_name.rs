//! Members and containers by name, for the plan's questions about one drift item: a lookup instead of a scan
//! of the whole host per item, which after a mass outage (thousands of members stopped at once) would cost
//! the square of the host. Built only when a pass has an item to ask about.

use std::cell::OnceCell;

use shared::{ContainerStatus, SnapshotMember};

/// `items` sorted by name, keeping their order among equal names, so that [`ByName::first`] is the first of
/// a name in the original order, as a scan would find it.
#[derive(Debug)]
pub struct ByName<'a, T> {
    sorted: Vec<&'a T>,
    name: fn(&T) -> &str,
}

impl<'a, T> ByName<'a, T> {
    pub fn new(items: impl IntoIterator<Item = &'a T>, name: fn(&T) -> &str) -> Self {
        let mut sorted: Vec<&T> = items.into_iter().collect();
        // Stable, and linear on what status-api sends (sorted by name already).
        sorted.sort_by(|a, b| name(a).cmp(name(b)));
        Self { sorted, name }
    }

    /// Every item named `wanted`, in their original order.
    pub fn all(&self, wanted: &str) -> &[&'a T] {
        let name = self.name;
        let start = self.sorted.partition_point(|item| name(item) < wanted);
        let len = self.sorted[start..].partition_point(|item| name(item) == wanted);
        &self.sorted[start..start + len]
    }

    /// The first item named `wanted`.
    pub fn first(&self, wanted: &str) -> Option<&'a T> {
        self.all(wanted).first().copied()
    }
}

/// The snapshot's members, and the containers in scope, by name; each built at its first use, so that a pass
/// in sync asks nothing and pays nothing.
#[derive(Debug)]
pub struct Lookups<'a> {
    snapshot: &'a [SnapshotMember],
    in_scope: &'a [&'a ContainerStatus],
    members: OnceCell<ByName<'a, SnapshotMember>>,
    containers: OnceCell<ByName<'a, ContainerStatus>>,
}

impl<'a> Lookups<'a> {
    pub fn new(snapshot: &'a [SnapshotMember], in_scope: &'a [&'a ContainerStatus]) -> Self {
        Self {
            snapshot,
            in_scope,
            members: OnceCell::new(),
            containers: OnceCell::new(),
        }
    }

    /// The whole snapshot, in its order.
    pub fn snapshot(&self) -> &'a [SnapshotMember] {
        self.snapshot
    }

    /// Every member of the snapshot named `name` (one, in any snapshot status-api took).
    pub fn members(&self, name: &str) -> &[&'a SnapshotMember] {
        self.members
            .get_or_init(|| ByName::new(self.snapshot, |member| &member.name))
            .all(name)
    }

    /// The first member named `name`.
    pub fn member(&self, name: &str) -> Option<&'a SnapshotMember> {
        self.members(name).first().copied()
    }

    /// The first container in scope named `name`.
    pub fn container(&self, name: &str) -> Option<&'a ContainerStatus> {
        self.containers
            .get_or_init(|| ByName::new(self.in_scope.iter().copied(), |container| &container.name))
            .first(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name<'a>(item: &'a (&'static str, u32)) -> &'a str {
        item.0
    }

    #[test]
    fn finds_every_item_of_a_name_in_its_original_order() {
        let items = [("b", 1), ("a", 2), ("c", 3), ("b", 4), ("a", 5)];
        let by_name = ByName::new(&items, name);
        assert_eq!(by_name.first("b"), Some(&("b", 1)));
        assert_eq!(by_name.all("a"), [&("a", 2), &("a", 5)]);
        assert_eq!(by_name.all("c"), [&("c", 3)]);
        assert!(by_name.all("d").is_empty());
        assert_eq!(by_name.first(""), None);
    }
}
