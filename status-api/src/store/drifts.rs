//! The drift of each new view, worked out from the last one's: only the names whose containers changed are
//! compared with the snapshot again. [`shared::drift()`] compares every member at every revision — at 20,000
//! containers that was most of status-api's CPU, and what kept the view behind a few hundred events a second
//! (docs/benchmarks.md). The answer is the same as `shared::drift`'s, item for item (the tests hold them
//! side by side): a name's drift depends on its member and the containers of that name alone, unless a
//! member or a container shares another's namespace (`--network container:…`), when it depends on that
//! other container too. Then, and after a new baseline, the drift is computed over everything, as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use shared::{ContainerStatus, DriftItem, DriftKind, Scope};

use crate::baseline::Baseline;

/// The last drift worked out, and what it was worked out from.
#[derive(Debug, Default)]
pub struct Drifts {
    /// The baseline the items compare with.
    baseline: Option<Arc<Baseline>>,
    /// Where each member is in the baseline's list, by name.
    members: HashMap<String, usize>,
    /// The containers the items were worked out from, sorted by name (the view's own list).
    containers: Vec<Arc<ContainerStatus>>,
    /// Whether a member of the baseline or one of `containers` joined another's namespace: the drift is
    /// then worked out over everything at each revision ([`shares_namespaces`]).
    sharing: bool,
    /// The drift, by name and kind, as `shared::drift` sorts it; shared with the views that show it, so a
    /// view is a list of pointers, not a copy of every item.
    items: BTreeMap<(String, DriftKind), Arc<DriftItem>>,
}

impl Drifts {
    /// The drift of `containers` (sorted by name, then id, as the store lists them) against `baseline` in
    /// `scope`: what [`shared::drift()`] answers, sorted by name.
    pub fn follow(
        &mut self,
        baseline: &Arc<Baseline>,
        containers: Vec<Arc<ContainerStatus>>,
        scope: &Scope,
    ) -> Vec<Arc<DriftItem>> {
        let same_baseline = self
            .baseline
            .as_ref()
            .is_some_and(|known| Arc::ptr_eq(known, baseline));
        let changed = (same_baseline && !self.sharing)
            .then(|| changed_names(&self.containers, &containers))
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

    /// Everything compared again, as `shared::drift` does.
    fn start_over(
        &mut self,
        baseline: &Arc<Baseline>,
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
        self.sharing = shares_namespaces(baseline, &containers);
        self.items = shared::drift(baseline.members(), &containers, scope)
            .into_iter()
            .map(|item| ((item.name.clone(), item.kind), Arc::new(item)))
            .collect();
        self.containers = containers;
    }

    /// Compares the one name `name` again: its member and its containers.
    fn compare(
        &mut self,
        baseline: &Baseline,
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
        for item in shared::drift(member, &containers[start..end], scope) {
            self.items
                .insert((item.name.clone(), item.kind), Arc::new(item));
        }
    }
}

/// Whether any member or container joined another's namespace: its drift then depends on that other one.
fn shares_namespaces(baseline: &Baseline, containers: &[Arc<ContainerStatus>]) -> bool {
    baseline
        .members()
        .iter()
        .any(|member| !member.shares.is_empty())
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

/// The names whose containers differ between two lists sorted by (name, id): a container added, removed or
/// changed (another shared status). Statuses the store kept are the same pointers, so this is a walk that
/// compares pointers, not names or fields: a status that is the same pointer on both sides is the same
/// container, unchanged.
fn changed_names(before: &[Arc<ContainerStatus>], after: &[Arc<ContainerStatus>]) -> Changed {
    fn key(container: &ContainerStatus) -> (&str, &str) {
        (&container.name, &container.id)
    }
    let mut changed: Vec<String> = Vec::new();
    let mut sharing = false;
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
                old.next();
                new.next();
            }
            (Some(gone), None) => {
                note(&gone.name);
                old.next();
            }
            (None, Some(came)) => {
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
                    sharing |= !is.shares.is_empty();
                    note(&is.name);
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    // Not the same pointer (above): the store replaced its status.
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
    Changed {
        names: changed,
        sharing,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Utc;
    use poem_openapi::types::Example;
    use shared::{ContainerSpec, ContainerState, Health};

    use super::*;
    use crate::snapshot::{Member, Snapshot, FORMAT};

    /// A small deterministic generator: the same steps on every run.
    struct Steps(u64);

    impl Steps {
        fn below(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(self.0 >> 33).expect("31 bits") % bound
        }

        fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
            &from[self.below(from.len())]
        }
    }

    fn baseline(names: &[&str], image: &str) -> Arc<Baseline> {
        Arc::new(Baseline::new(Snapshot {
            format: FORMAT,
            taken_at: Utc::now(),
            scope: None,
            containers: names
                .iter()
                .map(|name| {
                    Member::new(&ContainerSpec {
                        name: (*name).to_owned(),
                        id: format!("{name}-0"),
                        image: image.to_owned(),
                        image_id: String::new(),
                        config: serde_json::json!({"Labels": {"team": "a"}}),
                        host_config: serde_json::json!({}),
                        networks: serde_json::json!({}),
                        mounts: serde_json::Value::Null,
                    })
                })
                .collect(),
        }))
    }

    fn random_status(
        steps: &mut Steps,
        ids: &HashMap<String, Arc<ContainerStatus>>,
    ) -> ContainerStatus {
        let name =
            (*steps.pick(&["c0", "c1", "c2", "c3", "c4", "c5", "c6", "x1", "x2"])).to_owned();
        let id = format!("{name}-{}", steps.below(2));
        let mut labels = BTreeMap::new();
        if steps.below(4) > 0 {
            labels.insert("team".to_owned(), "a".to_owned());
        }
        if steps.below(6) == 0 {
            labels.insert("dockstate.policy".to_owned(), "ignore".to_owned());
        }
        let mut status = ContainerStatus {
            id,
            name,
            image: (*steps.pick(&["busybox:latest", "busybox", "other:1"])).to_owned(),
            state: *steps.pick(&[
                ContainerState::Running,
                ContainerState::Running,
                ContainerState::Exited,
                ContainerState::Created,
                ContainerState::Paused,
                ContainerState::Restarting,
            ]),
            health: *steps.pick(&[Health::None, Health::Healthy, Health::Unhealthy]),
            exit_code: Some(i64::try_from(steps.below(2)).expect("small")),
            policy: shared::Policy::from_labels(&labels),
            labels,
            ..ContainerStatus::example()
        };
        // Now and then one joins another's network: its drift depends on that other one.
        if steps.below(25) == 0 {
            status.shares.network = ids.keys().next().cloned();
        }
        status
    }

    /// Random changes, one at a time, to a host of a few names (duplicates, renames, states, scopes, shared
    /// namespaces and a new baseline among them): after each, the drift worked out from the last one is the
    /// drift computed over everything.
    #[test]
    fn the_drift_worked_out_from_the_last_one_is_the_drift_of_everything() {
        for scope in [None, Some("team=a".parse().expect("a selector"))] {
            let mut steps = Steps(20_261_207);
            let mut baseline = baseline(&["c0", "c1", "c2", "c3", "c4"], "busybox:latest");
            let mut by_id: HashMap<String, Arc<ContainerStatus>> = HashMap::new();
            let mut drifts = Drifts::default();
            for step in 0..600 {
                match steps.below(10) {
                    0..=5 => {
                        let status = random_status(&mut steps, &by_id);
                        by_id.insert(status.id.clone(), Arc::new(status));
                    }
                    6 | 7 => {
                        let ids: Vec<String> = by_id.keys().cloned().collect();
                        if !ids.is_empty() {
                            by_id.remove(steps.pick(&ids));
                        }
                    }
                    _ => {}
                }
                if step == 300 {
                    baseline = self::baseline(&["c2", "c3", "c5", "c6"], "busybox");
                }
                let mut containers: Vec<Arc<ContainerStatus>> = by_id.values().cloned().collect();
                containers.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
                let everything = shared::drift(baseline.members(), &containers, &scope);
                let followed: Vec<DriftItem> = drifts
                    .follow(&baseline, containers, &scope)
                    .iter()
                    .map(|item| DriftItem::clone(item))
                    .collect();
                assert_eq!(followed, everything, "step {step}, scope {scope:?}");
            }
        }
    }

    #[test]
    fn only_names_whose_containers_changed_are_compared_again() {
        let status = |name: &str, id: &str| {
            Arc::new(ContainerStatus {
                name: name.to_owned(),
                id: id.to_owned(),
                ..ContainerStatus::example()
            })
        };
        let (a, b1, b2, c) = (
            status("a", "1"),
            status("b", "1"),
            status("b", "2"),
            status("c", "1"),
        );
        let before = vec![a.clone(), b1.clone(), c.clone()];
        assert_eq!(changed_names(&before, &before.clone()), Changed::default());
        // Another status for `c`, a second `b`, `a` gone.
        let after = vec![b1.clone(), b2, status("c", "1")];
        let changed = changed_names(&before, &after);
        assert_eq!(changed.names, ["a", "b", "c"]);
        assert!(!changed.sharing);
        assert_eq!(changed_names(&[], std::slice::from_ref(&a)).names, ["a"]);
        // A changed container that joined another's network is noticed; an unchanged one is not looked at.
        let mut joined = ContainerStatus::clone(&c);
        joined.shares.network = Some(a.id.clone());
        let changed = changed_names(&before, &[a, b1, Arc::new(joined)]);
        assert_eq!(changed.names, ["c"]);
        assert!(changed.sharing);
    }
}
