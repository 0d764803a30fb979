//! The drift of each new view, worked out from the last one's ([`shared::drift::follow`]: only the names whose
//! containers changed are compared with the snapshot again), against the baseline status-api keeps.

use shared::drift::follow::Members;
use shared::SnapshotMember;

use crate::baseline::Baseline;

/// The last view's drift, followed from one view to the next.
pub type Drifts = shared::drift::follow::Drifts<Baseline>;

impl Members for Baseline {
    fn members(&self) -> &[SnapshotMember] {
        Baseline::members(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Utc;
    use poem_openapi::types::Example;
    use shared::{ContainerSpec, ContainerState, Health};

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use shared::{ContainerStatus, DriftItem};

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
}
