//! The plan: what to do about the difference between the snapshot and what status-api observes. Pure — no
//! I/O, no clock — and idempotent: it does not know why it runs, and the same inputs always give the same
//! actions. Drift itself comes from [`shared::drift`], the function status-api's `/drift` runs too, so the
//! controller and the API can never disagree about what is out of place; this module only decides what to do
//! about each difference.

use shared::drift::same_image;
use shared::{drift, ContainerState, DriftItem, DriftKind, Owners, Policy, SnapshotMember};

use crate::dependants::{order, Order};
use crate::model::{Action, ActionKind, Observed, Unexpected};

/// The controller's own choices that shape a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSettings {
    /// `--unexpected`.
    pub unexpected: Unexpected,
    /// Whether removed containers can be recreated: only with the token, which the specs need.
    pub can_recreate: bool,
    /// The container this controller runs in, if it runs in one: never touched.
    pub own_container_id: Option<String>,
    /// The container whose network namespace the controller's joined (`--network container:X`, a
    /// cri-dockerd pod's pause container): stopping it would cut the controller off, so it is never touched
    /// either, though it is not one of the pair.
    pub own_network_owner: Option<String>,
}

impl PlanSettings {
    /// The ids this controller protects for itself: its container and the owner of its network namespace.
    pub fn own_ids(&self) -> impl Iterator<Item = &str> {
        self.own_container_id
            .as_deref()
            .into_iter()
            .chain(self.own_network_owner.as_deref())
    }
}

/// Decides what to do about every difference between `snapshot` and `observed`, sorted by container name.
///
/// Per drift kind, for a container whose policy is `heal`: `stopped` → start; `paused` → unpause;
/// `unhealthy` → restart; `removed` → recreate (report only without the token); `unexpected` → stop, remove
/// or report, per `--unexpected`; `changed` → report (the container is no longer the one the snapshot
/// describes, so nothing may act on it as if it were). Policy `observe` → report; policy `ignore` → nothing
/// at all. The pair's own containers → report, whatever their labels say. A snapshotted container that is
/// `restarting` or `removing` → wait: the engine is already moving it, and the next change decides; so does
/// one whose death status-api has not yet confirmed (`settling`), as it may be on its way to removal.
/// `orphaned` → restart; and every start, restart and recreate of a member that shares another container's
/// namespace goes in dependency order ([`in_order`]).
pub fn plan(
    snapshot: &[SnapshotMember],
    observed: &Observed,
    settings: &PlanSettings,
) -> Vec<Action> {
    let owners = Owners::new(snapshot, &observed.containers, &observed.scope);
    let mut actions: Vec<Action> = drift(snapshot, &observed.containers, &observed.scope)
        .into_iter()
        .filter_map(|item| decide(item, observed, settings))
        .map(|action| in_order(action, &owners, settings.can_recreate))
        .collect();
    actions.extend(waits(snapshot, observed));
    actions.sort_by(|a, b| a.container.cmp(&b.container).then(a.kind.cmp(&b.kind)));
    actions
}

fn decide(item: DriftItem, observed: &Observed, settings: &PlanSettings) -> Option<Action> {
    let protected = protection(&item.id, observed, settings);
    let settling = observed
        .containers
        .iter()
        .any(|container| container.id == item.id && container.settling);
    let (kind, reason) = match (protected, item.policy, item.kind) {
        (Some(whose), _, _) => (
            ActionKind::Report,
            format!("{}; {whose}, never touched", item.detail),
        ),
        (None, Policy::Ignore, _) => return None,
        (None, Policy::Observe, _) => (
            ActionKind::Report,
            format!("{}; policy observe: reported, never acted on", item.detail),
        ),
        (None, Policy::Heal, _) if settling => (
            ActionKind::Wait,
            format!(
                "{}; it died moments ago and status-api is still confirming it with the engine \
                 (it may be being removed): the next change decides",
                item.detail
            ),
        ),
        (None, Policy::Heal, kind) => heal(kind, &item.detail, settings),
    };
    Some(Action {
        container: item.name,
        id: item.id,
        kind,
        drift: Some(item.kind),
        policy: item.policy,
        state: item.state,
        reason,
        waits_for: None,
    })
}

fn heal(kind: DriftKind, detail: &str, settings: &PlanSettings) -> (ActionKind, String) {
    let act = |action| (action, detail.to_owned());
    match kind {
        DriftKind::Stopped => act(ActionKind::Start),
        DriftKind::Paused => act(ActionKind::Unpause),
        DriftKind::Unhealthy => act(ActionKind::Restart),
        // A restart joins the owner's namespace of the day; `dependants` turns it into a wait or a replace
        // when the owner does not run or was recreated.
        DriftKind::Orphaned => act(ActionKind::Restart),
        DriftKind::Removed if settings.can_recreate => act(ActionKind::Recreate),
        DriftKind::Removed => (
            ActionKind::Report,
            format!("{detail}; without --token-file its spec cannot be read, so it is reported, not recreated"),
        ),
        DriftKind::Unexpected => match settings.unexpected {
            Unexpected::Stop => act(ActionKind::Stop),
            Unexpected::Remove => act(ActionKind::Remove),
            Unexpected::Ignore => (
                ActionKind::Report,
                format!("{detail}; --unexpected ignore: reported, never acted on"),
            ),
        },
        DriftKind::Changed => (
            ActionKind::Report,
            format!("{detail}; a changed container is reported, never acted on"),
        ),
    }
}

/// `action`, in dependency order ([`order`]): unchanged unless it heals a member whose namespace owner is
/// not as the member joined it. Then: the owner does not run → wait for it; it started again after the
/// member → restart the member; it was recreated → replace the member (report it without the token).
fn in_order(action: Action, owners: &Owners<'_>, can_recreate: bool) -> Action {
    if !matches!(
        action.kind,
        ActionKind::Start | ActionKind::Restart | ActionKind::Recreate
    ) {
        return action;
    }
    let (kind, reason, waits_for) = match order(&action.container, owners, can_recreate) {
        Order::AsPlanned => return action,
        Order::Wait { owner, reason } => (ActionKind::Wait, reason, Some(owner)),
        Order::Restart(reason) => (ActionKind::Restart, reason, None),
        Order::Replace(reason) => (ActionKind::Replace, reason, None),
        Order::Report(reason) => (ActionKind::Report, reason, None),
    };
    Action {
        kind,
        reason,
        waits_for,
        ..action
    }
}

/// Whose container `id` is, when it is one of the pair's own or the owner of the controller's network.
fn protection(id: &str, observed: &Observed, settings: &PlanSettings) -> Option<&'static str> {
    if settings.own_container_id.as_deref() == Some(id) {
        Some("it is status-controller's own container")
    } else if settings.own_network_owner.as_deref() == Some(id) {
        Some("it owns the network namespace status-controller's container joined")
    } else if observed.server_container_id.as_deref() == Some(id) {
        Some("it is status-api's own container")
    } else {
        None
    }
}

/// Snapshotted containers in scope that the engine is already moving: drift has nothing to say about them
/// yet, but a plan shown to a person should.
fn waits<'a>(
    snapshot: &'a [SnapshotMember],
    observed: &'a Observed,
) -> impl Iterator<Item = Action> + 'a {
    observed
        .containers
        .iter()
        .filter(|container| shared::in_scope(&observed.scope, &container.labels))
        .filter(|container| {
            matches!(
                container.state,
                ContainerState::Restarting | ContainerState::Removing
            )
        })
        .filter(|container| container.policy() != Policy::Ignore)
        .filter(|container| {
            snapshot
                .iter()
                .any(|member| member.name == container.name && same_image(member, container))
        })
        .map(|container| Action {
            container: container.name.clone(),
            id: container.id.clone(),
            kind: ActionKind::Wait,
            drift: None,
            policy: container.policy(),
            state: Some(container.state),
            reason: match container.state {
                ContainerState::Restarting => {
                    "restarting: the engine is already bringing it back".to_owned()
                }
                _ => "being removed by the engine: the next change decides".to_owned(),
            },
            waits_for: None,
        })
}

/// Whether a plan shows drift: anything but waiting for the engine. A dependant waiting for its namespace
/// owner is drift. `--once` exits 2 then.
pub fn has_drift(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|action| action.kind != ActionKind::Wait || action.waits_for.is_some())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shared::{ContainerStatus, Health, POLICY_LABEL};

    use super::*;

    const SCOPE_KEY: &str = "dockstate.test";

    fn labels(policy: Option<&str>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(SCOPE_KEY.to_owned(), "t1".to_owned())]);
        if let Some(policy) = policy {
            labels.insert(POLICY_LABEL.to_owned(), policy.to_owned());
        }
        labels
    }

    fn member(name: &str) -> SnapshotMember {
        SnapshotMember {
            name: name.into(),
            id: format!("{name}-snapshot-id"),
            image: "busybox:latest".into(),
            image_id: String::new(),
            labels: labels(None),
            shares: Default::default(),
        }
    }

    fn container(name: &str, state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            id: format!("{name}-id"),
            name: name.into(),
            image: "busybox:latest".into(),
            image_id: "sha256:1".into(),
            state,
            health: Health::None,
            exit_code: (state == ContainerState::Exited).then_some(137),
            restart_count: 0,
            created_at: None,
            started_at: None,
            finished_at: None,
            labels: labels(None),
            in_snapshot: false,
            policy: Default::default(),
            shares: Default::default(),
            settling: false,
        }
    }

    fn with_policy(mut container: ContainerStatus, policy: &str) -> ContainerStatus {
        container
            .labels
            .insert(POLICY_LABEL.to_owned(), policy.to_owned());
        container
    }

    fn observed(containers: Vec<ContainerStatus>) -> Observed {
        Observed {
            revision: 7,
            scope: Some(format!("{SCOPE_KEY}=t1").parse().expect("selector")),
            server_container_id: None,
            containers,
        }
    }

    fn settings() -> PlanSettings {
        PlanSettings {
            unexpected: Unexpected::Stop,
            can_recreate: true,
            own_container_id: None,
            own_network_owner: None,
        }
    }

    fn kinds(actions: &[Action]) -> Vec<(&str, ActionKind)> {
        actions
            .iter()
            .map(|action| (action.container.as_str(), action.kind))
            .collect()
    }

    fn plan_one(container: ContainerStatus) -> Vec<Action> {
        plan(&[member("a")], &observed(vec![container]), &settings())
    }

    #[test]
    fn in_sync_plans_nothing() {
        let actions = plan_one(container("a", ContainerState::Running));
        assert!(actions.is_empty(), "{actions:?}");
        assert!(!has_drift(&actions));
    }

    #[test]
    fn stopped_is_started() {
        for state in [
            ContainerState::Exited,
            ContainerState::Dead,
            ContainerState::Created,
        ] {
            let actions = plan_one(container("a", state));
            assert_eq!(kinds(&actions), vec![("a", ActionKind::Start)], "{state}");
            assert_eq!(actions[0].id, "a-id");
            assert_eq!(actions[0].drift, Some(DriftKind::Stopped));
            assert_eq!(actions[0].state, Some(state));
        }
        let actions = plan_one(container("a", ContainerState::Exited));
        assert!(actions[0].reason.contains("137"), "{}", actions[0].reason);
        assert!(has_drift(&actions));
    }

    #[test]
    fn paused_is_unpaused() {
        let mut paused = container("a", ContainerState::Paused);
        paused.health = Health::Unhealthy;
        assert_eq!(kinds(&plan_one(paused)), vec![("a", ActionKind::Unpause)]);
    }

    #[test]
    fn removed_is_recreated_with_the_token_and_reported_without() {
        let actions = plan(&[member("a")], &observed(vec![]), &settings());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Recreate)]);
        assert_eq!(actions[0].id, "a-snapshot-id");
        assert_eq!(actions[0].state, None);

        let without_token = PlanSettings {
            can_recreate: false,
            ..settings()
        };
        let actions = plan(&[member("a")], &observed(vec![]), &without_token);
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);
        assert_eq!(actions[0].drift, Some(DriftKind::Removed));
        assert!(
            actions[0].reason.contains("--token-file"),
            "{}",
            actions[0].reason
        );
    }

    #[test]
    fn unhealthy_is_restarted() {
        let mut sick = container("a", ContainerState::Running);
        sick.health = Health::Unhealthy;
        let actions = plan_one(sick);
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Restart)]);
        assert_eq!(actions[0].drift, Some(DriftKind::Unhealthy));
    }

    #[test]
    fn unexpected_follows_the_unexpected_flag() {
        let extra = || observed(vec![container("x", ContainerState::Running)]);
        for (flag, kind) in [
            (Unexpected::Stop, ActionKind::Stop),
            (Unexpected::Remove, ActionKind::Remove),
            (Unexpected::Ignore, ActionKind::Report),
        ] {
            let settings = PlanSettings {
                unexpected: flag,
                ..settings()
            };
            let actions = plan(&[], &extra(), &settings);
            assert_eq!(kinds(&actions), vec![("x", kind)], "{flag:?}");
            assert_eq!(actions[0].drift, Some(DriftKind::Unexpected));
            assert_eq!(actions[0].id, "x-id");
        }
        // Only running containers are unexpected: a stopped stranger is left alone.
        let stopped = observed(vec![container("x", ContainerState::Exited)]);
        assert!(plan(&[], &stopped, &settings()).is_empty());
    }

    #[test]
    fn policy_observe_only_reports() {
        let cases = [
            with_policy(container("a", ContainerState::Exited), "observe"),
            with_policy(container("a", ContainerState::Paused), "observe"),
            with_policy(container("x", ContainerState::Running), "observe"),
            // A policy dockstate does not understand is observe: a typo never licenses a stop.
            with_policy(container("x", ContainerState::Running), "heal-please"),
        ];
        for case in cases {
            let actions = plan(&[member("a")], &observed(vec![case.clone()]), &settings());
            let mine: Vec<_> = actions
                .iter()
                .filter(|action| action.container == case.name)
                .collect();
            assert_eq!(mine.len(), 1, "{case:?}");
            assert_eq!(mine[0].kind, ActionKind::Report, "{case:?}");
            assert_eq!(mine[0].policy, Policy::Observe);
            assert!(mine[0].reason.contains("observe"), "{}", mine[0].reason);
        }
        let mut member = member("a");
        member.labels.insert(POLICY_LABEL.into(), "observe".into());
        let actions = plan(&[member], &observed(vec![]), &settings());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);
    }

    #[test]
    fn policy_ignore_does_nothing_at_all() {
        let stopped = with_policy(container("a", ContainerState::Exited), "ignore");
        let stranger = with_policy(container("x", ContainerState::Running), "ignore");
        let mut sick = with_policy(container("b", ContainerState::Running), "ignore");
        sick.health = Health::Unhealthy;
        let actions = plan(
            &[member("a"), member("b")],
            &observed(vec![stopped, stranger, sick]),
            &settings(),
        );
        assert!(actions.is_empty(), "{actions:?}");

        let mut gone = member("c");
        gone.labels.insert(POLICY_LABEL.into(), "ignore".into());
        assert!(plan(&[gone], &observed(vec![]), &settings()).is_empty());
    }

    #[test]
    fn restarting_and_removing_wait() {
        for state in [ContainerState::Restarting, ContainerState::Removing] {
            let actions = plan_one(container("a", state));
            assert_eq!(kinds(&actions), vec![("a", ActionKind::Wait)], "{state}");
            assert_eq!(actions[0].drift, None);
            assert!(!has_drift(&actions), "waiting is not drift");
        }
        // A stranger restarting is not ours to wait for.
        let stranger = observed(vec![container("x", ContainerState::Restarting)]);
        assert!(plan(&[], &stranger, &settings()).is_empty());
        let ignored = with_policy(container("a", ContainerState::Restarting), "ignore");
        assert!(plan_one(ignored).is_empty());
    }

    #[test]
    fn a_death_not_yet_confirmed_waits() {
        let mut dying = container("a", ContainerState::Exited);
        dying.settling = true;
        let actions = plan_one(dying.clone());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Wait)]);
        assert!(
            actions[0].reason.contains("confirming"),
            "{}",
            actions[0].reason
        );
        assert!(!has_drift(&actions), "waiting is not drift");
        // Once its inspect answers it is a plain stopped member.
        dying.settling = false;
        assert_eq!(kinds(&plan_one(dying)), vec![("a", ActionKind::Start)]);
    }

    #[test]
    fn changed_is_only_reported() {
        let mut other = container("a", ContainerState::Exited);
        other.image = "nginx:1".into();
        let actions = plan_one(other);
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);
        assert_eq!(actions[0].drift, Some(DriftKind::Changed));
        assert!(
            actions[0].reason.contains("nginx:1"),
            "{}",
            actions[0].reason
        );
        // Not even a restart wait: it is not the snapshot's container any more.
        let mut moving = container("a", ContainerState::Restarting);
        moving.image = "nginx:1".into();
        assert_eq!(kinds(&plan_one(moving)), vec![("a", ActionKind::Report)]);
        // The same reference spelled in full is the same image: waited for.
        let mut spelled_out = container("a", ContainerState::Restarting);
        spelled_out.image = "docker.io/library/busybox:latest".into();
        assert_eq!(kinds(&plan_one(spelled_out)), vec![("a", ActionKind::Wait)]);
    }

    #[test]
    fn the_pair_s_own_containers_are_never_touched() {
        let mut status_api = container("status-api", ContainerState::Running);
        status_api.id = "a".repeat(64);
        let mut controller = container("controller", ContainerState::Exited);
        controller.id = "b".repeat(64);
        let mut observed = observed(vec![status_api, controller]);
        observed.server_container_id = Some("a".repeat(64));
        let settings = PlanSettings {
            own_container_id: Some("b".repeat(64)),
            unexpected: Unexpected::Remove,
            ..settings()
        };
        let actions = plan(&[member("controller")], &observed, &settings);
        assert_eq!(
            kinds(&actions),
            vec![
                ("controller", ActionKind::Report),
                ("status-api", ActionKind::Report)
            ]
        );
        assert!(actions[0].reason.contains("status-controller's own"));
        assert!(actions[1].reason.contains("status-api's own"));
    }

    #[test]
    fn the_owner_of_the_controller_s_network_namespace_is_never_touched() {
        // `--network container:X`: X is unexpected and labelled heal, but stopping it would cut the
        // controller's network.
        let mut owner = container("x", ContainerState::Running);
        owner.id = "c".repeat(64);
        let settings = PlanSettings {
            own_container_id: Some("b".repeat(64)),
            own_network_owner: Some("c".repeat(64)),
            ..settings()
        };
        let actions = plan(&[], &observed(vec![owner]), &settings);
        assert_eq!(kinds(&actions), vec![("x", ActionKind::Report)]);
        assert!(
            actions[0].reason.contains("network namespace"),
            "{}",
            actions[0].reason
        );
        assert_eq!(
            settings.own_ids().collect::<Vec<_>>(),
            ["b".repeat(64), "c".repeat(64)]
        );
    }

    #[test]
    fn nothing_outside_the_scope_is_planned() {
        let mut outsider = container("x", ContainerState::Running);
        outsider.labels.clear();
        let mut stopped_outsider = container("a", ContainerState::Exited);
        stopped_outsider
            .labels
            .insert(SCOPE_KEY.into(), "t2".into());
        let mut gone_outsider = member("b");
        gone_outsider.labels.clear();
        let mut restarting_outsider = container("c", ContainerState::Restarting);
        restarting_outsider.labels.clear();
        let actions = plan(
            &[member("a"), gone_outsider, member("c")],
            &observed(vec![outsider, stopped_outsider, restarting_outsider]),
            &settings(),
        );
        // `a` and `c` are snapshot members in scope whose only containers are out of scope: removed.
        assert_eq!(
            kinds(&actions),
            vec![("a", ActionKind::Recreate), ("c", ActionKind::Recreate)]
        );
    }

    #[test]
    fn a_plan_is_sorted_and_the_same_every_time() {
        let snapshot = [member("c"), member("a"), member("b")];
        let seen = observed(vec![
            container("b", ContainerState::Paused),
            container("z", ContainerState::Running),
            container("c", ContainerState::Exited),
        ]);
        let first = plan(&snapshot, &seen, &settings());
        assert_eq!(
            kinds(&first),
            vec![
                ("a", ActionKind::Recreate),
                ("b", ActionKind::Unpause),
                ("c", ActionKind::Start),
                ("z", ActionKind::Stop)
            ]
        );
        assert_eq!(plan(&snapshot, &seen, &settings()), first);
    }
}
