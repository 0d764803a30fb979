use std::collections::{BTreeMap, HashMap};

use chrono::Utc;

use super::*;
use crate::model::{ContainerState, Health, RestartPolicy};

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

fn snapshot(names: &[&str], image: &str) -> Arc<SnapshotSummary> {
    Arc::new(SnapshotSummary {
        taken_at: Utc::now(),
        scope: None,
        containers: names
            .iter()
            .map(|name| SnapshotMember {
                name: (*name).to_owned(),
                id: format!("{name}-0"),
                image: image.to_owned(),
                image_id: String::new(),
                labels: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
                shares: Default::default(),
            })
            .collect(),
    })
}

fn status(id: &str, name: &str) -> ContainerStatus {
    ContainerStatus {
        id: id.to_owned(),
        name: name.to_owned(),
        image: "busybox".into(),
        image_id: "sha256:1".into(),
        state: ContainerState::Running,
        health: Health::None,
        exit_code: None,
        restart_count: 0,
        created_at: None,
        started_at: None,
        finished_at: None,
        labels: BTreeMap::new(),
        ports: Vec::new(),
        in_snapshot: false,
        policy: Default::default(),
        shares: Default::default(),
        settling: false,
        restart_policy: Some(RestartPolicy::No),
        exit_cause: None,
        spec_changes: Vec::new(),
        tag_image_id: None,
        spec: None,
    }
}

fn random_status(
    steps: &mut Steps,
    ids: &HashMap<String, Arc<ContainerStatus>>,
) -> ContainerStatus {
    let name = (*steps.pick(&["c0", "c1", "c2", "c3", "c4", "c5", "c6", "x1", "x2"])).to_owned();
    let id = format!("{name}-{}", steps.below(2));
    let mut labels = BTreeMap::new();
    if steps.below(4) > 0 {
        labels.insert("team".to_owned(), "a".to_owned());
    }
    if steps.below(6) == 0 {
        labels.insert("dockstate.policy".to_owned(), "ignore".to_owned());
    }
    let mut status = ContainerStatus {
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
        policy: crate::Policy::from_labels(&labels),
        labels,
        ..status(&id, &name)
    };
    // Now and then one joins another's network: its drift depends on that other one.
    if steps.below(25) == 0 {
        status.shares.network = ids.keys().next().cloned();
    }
    status
}

/// Random changes, one at a time, to a host of a few names (duplicates, renames, states, scopes, shared
/// namespaces, a new snapshot, now and then a list out of order): after each, the drift worked out from the
/// last one is the drift computed over everything.
#[test]
fn the_drift_worked_out_from_the_last_one_is_the_drift_of_everything() {
    for scope in [None, Some("team=a".parse().expect("a selector"))] {
        let mut steps = Steps(20_261_208);
        let mut baseline = snapshot(&["c0", "c1", "c2", "c3", "c4"], "busybox:latest");
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
                baseline = snapshot(&["c2", "c3", "c5", "c6"], "busybox");
            }
            let mut containers: Vec<Arc<ContainerStatus>> = by_id.values().cloned().collect();
            containers.sort_by(|a, b| key(a).cmp(&key(b)));
            if steps.below(20) == 0 {
                containers.reverse();
            }
            let everything = super::super::drift(baseline.members(), &containers, &scope);
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
    let status = |name: &str, id: &str| Arc::new(status(id, name));
    let (a, b1, b2, c) = (
        status("a", "1"),
        status("b", "1"),
        status("b", "2"),
        status("c", "1"),
    );
    let before = vec![a.clone(), b1.clone(), c.clone()];
    assert_eq!(
        changed_names(&before, &before.clone()),
        Some(Changed::default())
    );
    // Out of order where it changed, or where an unchanged one meets a changed one: not walked.
    let late_a = status("a", "2");
    assert_eq!(
        changed_names(&before, &[a.clone(), c.clone(), b2.clone()]),
        None
    );
    assert_eq!(
        changed_names(&before, &[b1.clone(), late_a, c.clone()]),
        None
    );
    // Another status for `c`, a second `b`, `a` gone.
    let after = vec![b1.clone(), b2, status("c", "1")];
    let changed = changed_names(&before, &after).expect("in order");
    assert_eq!(changed.names, ["a", "b", "c"]);
    assert!(!changed.sharing);
    assert_eq!(
        changed_names(&[], std::slice::from_ref(&a))
            .expect("in order")
            .names,
        ["a"]
    );
    // A changed container that joined another's network is noticed; an unchanged one is not looked at.
    let mut joined = ContainerStatus::clone(&c);
    joined.shares.network = Some(a.id.clone());
    let changed = changed_names(&before, &[a, b1, Arc::new(joined)]).expect("in order");
    assert_eq!(changed.names, ["c"]);
    assert!(changed.sharing);
}
