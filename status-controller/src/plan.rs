//! The plan: what to do about the difference between the snapshot and what status-api observes. Pure — no
//! I/O, no clock — and idempotent: it does not know why it runs, and the same inputs always give the same
//! actions. Drift itself comes from [`shared::drift`], the function status-api's `/drift` runs too, so the
//! controller and the API can never disagree about what is out of place; this module only decides what to do
//! about each difference.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use shared::drift::follow::Drifts;
use shared::drift::{drift_in_scope, unchanged};
use shared::{
    ContainerState, ContainerStatus, DriftItem, DriftKind, Owners, Policy, SnapshotMember,
    SnapshotSummary,
};

use crate::dependants::{order, Order};
use crate::model::{Action, ActionKind, Observed, Unexpected};
use by_name::Lookups;

mod by_name;
mod changed;
mod compose;

pub use compose::{ComposeAtWork, REPLACEMENT, SETTLE};

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

/// Decides what to do about every difference between `snapshot` and `observed` at `now` (the wall clock, as
/// data: the plan itself reads no clock), sorted by container name.
///
/// Per drift kind, for a container whose policy is `heal`: `stopped` → start, except a `dead` one, which can
/// never start again → replace (removed and created again from its spec; reported without the token);
/// `completed` (a job that finished) → report, never start; `paused` → unpause;
/// `unhealthy` → restart; `removed` → recreate (report only without the token); `unexpected` → stop, remove
/// or report, per `--unexpected`; `changed` → report (the container is no longer the one the snapshot
/// describes, so nothing may act on it as if it were). Policy `observe` → report; policy `ignore` → nothing
/// at all. The pair's own containers → report, whatever their labels say. A snapshotted container that is
/// `restarting` or `removing` → wait: the engine is already moving it, and the next change decides; so does
/// one whose death status-api has not yet confirmed (`settling`), as it may be on its way to removal.
/// `orphaned` → restart; and every start, restart and recreate of a member that shares another container's
/// namespace goes in dependency order ([`in_order`]). While compose replaces a container of its own
/// ([`compose`]), its member and the container compose set aside wait, until a moment the action names.
pub fn plan(
    snapshot: &[SnapshotMember],
    observed: &Observed,
    settings: &PlanSettings,
    now: DateTime<Utc>,
) -> Vec<Action> {
    plan_from(snapshot, observed, settings, now, |members, containers| {
        drift_in_scope(members.to_vec(), containers.to_vec())
    })
}

/// The drift the reconcile loop follows from one pass to the next ([`shared::drift::follow`]).
pub type FollowedDrift = Drifts<SnapshotSummary>;

/// [`plan`], with the drift worked out from the last pass's `drifts`: only the names whose containers are not
/// the ones of the last answer (containers byte for byte the same are shared between answers) are compared
/// again. At 20,000 members the drift over everything was a fifth of a pass. The actions are the same.
pub fn plan_following(
    drifts: &mut FollowedDrift,
    snapshot: &Arc<SnapshotSummary>,
    observed: &Observed,
    settings: &PlanSettings,
    now: DateTime<Utc>,
) -> Vec<Action> {
    let drift = drifts.follow(snapshot, observed.containers.clone(), &observed.scope);
    plan_from(&snapshot.containers, observed, settings, now, |_, _| {
        drift.iter().map(|item| DriftItem::clone(item)).collect()
    })
}

/// The plan, with the drift of the members and containers in scope from `drift`.
fn plan_from(
    snapshot: &[SnapshotMember],
    observed: &Observed,
    settings: &PlanSettings,
    now: DateTime<Utc>,
    drift: impl FnOnce(&[&SnapshotMember], &[&ContainerStatus]) -> Vec<DriftItem>,
) -> Vec<Action> {
    // Each member's and container's scope checked once, for the drift, the namespace owners and the plan.
    let members_in_scope: Vec<&SnapshotMember> = snapshot
        .iter()
        .filter(|member| shared::in_scope(&observed.scope, &member.labels))
        .collect();
    let in_scope: Vec<&ContainerStatus> = observed
        .containers
        .iter()
        .map(AsRef::as_ref)
        .filter(|container| shared::in_scope(&observed.scope, &container.labels))
        .collect();
    // The namespace owners, only once an action dependency order may change asks for them.
    let owners = OnceCell::new();
    let owners = || owners.get_or_init(|| Owners::in_scope(&members_in_scope, &in_scope));
    let lookups = Lookups::new(snapshot, &in_scope);
    // The few containers compose may have set aside, and the few whose death is not confirmed yet: found in
    // one look each, not one per drift item.
    let aside: Vec<&ContainerStatus> = in_scope
        .iter()
        .copied()
        .filter(|container| compose::may_be_set_aside(container))
        .collect();
    let settling: HashSet<&str> = observed
        .containers
        .iter()
        .filter(|container| container.settling)
        .map(|container| container.id.as_str())
        .collect();
    let mut actions: Vec<Action> = drift(&members_in_scope, &in_scope)
        .into_iter()
        .filter_map(|item| {
            let circumstances = Circumstances {
                at_work: compose_at_work(&item, &lookups, &aside, now),
                put_back: lookups
                    .members(&item.name)
                    .iter()
                    .any(|member| changed::opted_in(member)),
                settling: settling.contains(item.id.as_str()),
            };
            decide(item, observed, settings, circumstances)
        })
        .map(|action| in_order(action, owners, settings.can_recreate))
        .collect();
    actions.extend(waits(&in_scope, &lookups));
    actions.sort_by(|a, b| a.container.cmp(&b.container).then(a.kind.cmp(&b.kind)));
    actions
}

/// Whether compose is at work on the container of `item` (see [`compose`]): for a stopped (not dead) or
/// removed member, and for an unexpected container compose set aside. `aside`: the containers in scope
/// compose may have set aside.
fn compose_at_work(
    item: &DriftItem,
    lookups: &Lookups<'_>,
    aside: &[&ContainerStatus],
    now: DateTime<Utc>,
) -> Option<ComposeAtWork> {
    let current = || lookups.container(&item.name);
    match (item.kind, item.state) {
        (DriftKind::Stopped, Some(ContainerState::Dead)) => None,
        (DriftKind::Stopped | DriftKind::Removed, _) => {
            let member = lookups.member(&item.name)?;
            compose::member_at_work(member, current(), aside, now)
        }
        (DriftKind::Unexpected, _) => {
            compose::stranger_at_work(current()?, lookups.snapshot(), now)
        }
        _ => None,
    }
}

/// What besides its drift decides an item's action.
struct Circumstances {
    /// Whether compose is replacing its container, and until when.
    at_work: Option<ComposeAtWork>,
    /// Whether its member asked to be put back to its snapshot spec when it is `changed`.
    put_back: bool,
    /// Whether status-api has not confirmed its container's death yet.
    settling: bool,
}

/// The action for one drift item, in its [`Circumstances`].
fn decide(
    item: DriftItem,
    observed: &Observed,
    settings: &PlanSettings,
    Circumstances {
        at_work,
        put_back,
        settling,
    }: Circumstances,
) -> Option<Action> {
    let protected = protection(&item.id, observed, settings);
    let mut retry_at = None;
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
        (None, Policy::Heal, _) => match at_work {
            Some(at_work) => {
                retry_at = Some(at_work.until);
                (
                    ActionKind::Wait,
                    format!("{}; {}", item.detail, at_work.reason),
                )
            }
            None => heal(&item, settings, put_back),
        },
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
        retry_at,
    })
}

fn heal(item: &DriftItem, settings: &PlanSettings, put_back: bool) -> (ActionKind, String) {
    let detail = item.detail.as_str();
    let act = |action| (action, detail.to_owned());
    match item.kind {
        DriftKind::Stopped if item.state == Some(ContainerState::Dead) && settings.can_recreate => (
            ActionKind::Replace,
            format!("{detail}; it is removed and created again from its snapshot spec"),
        ),
        DriftKind::Stopped if item.state == Some(ContainerState::Dead) => (
            ActionKind::Report,
            format!(
                "{detail}; without --token-file its spec cannot be read, so it is reported, not \
                 removed and recreated"
            ),
        ),
        DriftKind::Stopped => act(ActionKind::Start),
        DriftKind::Completed => (
            ActionKind::Report,
            format!("{detail}; a completed job is reported, never acted on"),
        ),
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
        DriftKind::Changed => changed::decide(detail, put_back, settings.can_recreate),
        DriftKind::StaleImage => (
            ActionKind::Report,
            format!("{detail}; a stale image is reported, never acted on: recreate the container to run the new image"),
        ),
    }
}

/// `action`, in dependency order ([`order`]): unchanged unless it heals a member whose namespace owner is
/// not as the member joined it. Then: the owner does not run → wait for it; it started again after the
/// member → restart the member; it was recreated → replace the member (report it without the token).
fn in_order<'a>(
    action: Action,
    owners: impl FnOnce() -> &'a Owners<'a>,
    can_recreate: bool,
) -> Action {
    if !matches!(
        action.kind,
        ActionKind::Start | ActionKind::Restart | ActionKind::Recreate
    ) {
        return action;
    }
    let (kind, reason, waits_for) = match order(&action.container, owners(), can_recreate) {
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
    in_scope: &'a [&'a ContainerStatus],
    lookups: &'a Lookups<'a>,
) -> impl Iterator<Item = Action> + 'a {
    in_scope
        .iter()
        .copied()
        .filter(|container| {
            matches!(
                container.state,
                ContainerState::Restarting | ContainerState::Removing
            )
        })
        .filter(|container| container.policy() != Policy::Ignore)
        .filter(|container| {
            lookups
                .members(&container.name)
                .iter()
                .any(|member| unchanged(member, container))
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
            retry_at: None,
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
    use std::sync::Arc;

    use shared::{ExitCause, Health, RestartPolicy, POLICY_LABEL};

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
            ports: Vec::new(),
            in_snapshot: false,
            policy: Default::default(),
            shares: Default::default(),
            settling: false,
            restart_policy: Some(RestartPolicy::No),
            exit_cause: (state == ContainerState::Exited).then_some(ExitCause::Natural),
            spec_changes: Vec::new(),
            tag_image_id: None,
            spec: None,
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
            containers: containers.into_iter().map(Arc::new).collect(),
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

    /// The moment every test plans at.
    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .expect("a valid time")
            .with_timezone(&Utc)
    }

    /// Pass after pass over answers that share their unchanged containers (as the controller's reading of
    /// `/status` does), a member stopping, coming back, being removed and an unexpected one starting: the
    /// plan from the followed drift is the plan from the drift over everything, and a new snapshot is taken
    /// into account.
    #[test]
    fn the_plan_from_the_followed_drift_is_the_plan_from_all_of_it() {
        let snapshot = |names: &[&str]| {
            Arc::new(SnapshotSummary {
                taken_at: now(),
                scope: None,
                containers: names.iter().map(|name| member(name)).collect(),
            })
        };
        let mut members = snapshot(&["api", "db", "web"]);
        let mut containers: Vec<Arc<ContainerStatus>> = ["api", "db", "web"]
            .iter()
            .map(|name| Arc::new(container(name, ContainerState::Running)))
            .collect();
        let mut drifts = FollowedDrift::default();
        type Step = Box<dyn Fn(&mut Vec<Arc<ContainerStatus>>)>;
        let steps: Vec<Step> = vec![
            Box::new(|_| {}),
            Box::new(|all| all[1] = Arc::new(container("db", ContainerState::Exited))),
            Box::new(|all| all[1] = Arc::new(container("db", ContainerState::Running))),
            Box::new(|all| {
                all.remove(2);
            }),
            Box::new(|all| all.push(Arc::new(container("zz-extra", ContainerState::Running)))),
            Box::new(|all| all[0] = Arc::new(container("api", ContainerState::Paused))),
        ];
        let mut planned = Vec::new();
        for (step, change) in steps.iter().enumerate() {
            change(&mut containers);
            if step == 4 {
                members = snapshot(&["api", "db"]);
            }
            let observed = Observed {
                containers: containers.clone(),
                ..observed(Vec::new())
            };
            let followed = plan_following(&mut drifts, &members, &observed, &settings(), now());
            let everything = plan(&members.containers, &observed, &settings(), now());
            assert_eq!(followed, everything, "step {step}");
            planned.extend(everything.iter().map(|action| action.kind));
        }
        // The steps did plan something: a start, a recreate, a stop, an unpause.
        for kind in [
            ActionKind::Start,
            ActionKind::Recreate,
            ActionKind::Stop,
            ActionKind::Unpause,
        ] {
            assert!(planned.contains(&kind), "{kind:?} in {planned:?}");
        }
    }

    fn plan_now(
        snapshot: &[SnapshotMember],
        observed: &Observed,
        settings: &PlanSettings,
    ) -> Vec<Action> {
        plan(snapshot, observed, settings, now())
    }

    fn plan_one(container: ContainerStatus) -> Vec<Action> {
        plan_now(&[member("a")], &observed(vec![container]), &settings())
    }

    #[test]
    fn in_sync_plans_nothing() {
        let actions = plan_one(container("a", ContainerState::Running));
        assert!(actions.is_empty(), "{actions:?}");
        assert!(!has_drift(&actions));
    }

    #[test]
    fn stopped_is_started() {
        for state in [ContainerState::Exited, ContainerState::Created] {
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
    fn a_completed_job_is_reported_never_started() {
        let mut finished = container("a", ContainerState::Exited);
        finished.exit_code = Some(0);
        let actions = plan_one(finished.clone());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);
        assert_eq!(actions[0].drift, Some(DriftKind::Completed));
        assert!(
            actions[0].reason.contains("never acted on"),
            "{}",
            actions[0].reason
        );
        assert!(has_drift(&actions), "reported drift");
        assert_eq!(
            kinds(&plan_one(with_policy(finished.clone(), "observe"))),
            vec![("a", ActionKind::Report)]
        );
        assert!(plan_one(with_policy(finished.clone(), "ignore")).is_empty());

        // The same exit asked for, or a failure: a stopped member, started.
        let mut stopped = finished.clone();
        stopped.exit_cause = Some(ExitCause::Requested);
        assert_eq!(kinds(&plan_one(stopped)), vec![("a", ActionKind::Start)]);
        let mut failed = finished;
        failed.exit_code = Some(3);
        assert_eq!(kinds(&plan_one(failed)), vec![("a", ActionKind::Start)]);
    }

    #[test]
    fn a_dead_member_is_replaced_with_the_token_and_reported_without_never_started() {
        let dead = container("a", ContainerState::Dead);
        let actions = plan_one(dead.clone());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Replace)]);
        assert_eq!(actions[0].drift, Some(DriftKind::Stopped));
        assert_eq!(actions[0].id, "a-id");
        assert!(
            actions[0].reason.contains("created again"),
            "{}",
            actions[0].reason
        );

        let without_token = PlanSettings {
            can_recreate: false,
            ..settings()
        };
        let actions = plan_now(
            &[member("a")],
            &observed(vec![dead.clone()]),
            &without_token,
        );
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);
        assert!(
            actions[0].reason.contains("--token-file"),
            "{}",
            actions[0].reason
        );
        assert!(plan_one(with_policy(dead, "ignore")).is_empty());
    }

    /// The labels compose gives the container of service `a`, number 1, in project `shop`.
    fn compose_labels(project: &str) -> BTreeMap<String, String> {
        let mut labels = labels(None);
        for (key, value) in [
            ("com.docker.compose.project", project),
            ("com.docker.compose.service", "a"),
            ("com.docker.compose.container-number", "1"),
        ] {
            labels.insert(key.to_owned(), value.to_owned());
        }
        labels
    }

    fn seconds_ago(seconds: i64) -> Option<DateTime<Utc>> {
        Some(now() - chrono::TimeDelta::seconds(seconds))
    }

    /// Member `a` of compose project `shop`, in the snapshot.
    fn compose_member() -> SnapshotMember {
        SnapshotMember {
            labels: compose_labels("shop"),
            ..member("a")
        }
    }

    /// `a` in project `shop`, stopped `ago` seconds ago, how `cause` says.
    fn compose_stopped(ago: i64, cause: ExitCause) -> ContainerStatus {
        let mut stopped = container("a", ContainerState::Exited);
        stopped.labels = compose_labels("shop");
        stopped.exit_cause = Some(cause);
        stopped.exit_code = Some(0);
        stopped.finished_at = seconds_ago(ago);
        stopped
    }

    /// `a` in project `shop`, created `ago` seconds ago and never started.
    fn compose_created(ago: i64) -> ContainerStatus {
        let mut created = container("a", ContainerState::Created);
        created.labels = compose_labels("shop");
        created.exit_code = None;
        created.exit_cause = None;
        created.id = "a-new-id".into();
        created.created_at = seconds_ago(ago);
        created
    }

    /// A container of project `project` named `name`, set aside (exited) `ago` seconds ago.
    fn set_aside(name: &str, project: &str, ago: i64) -> ContainerStatus {
        let mut old = container(name, ContainerState::Exited);
        old.labels = compose_labels(project);
        old.id = format!("{name}-old-id");
        old.created_at = seconds_ago(3_600);
        old.started_at = seconds_ago(3_000);
        old.finished_at = seconds_ago(ago);
        old
    }

    /// docker compose v2's new container, created `ago` seconds ago under a temporary name.
    fn replacement(name: &str, ago: i64) -> ContainerStatus {
        let mut new = compose_created(ago);
        new.name = name.into();
        new.labels
            .insert("com.docker.compose.replace".into(), "a-1".into());
        new
    }

    #[test]
    fn compose_replacing_its_own_container_is_left_to_compose_for_a_while() {
        let hex = "0d0e0b0e3a4a";
        let renamed = format!("{hex}_a");
        let plain = |mut status: ContainerStatus| {
            status.labels = labels(None);
            status
        };
        let (start, wait, recreate) = (ActionKind::Start, ActionKind::Wait, ActionKind::Recreate);
        let table: Vec<(&str, Vec<ContainerStatus>, ActionKind, Option<i64>)> = vec![
            // docker-compose 1.29: stop, rename, create, start, remove.
            (
                "stopped on request a moment ago",
                vec![compose_stopped(1, ExitCause::Requested)],
                wait,
                Some(4),
            ),
            (
                "stopped on request, nobody took over",
                vec![compose_stopped(6, ExitCause::Requested)],
                start,
                None,
            ),
            (
                "renamed aside: the member is gone",
                vec![set_aside(&renamed, "shop", 1)],
                wait,
                Some(59),
            ),
            (
                "created under the name, the old one aside",
                vec![compose_created(0), set_aside(&renamed, "shop", 1)],
                wait,
                Some(59),
            ),
            (
                "created by compose a moment ago",
                vec![compose_created(2)],
                wait,
                Some(3),
            ),
            (
                "created long ago, never started",
                vec![compose_created(10)],
                start,
                None,
            ),
            (
                "a leftover of a compose that died half way",
                vec![compose_created(120), set_aside(&renamed, "shop", 120)],
                start,
                None,
            ),
            // docker compose v2: create aside, stop, remove, rename, start.
            (
                "v2's replacement created aside, the old one stopped",
                vec![
                    compose_stopped(1, ExitCause::Requested),
                    replacement(&renamed, 8),
                ],
                wait,
                Some(52),
            ),
            (
                "v2's replacement aside, the old one removed",
                vec![replacement(&renamed, 8)],
                wait,
                Some(52),
            ),
            (
                "a newer v2 replacement, named otherwise",
                vec![replacement("shop-a-1-tmp", 8)],
                wait,
                Some(52),
            ),
            // Everything else is healed at once, as before.
            (
                "a crash: no kill before the die",
                vec![{
                    let mut crashed = compose_stopped(1, ExitCause::Natural);
                    crashed.exit_code = Some(137);
                    crashed
                }],
                start,
                None,
            ),
            (
                "stopped on request outside compose",
                vec![plain(compose_stopped(1, ExitCause::Requested))],
                start,
                None,
            ),
            ("removed, nothing aside", vec![], recreate, None),
            (
                "removed, the look-alike is in another project",
                vec![set_aside(&renamed, "other", 1)],
                recreate,
                None,
            ),
            (
                "removed, the name is no short id",
                vec![set_aside("0d0e_a", "shop", 1)],
                recreate,
                None,
            ),
        ];
        for (what, containers, expected, retry_in) in table {
            let actions = plan_now(&[compose_member()], &observed(containers), &settings());
            let mine: Vec<&Action> = actions.iter().filter(|a| a.container == "a").collect();
            assert_eq!(mine.len(), 1, "{what}: {actions:?}");
            assert_eq!(mine[0].kind, expected, "{what}: {}", mine[0].reason);
            assert_eq!(
                mine[0].retry_at,
                retry_in.map(|seconds| now() + chrono::TimeDelta::seconds(seconds)),
                "{what}"
            );
            assert!(
                !has_drift(&actions) || expected != wait,
                "{what}: waiting is not drift"
            );
            if expected == wait {
                assert!(
                    mine[0].reason.contains("compose"),
                    "{what}: {}",
                    mine[0].reason
                );
            }
        }
    }

    #[test]
    fn a_container_compose_set_aside_is_never_stopped_as_unexpected_while_it_replaces() {
        let mut aside = set_aside("0d0e0b0e3a4a_a", "shop", 0);
        aside.state = ContainerState::Running;
        aside.exit_code = None;
        aside.started_at = seconds_ago(1);
        aside.finished_at = None;
        let running = {
            let mut new = compose_created(0);
            new.state = ContainerState::Running;
            new.started_at = seconds_ago(0);
            new
        };
        let actions = plan_now(
            &[compose_member()],
            &observed(vec![running.clone(), aside.clone()]),
            &settings(),
        );
        assert_eq!(kinds(&actions), vec![("0d0e0b0e3a4a_a", ActionKind::Wait)]);
        assert_eq!(
            actions[0].retry_at,
            Some(now() + chrono::TimeDelta::seconds(59))
        );
        // Long after: a stranger like any other.
        aside.started_at = seconds_ago(600);
        let actions = plan_now(
            &[compose_member()],
            &observed(vec![running, aside]),
            &settings(),
        );
        assert_eq!(kinds(&actions), vec![("0d0e0b0e3a4a_a", ActionKind::Stop)]);
        // Not beside a member of its project: a stranger.
        let mut stranger = set_aside("0d0e0b0e3a4a_b", "shop", 0);
        stranger.state = ContainerState::Running;
        let actions = plan_now(&[compose_member()], &observed(vec![stranger]), &settings());
        assert_eq!(
            kinds(&actions),
            vec![
                ("0d0e0b0e3a4a_b", ActionKind::Stop),
                ("a", ActionKind::Recreate)
            ]
        );
    }

    /// The plan looks members and containers up by name, and for set-aside containers among those that may
    /// be one only: hundreds of members stopped at once, listed in any order, one of them settling and one
    /// beside a container compose set aside, plan as each would alone.
    #[test]
    fn a_mass_outage_plans_each_member_as_it_would_alone() {
        let mut snapshot: Vec<SnapshotMember> =
            (0..300).map(|i| member(&format!("m{i:03}"))).collect();
        snapshot.push(compose_member());
        let mut containers: Vec<ContainerStatus> = (0..300)
            .map(|i| container(&format!("m{i:03}"), ContainerState::Exited))
            .collect();
        containers[5].settling = true;
        containers.push(set_aside("0d0e0b0e3a4a_a", "shop", 1));
        containers.reverse();
        let actions = plan_now(&snapshot, &observed(containers), &settings());
        assert_eq!(actions.len(), 301, "{actions:?}");
        let waits: Vec<(&str, ActionKind)> = kinds(&actions)
            .into_iter()
            .filter(|(_, kind)| *kind != ActionKind::Start)
            .collect();
        assert_eq!(waits, [("a", ActionKind::Wait), ("m005", ActionKind::Wait)]);
        assert!(
            actions[0].reason.contains("compose"),
            "{}",
            actions[0].reason
        );

        assert!(compose::may_be_set_aside(&set_aside(
            "0d0e0b0e3a4a_a",
            "shop",
            1
        )));
        assert!(compose::may_be_set_aside(&replacement("shop-a-1-tmp", 8)));
        assert!(!compose::may_be_set_aside(&set_aside("0d0e_a", "shop", 1)));
        assert!(!compose::may_be_set_aside(&container(
            "0d0e0b0e3a4a_a",
            ContainerState::Running
        )));
    }

    #[test]
    fn compose_waits_only_for_heal_and_never_outlast_a_death_not_yet_confirmed() {
        let stopped = compose_stopped(1, ExitCause::Requested);
        let observe = with_policy(stopped.clone(), "observe");
        let mut member = compose_member();
        member.labels.insert(POLICY_LABEL.into(), "observe".into());
        let actions = plan_now(&[member], &observed(vec![observe]), &settings());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);

        let mut settling = stopped;
        settling.settling = true;
        let actions = plan_now(&[compose_member()], &observed(vec![settling]), &settings());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Wait)]);
        assert!(
            actions[0].reason.contains("confirming"),
            "{}",
            actions[0].reason
        );
        assert_eq!(actions[0].retry_at, None, "the next change decides");
    }

    #[test]
    fn paused_is_unpaused() {
        let mut paused = container("a", ContainerState::Paused);
        paused.health = Health::Unhealthy;
        assert_eq!(kinds(&plan_one(paused)), vec![("a", ActionKind::Unpause)]);
    }

    #[test]
    fn removed_is_recreated_with_the_token_and_reported_without() {
        let actions = plan_now(&[member("a")], &observed(vec![]), &settings());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Recreate)]);
        assert_eq!(actions[0].id, "a-snapshot-id");
        assert_eq!(actions[0].state, None);

        let without_token = PlanSettings {
            can_recreate: false,
            ..settings()
        };
        let actions = plan_now(&[member("a")], &observed(vec![]), &without_token);
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
            let actions = plan_now(&[], &extra(), &settings);
            assert_eq!(kinds(&actions), vec![("x", kind)], "{flag:?}");
            assert_eq!(actions[0].drift, Some(DriftKind::Unexpected));
            assert_eq!(actions[0].id, "x-id");
        }
        // Only running containers are unexpected: a stopped stranger is left alone.
        let stopped = observed(vec![container("x", ContainerState::Exited)]);
        assert!(plan_now(&[], &stopped, &settings()).is_empty());
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
            let actions = plan_now(&[member("a")], &observed(vec![case.clone()]), &settings());
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
        let actions = plan_now(&[member], &observed(vec![]), &settings());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);
    }

    #[test]
    fn policy_ignore_does_nothing_at_all() {
        let stopped = with_policy(container("a", ContainerState::Exited), "ignore");
        let stranger = with_policy(container("x", ContainerState::Running), "ignore");
        let mut sick = with_policy(container("b", ContainerState::Running), "ignore");
        sick.health = Health::Unhealthy;
        let actions = plan_now(
            &[member("a"), member("b")],
            &observed(vec![stopped, stranger, sick]),
            &settings(),
        );
        assert!(actions.is_empty(), "{actions:?}");

        let mut gone = member("c");
        gone.labels.insert(POLICY_LABEL.into(), "ignore".into());
        assert!(plan_now(&[gone], &observed(vec![]), &settings()).is_empty());
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
        assert!(plan_now(&[], &stranger, &settings()).is_empty());
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
    fn a_changed_member_labelled_to_be_put_back_is_replaced_with_the_token_only() {
        let mut replaced = container("a", ContainerState::Running);
        replaced.spec_changes = vec![shared::SpecChange {
            field: "env".into(),
            key: Some("FOO".into()),
            change: shared::ChangeKind::Changed,
            snapshot: None,
            current: None,
        }];
        // Not labelled: reported, with the two ways out.
        let actions = plan_now(
            &[member("a")],
            &observed(vec![replaced.clone()]),
            &settings(),
        );
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);
        assert!(
            actions[0].reason.contains("env FOO changed"),
            "{}",
            actions[0].reason
        );
        assert!(
            actions[0].reason.contains("PUT /snapshot"),
            "{}",
            actions[0].reason
        );

        let mut labelled = member("a");
        labelled.labels.insert(
            shared::CHANGED_LABEL.into(),
            shared::CHANGED_RECREATE.into(),
        );
        let snapshot = [labelled];
        let actions = plan_now(&snapshot, &observed(vec![replaced.clone()]), &settings());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Replace)]);
        assert_eq!(actions[0].drift, Some(DriftKind::Changed));
        assert_eq!(actions[0].id, "a-id");

        let without_token = PlanSettings {
            can_recreate: false,
            ..settings()
        };
        let actions = plan_now(&snapshot, &observed(vec![replaced.clone()]), &without_token);
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);
        assert!(
            actions[0].reason.contains("--token-file"),
            "{}",
            actions[0].reason
        );

        // The container's own policy still rules: observe reports.
        let watched = with_policy(replaced.clone(), "observe");
        let actions = plan_now(&snapshot, &observed(vec![watched]), &settings());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);

        // The pair's own containers never, whatever the label.
        let own = PlanSettings {
            own_container_id: Some("a-id".into()),
            ..settings()
        };
        let actions = plan_now(&snapshot, &observed(vec![replaced.clone()]), &own);
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);

        // A stale image is never acted on, labelled or not.
        let mut stale = container("a", ContainerState::Running);
        stale.tag_image_id = Some(format!("sha256:{}", "9".repeat(64)));
        let actions = plan_now(&snapshot, &observed(vec![stale]), &settings());
        assert_eq!(kinds(&actions), vec![("a", ActionKind::Report)]);
        assert_eq!(actions[0].drift, Some(DriftKind::StaleImage));
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
        let actions = plan_now(&[member("controller")], &observed, &settings);
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
        let actions = plan_now(&[], &observed(vec![owner]), &settings);
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
        let actions = plan_now(
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
        let first = plan_now(&snapshot, &seen, &settings());
        assert_eq!(
            kinds(&first),
            vec![
                ("a", ActionKind::Recreate),
                ("b", ActionKind::Unpause),
                ("c", ActionKind::Start),
                ("z", ActionKind::Stop)
            ]
        );
        assert_eq!(plan_now(&snapshot, &seen, &settings()), first);
    }
}
