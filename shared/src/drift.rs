//! Drift: how the host differs from its snapshot. Pure — no I/O, no clock — so status-api's `/drift` and the
//! controller's plan are computed by the same function from the same data, and every rule is unit-tested.

use std::borrow::Borrow;
use std::cmp::Ordering;

use crate::image_ref::{is_image_id, is_image_id_of, same_reference};
use crate::model::{
    in_scope, ContainerState, ContainerStatus, DriftItem, DriftKind, ExitCause, Health, Policy,
    RestartPolicy, Scope, SnapshotMember,
};
use crate::namespaces::Owners;
use crate::spec_summary::{ChangeKind, SpecChange};

pub mod follow;

/// Compares the snapshot with what the engine shows now (containers in every state).
///
/// Identity is the container name: a container recreated under the same name is the same member. Containers
/// outside `scope` never appear, whichever side they are on. The rules, per snapshot member:
/// - no container of that name: `removed`;
/// - another image reference than the snapshot's, compared normalised (`nginx` ≡ `nginx:latest` ≡
///   `docker.io/library/nginx:latest`), or, while it runs, any other field of its spec
///   (`ContainerStatus::spec_changes`, which status-api fills in from [`crate::spec_diff::diff`]): `changed`, with every change listed (and
///   nothing else: it is no longer the container the snapshot describes, so nothing may act on it as if it
///   were). A container created from the snapshot's image id itself — what a recreate does when the tag is
///   gone — runs the same image, so it is not changed;
/// - `exited` with code 0 by itself, as status-api saw it, and a restart policy that would not restart it
///   (`no`, `on-failure`): `completed` ([`completed`]) — a job that finished;
/// - `created`, `exited`, `dead`: `stopped`;
/// - `paused`: `paused` — never `unhealthy`, although the engine reports paused containers as unhealthy;
/// - `running`, sharing the network, IPC or PID namespace of a container that does not run, was replaced
///   under its name, or started again after it ([`Owners::fate`]): `orphaned` — it has lost that namespace;
/// - `running` with an unhealthy healthcheck: `unhealthy`;
/// - `running`, in sync otherwise, and its image reference names another image now: `stale_image` — one item
///   per member at most, so this one waits until nothing else is wrong;
/// - `restarting` or `removing`: nothing yet — the engine is already moving it, the next change decides.
///
/// And a running container whose name is not in the snapshot is `unexpected` unless its policy is `ignore`.
/// Items come sorted by name, then kind.
pub fn drift<C: Borrow<ContainerStatus>>(
    snapshot: &[SnapshotMember],
    observed: &[C],
    scope: &Scope,
) -> Vec<DriftItem> {
    // Limited to the scope once, for drift and for the namespace owners alike.
    let members: Vec<&SnapshotMember> = snapshot
        .iter()
        .filter(|member| in_scope(scope, &member.labels))
        .collect();
    let visible: Vec<&ContainerStatus> = observed
        .iter()
        .map(Borrow::borrow)
        .filter(|container| in_scope(scope, &container.labels))
        .collect();
    drift_in_scope(members, visible)
}

/// [`drift`] over the members and the containers already limited to the scope, for a caller that limits them
/// for itself too (the controller's plan): each one's scope is then checked once, not once per use.
pub fn drift_in_scope(
    members: Vec<&SnapshotMember>,
    visible: Vec<&ContainerStatus>,
) -> Vec<DriftItem> {
    let owners = Owners::in_scope(&members, &visible);

    // Both sides by name, walked side by side: no map, no hashing, and linear on what status-api holds
    // (both sorted by name already).
    let members = by_name(members, |member| &member.name);
    let containers = by_name(visible, |container| &container.name);
    let mut items = Vec::new();
    let (mut members, mut containers) = (
        members.into_iter().peekable(),
        containers.into_iter().peekable(),
    );
    loop {
        let order = match (members.peek(), containers.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(member), Some(container)) => member.name.cmp(&container.name),
        };
        let member = members.next_if(|_| order != Ordering::Greater);
        let container = containers.next_if(|_| order != Ordering::Less);
        items.extend(match (member, container) {
            (Some(member), current) => member_drift(member, current, &owners),
            (None, Some(container)) => unexpected(container),
            (None, None) => None,
        });
    }
    items.sort_by(|a, b| a.name.cmp(&b.name).then(a.kind.cmp(&b.kind)));
    items
}

/// `items` sorted by name, the last of each name kept (as a map keyed by name would keep it). Stable, and
/// linear when they come sorted.
fn by_name<T>(mut items: Vec<&T>, name: fn(&T) -> &String) -> Vec<&T> {
    items.sort_by(|a, b| name(a).cmp(name(b)));
    let mut kept: Vec<&T> = Vec::with_capacity(items.len());
    for item in items {
        match kept.last_mut() {
            Some(last) if name(last) == name(item) => *last = item,
            _ => kept.push(item),
        }
    }
    kept
}

/// A container in scope whose name is not in the snapshot: `unexpected` when it runs and its policy is not
/// `ignore`.
fn unexpected(container: &ContainerStatus) -> Option<DriftItem> {
    (container.state == ContainerState::Running && container.policy() != Policy::Ignore).then(
        || {
            item(
                DriftKind::Unexpected,
                container,
                format!("running from {} but not in the snapshot", container.image),
            )
        },
    )
}

fn member_drift(
    member: &SnapshotMember,
    current: Option<&ContainerStatus>,
    owners: &Owners<'_>,
) -> Option<DriftItem> {
    let Some(container) = current else {
        return Some(DriftItem {
            kind: DriftKind::Removed,
            name: member.name.clone(),
            id: member.id.clone(),
            state: None,
            policy: Policy::from_labels(&member.labels),
            detail: format!("no container named {} exists", member.name),
            changes: Vec::new(),
            since: None,
        });
    };
    let changes = changes(member, container);
    if !changes.is_empty() {
        let detail = changed_detail(member, container, &changes);
        return Some(DriftItem {
            changes,
            ..item(DriftKind::Changed, container, detail)
        });
    }
    match container.state {
        ContainerState::Exited if completed(container) => Some(item(
            DriftKind::Completed,
            container,
            completed_detail(container),
        )),
        ContainerState::Created | ContainerState::Exited | ContainerState::Dead => Some(item(
            DriftKind::Stopped,
            container,
            stopped_detail(container),
        )),
        ContainerState::Paused => Some(item(DriftKind::Paused, container, "paused".to_owned())),
        ContainerState::Running => match owners.fate(&member.name) {
            Some(orphaning) => Some(item(DriftKind::Orphaned, container, orphaning.detail())),
            None => running_drift(container).or_else(|| stale_image(container)),
        },
        ContainerState::Restarting | ContainerState::Removing => None,
    }
}

/// Whether an exited member is a job that finished: status-api saw its process exit with code 0 by itself,
/// and its own restart policy (`no`, `on-failure`) would not restart it. An exit someone asked for
/// (`docker stop`, `docker kill`), an OOM kill and a non-zero exit are not: the member is `stopped`. So is a
/// container whose restart policy or exit cause status-api did not say (an older status-api): it is healed as
/// before.
///
/// An exit status-api did not see (it started later, or its stream was down longer than the engine keeps
/// events) is `stopped`, and healed: nobody can tell a finished job from a stop then, and the commonest such
/// exit is a host or engine restart, which stops every service — many of them with code 0 on SIGTERM — and
/// whose events are gone with the old engine. Leaving those down would break the one promise dockstate
/// makes; a job that finished while nobody watched runs once more, and its next exit is seen.
pub fn completed(container: &ContainerStatus) -> bool {
    container.state == ContainerState::Exited
        && container.exit_code == Some(0)
        && container.exit_cause == Some(ExitCause::Natural)
        && container
            .restart_policy
            .is_some_and(|policy| !policy.restarts_after(0))
}

fn completed_detail(container: &ContainerStatus) -> String {
    let policy = container.restart_policy.map_or("no", RestartPolicy::as_str);
    let start = format!("`docker start {}`", container.name);
    format!(
        "exited with code 0 by itself and its restart policy `{policy}` would not restart it: a job that \
         finished, reported and never started again; if it is meant to run, start it with {start}"
    )
}

fn stopped_detail(container: &ContainerStatus) -> String {
    let how = match container.exit_cause {
        Some(ExitCause::Natural) => " (it exited by itself)",
        Some(ExitCause::Requested) => " (stopped on request)",
        Some(ExitCause::Oom) => " (killed by the OOM killer)",
        Some(ExitCause::Unseen) => {
            " (while status-api was not watching: a host or engine restart looks the same, so it is started)"
        }
        None => "",
    };
    match (container.state, container.exit_code) {
        (ContainerState::Dead, _) => {
            "dead: the engine failed to remove it, and a dead container can never start again"
                .to_owned()
        }
        (ContainerState::Created, _) | (_, None) => container.state.to_string(),
        (state, Some(code)) => format!("{state} with exit code {code}{how}"),
    }
}

fn running_drift(container: &ContainerStatus) -> Option<DriftItem> {
    match container.health {
        Health::Unhealthy => Some(item(
            DriftKind::Unhealthy,
            container,
            "running, healthcheck reports unhealthy".to_owned(),
        )),
        _ => None,
    }
}

/// Every way the container differs from its member's snapshot spec: the image first (by reference, see
/// [`same_image`]), then the other fields status-api found. Empty: not `changed`.
pub fn changes(member: &SnapshotMember, container: &ContainerStatus) -> Vec<SpecChange> {
    let image = (!same_image(member, container)).then(|| SpecChange {
        field: "image".to_owned(),
        key: None,
        change: ChangeKind::Changed,
        snapshot: Some(member.image.clone()),
        current: Some(container.image.clone()),
    });
    image
        .into_iter()
        .chain(running_spec_changes(container).iter().cloned())
        .collect()
}

/// The spec changes that count: those of a container that runs. One that is created or stopped is started
/// as it is, as before — a recreate cut short lacks networks it is given before its start, and a container
/// someone made by hand is started as they made it — and once it runs, how it differs shows.
fn running_spec_changes(container: &ContainerStatus) -> &[SpecChange] {
    if container.state == ContainerState::Running {
        &container.spec_changes
    } else {
        &[]
    }
}

/// Whether the container is what the member was: not `changed`.
pub fn unchanged(member: &SnapshotMember, container: &ContainerStatus) -> bool {
    running_spec_changes(container).is_empty() && same_image(member, container)
}

/// The image difference in the words it always had, then every other change in a few words each.
fn changed_detail(
    member: &SnapshotMember,
    container: &ContainerStatus,
    changes: &[SpecChange],
) -> String {
    let image = (!same_image(member, container)).then(|| {
        format!(
            "snapshot has image {}, the container runs {}",
            member.image, container.image
        )
    });
    let others: Vec<String> = changes
        .iter()
        .filter(|change| change.field != "image" || image.is_none())
        .map(SpecChange::describe)
        .collect();
    let others = (!others.is_empty()).then(|| {
        format!(
            "its spec differs from the snapshot's in {}: {}",
            crate::count_of(others.len(), "field"),
            others.join(", ")
        )
    });
    image
        .into_iter()
        .chain(others)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A running member whose image reference names another image now than the one it runs.
fn stale_image(container: &ContainerStatus) -> Option<DriftItem> {
    let now = container.tag_image_id.as_deref()?;
    if container.image_id.is_empty() || now == container.image_id || is_image_id(&container.image) {
        return None;
    }
    Some(item(
        DriftKind::StaleImage,
        container,
        format!(
            "{} names image {now} now, but the container runs {}: the image was pulled or built again and \
             the container not recreated",
            container.image, container.image_id
        ),
    ))
}

/// Whether the container runs what the member ran: the same reference compared normalised, or the member's
/// image id itself. What keeps a container's image from being a change.
pub fn same_image(member: &SnapshotMember, container: &ContainerStatus) -> bool {
    same_reference(&member.image, &container.image)
        || (!member.image_id.is_empty() && is_image_id_of(&container.image, &member.image_id))
}

fn item(kind: DriftKind, container: &ContainerStatus, detail: String) -> DriftItem {
    DriftItem {
        kind,
        name: container.name.clone(),
        id: container.id.clone(),
        state: Some(container.state),
        policy: container.policy(),
        detail,
        changes: Vec::new(),
        since: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{LabelSelector, POLICY_LABEL};

    const MEMBER_IMAGE_ID: &str =
        "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn member(name: &str) -> SnapshotMember {
        SnapshotMember {
            name: name.into(),
            id: format!("{name}-old-id"),
            image: "busybox:latest".into(),
            image_id: MEMBER_IMAGE_ID.into(),
            labels: BTreeMap::from([("scope".to_owned(), "in".to_owned())]),
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
            exit_code: (state != ContainerState::Running).then_some(137),
            restart_count: 0,
            created_at: None,
            started_at: None,
            finished_at: None,
            labels: BTreeMap::from([("scope".to_owned(), "in".to_owned())]),
            ports: Vec::new(),
            in_snapshot: false,
            policy: Default::default(),
            shares: Default::default(),
            settling: false,
            restart_policy: Some(RestartPolicy::No),
            exit_cause: (state != ContainerState::Running).then_some(ExitCause::Natural),
            spec_changes: Vec::new(),
            tag_image_id: None,
            spec: None,
        }
    }

    fn kinds(items: &[DriftItem]) -> Vec<(&str, DriftKind)> {
        items
            .iter()
            .map(|item| (item.name.as_str(), item.kind))
            .collect()
    }

    #[test]
    fn in_sync_when_everything_runs() {
        let items = drift(
            &[member("a")],
            &[container("a", ContainerState::Running)],
            &None,
        );
        assert!(items.is_empty(), "{items:?}");
    }

    #[test]
    fn stopped_covers_exited_dead_and_created() {
        for state in [
            ContainerState::Exited,
            ContainerState::Dead,
            ContainerState::Created,
        ] {
            let items = drift(&[member("a")], &[container("a", state)], &None);
            assert_eq!(kinds(&items), vec![("a", DriftKind::Stopped)], "{state}");
            assert_eq!(items[0].state, Some(state));
            assert_eq!(items[0].id, "a-id");
        }
        let items = drift(
            &[member("a")],
            &[container("a", ContainerState::Exited)],
            &None,
        );
        assert!(items[0].detail.contains("137"), "{}", items[0].detail);
    }

    /// An exited member with this exit code, restart policy and exit cause.
    fn exited(
        code: i64,
        policy: Option<RestartPolicy>,
        cause: Option<ExitCause>,
    ) -> ContainerStatus {
        let mut exited = container("a", ContainerState::Exited);
        exited.exit_code = Some(code);
        exited.restart_policy = policy;
        exited.exit_cause = cause;
        exited
    }

    #[test]
    fn a_job_that_finished_is_completed_and_everything_else_stopped() {
        use ExitCause::{Natural, Oom, Requested, Unseen};
        use RestartPolicy::{Always, OnFailure, UnlessStopped};
        let no = Some(RestartPolicy::No);
        let (completed, stopped) = (DriftKind::Completed, DriftKind::Stopped);
        let table = [
            // Exit 0 by itself, and a policy that would not restart it: a job that finished.
            (0, no, Some(Natural), completed),
            (0, Some(OnFailure), Some(Natural), completed),
            // Its own policy would restart it: the engine should have; healed as before.
            (0, Some(Always), Some(Natural), stopped),
            (0, Some(UnlessStopped), Some(Natural), stopped),
            // Someone asked for the exit, or the kernel killed it.
            (0, no, Some(Requested), stopped),
            (0, Some(OnFailure), Some(Requested), stopped),
            (0, no, Some(Oom), stopped),
            // Not seen: a host or engine restart looks the same, so it is healed.
            (0, no, Some(Unseen), stopped),
            (0, Some(OnFailure), Some(Unseen), stopped),
            (0, Some(Always), Some(Unseen), stopped),
            (0, Some(UnlessStopped), Some(Unseen), stopped),
            // A non-zero exit is a failure, however it came about.
            (3, no, Some(Natural), stopped),
            (3, Some(OnFailure), Some(Natural), stopped),
            (3, no, Some(Unseen), stopped),
            (137, no, Some(Requested), stopped),
            (137, no, Some(Oom), stopped),
            // An answer that does not say (an older status-api): healed as before.
            (0, None, Some(Natural), stopped),
            (0, no, None, stopped),
        ];
        for (code, policy, cause, kind) in table {
            let items = drift(&[member("a")], &[exited(code, policy, cause)], &None);
            assert_eq!(
                kinds(&items),
                vec![("a", kind)],
                "exit {code}, policy {policy:?}, cause {cause:?}"
            );
            assert_eq!(items[0].state, Some(ContainerState::Exited));
        }
    }

    #[test]
    fn dead_and_never_started_members_are_stopped_never_completed() {
        let mut dead = exited(0, Some(RestartPolicy::No), Some(ExitCause::Natural));
        dead.state = ContainerState::Dead;
        let items = drift(&[member("a")], &[dead], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Stopped)]);
        assert!(items[0].detail.contains("dead"), "{}", items[0].detail);

        let mut created = container("a", ContainerState::Created);
        created.exit_code = None;
        created.exit_cause = None;
        let items = drift(&[member("a")], &[created], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Stopped)]);
        assert_eq!(items[0].detail, "created");
    }

    #[test]
    fn the_detail_says_how_the_exit_came_about_and_how_to_start_a_completed_job() {
        let detail = |code, cause| {
            drift(
                &[member("a")],
                &[exited(code, Some(RestartPolicy::No), Some(cause))],
                &None,
            )[0]
            .detail
            .clone()
        };
        let finished = detail(0, ExitCause::Natural);
        assert!(finished.contains("by itself"), "{finished}");
        assert!(finished.contains("`docker start a`"), "{finished}");
        assert!(finished.contains("`no`"), "{finished}");
        let unseen = detail(0, ExitCause::Unseen);
        assert!(unseen.contains("not watching"), "{unseen}");
        assert!(unseen.contains("restart"), "{unseen}");
        assert_eq!(
            detail(0, ExitCause::Requested),
            "exited with exit code 0 (stopped on request)"
        );
        assert!(detail(137, ExitCause::Oom).contains("OOM"));
        assert!(detail(3, ExitCause::Natural).contains("exit code 3 (it exited by itself)"));
    }

    #[test]
    fn a_completed_member_under_another_image_is_changed() {
        let mut other = exited(0, Some(RestartPolicy::No), Some(ExitCause::Natural));
        other.image = "nginx:1".into();
        let items = drift(&[member("a")], &[other], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Changed)]);
    }

    #[test]
    fn removed_when_no_container_has_the_name() {
        let items = drift::<ContainerStatus>(&[member("a")], &[], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Removed)]);
        assert_eq!(items[0].id, "a-old-id");
        assert_eq!(items[0].state, None);
    }

    #[test]
    fn paused_is_paused_never_unhealthy() {
        let mut paused = container("a", ContainerState::Paused);
        paused.health = Health::Unhealthy;
        let items = drift(&[member("a")], &[paused], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Paused)]);
    }

    #[test]
    fn unhealthy_when_running_and_the_healthcheck_fails() {
        let mut sick = container("a", ContainerState::Running);
        sick.health = Health::Unhealthy;
        assert_eq!(
            kinds(&drift(&[member("a")], &[sick], &None)),
            vec![("a", DriftKind::Unhealthy)]
        );
        for health in [Health::Starting, Health::Healthy, Health::None] {
            let mut fine = container("a", ContainerState::Running);
            fine.health = health;
            assert!(
                drift(&[member("a")], &[fine], &None).is_empty(),
                "{health:?}"
            );
        }
    }

    #[test]
    fn restarting_and_removing_are_left_alone() {
        for state in [ContainerState::Restarting, ContainerState::Removing] {
            let mut moving = container("a", state);
            moving.health = Health::Unhealthy;
            assert!(
                drift(&[member("a")], &[moving], &None).is_empty(),
                "{state}"
            );
        }
    }

    #[test]
    fn recreated_under_the_same_name_is_the_same_member() {
        let mut recreated = container("a", ContainerState::Running);
        recreated.id = "a-brand-new-id".into();
        assert!(drift(&[member("a")], &[recreated], &None).is_empty());
    }

    #[test]
    fn same_name_other_image_is_changed_and_nothing_else() {
        let mut other = container("a", ContainerState::Exited);
        other.image = "nginx:1".into();
        let items = drift(&[member("a")], &[other], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Changed)]);
        assert!(items[0].detail.contains("nginx:1"));
    }

    #[test]
    fn image_references_compare_normalised() {
        for spelling in [
            "busybox",
            "docker.io/library/busybox:latest",
            "library/busybox",
        ] {
            let mut same = container("a", ContainerState::Running);
            same.image = spelling.into();
            assert!(
                drift(&[member("a")], &[same], &None).is_empty(),
                "{spelling}"
            );
        }
        let mut tagged = container("a", ContainerState::Running);
        tagged.image = "busybox:1.36".into();
        let items = drift(&[member("a")], &[tagged], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Changed)]);
    }

    #[test]
    fn a_container_made_from_the_members_image_id_is_not_changed() {
        let mut from_id = container("a", ContainerState::Running);
        from_id.image = MEMBER_IMAGE_ID.into();
        assert!(drift(&[member("a")], &[from_id.clone()], &None).is_empty());

        let mut other_id = from_id.clone();
        other_id.image = format!("sha256:{}", "2".repeat(64));
        let items = drift(&[member("a")], &[other_id], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Changed)]);

        let mut old_snapshot = member("a");
        old_snapshot.image_id = String::new();
        let items = drift(&[old_snapshot], &[from_id], &None);
        assert_eq!(
            kinds(&items),
            vec![("a", DriftKind::Changed)],
            "without a recorded id there is nothing to match"
        );
    }

    #[test]
    fn unexpected_only_when_running_and_not_ignored() {
        let running = container("x", ContainerState::Running);
        let exited = container("y", ContainerState::Exited);
        let mut ignored = container("z", ContainerState::Running);
        ignored.labels.insert(POLICY_LABEL.into(), "ignore".into());
        let mut observed_only = container("w", ContainerState::Running);
        observed_only
            .labels
            .insert(POLICY_LABEL.into(), "observe".into());

        let items = drift(&[], &[running, exited, ignored, observed_only], &None);
        assert_eq!(
            kinds(&items),
            vec![("w", DriftKind::Unexpected), ("x", DriftKind::Unexpected)]
        );
        assert_eq!(items[0].policy, Policy::Observe);
        assert_eq!(items[1].policy, Policy::Heal);
    }

    #[test]
    fn containers_outside_the_scope_never_appear() {
        let scope: Scope = Some("scope=in".parse::<LabelSelector>().expect("parses"));
        let mut outside_running = container("out", ContainerState::Running);
        outside_running.labels.clear();
        let mut outside_member = member("gone");
        outside_member.labels.clear();
        let mut outside_stopped = container("stopped-out", ContainerState::Exited);
        outside_stopped
            .labels
            .insert("scope".into(), "other".into());
        let mut outside_stopped_member = member("stopped-out");
        outside_stopped_member
            .labels
            .insert("scope".into(), "other".into());

        let items = drift(
            &[outside_member, outside_stopped_member, member("kept")],
            &[outside_running, outside_stopped],
            &scope,
        );
        assert_eq!(kinds(&items), vec![("kept", DriftKind::Removed)]);
    }

    #[test]
    fn items_sort_by_name_then_kind() {
        let items = drift(
            &[member("b"), member("a")],
            &[
                container("c", ContainerState::Running),
                container("b", ContainerState::Exited),
            ],
            &None,
        );
        assert_eq!(
            kinds(&items),
            vec![
                ("a", DriftKind::Removed),
                ("b", DriftKind::Stopped),
                ("c", DriftKind::Unexpected)
            ]
        );
    }

    #[test]
    fn policies_travel_with_the_item() {
        let mut observed = container("a", ContainerState::Exited);
        observed
            .labels
            .insert(POLICY_LABEL.into(), "observe".into());
        let items = drift(&[member("a")], &[observed], &None);
        assert_eq!(items[0].policy, Policy::Observe);
    }

    #[test]
    fn a_running_member_that_lost_its_namespace_owner_is_orphaned() {
        let mut app = member("app");
        app.shares.network = Some("vpn".into());
        let mut dependant = container("app", ContainerState::Running);
        dependant.shares.network = Some("vpn-id".into());
        // Its owner was removed: the dependant runs on in a namespace nothing serves.
        let items = drift(&[app.clone(), member("vpn")], &[dependant.clone()], &None);
        assert_eq!(
            kinds(&items),
            vec![("app", DriftKind::Orphaned), ("vpn", DriftKind::Removed)]
        );
        assert!(
            items[0].detail.contains("network namespace of vpn"),
            "{}",
            items[0].detail
        );
        assert_eq!(items[0].id, "app-id");

        // Recreated under its name: the dependant still holds the old id.
        let mut recreated = container("vpn", ContainerState::Running);
        recreated.id = "vpn-new-id".into();
        let items = drift(
            &[app.clone(), member("vpn")],
            &[dependant.clone(), recreated],
            &None,
        );
        assert_eq!(kinds(&items), vec![("app", DriftKind::Orphaned)]);
        assert!(items[0].detail.contains("replaced"), "{}", items[0].detail);

        // The same owner, running, joined before the dependant started: in sync.
        let owner = container("vpn", ContainerState::Running);
        assert!(drift(
            &[app.clone(), member("vpn")],
            &[dependant.clone(), owner],
            &None
        )
        .is_empty());

        // A stopped dependant is stopped, whatever its owner: starting it is the question.
        let mut stopped = dependant;
        stopped.state = ContainerState::Exited;
        assert_eq!(
            kinds(&drift(&[app, member("vpn")], &[stopped], &None)),
            vec![("app", DriftKind::Stopped), ("vpn", DriftKind::Removed)]
        );
    }

    fn env_changed() -> SpecChange {
        SpecChange {
            field: "env".into(),
            key: Some("FOO".into()),
            change: ChangeKind::Changed,
            snapshot: None,
            current: None,
        }
    }

    #[test]
    fn a_member_with_another_spec_is_changed_with_every_change_and_the_image_first() {
        // Not running: started as it is, as before; its changes count once it runs.
        let mut replaced = container("a", ContainerState::Created);
        replaced.spec_changes = vec![env_changed()];
        replaced.exit_code = None;
        let items = drift(&[member("a")], &[replaced.clone()], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Stopped)]);

        replaced.state = ContainerState::Running;
        let items = drift(&[member("a")], &[replaced.clone()], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::Changed)]);
        assert_eq!(items[0].changes, vec![env_changed()]);
        assert_eq!(
            items[0].detail,
            "its spec differs from the snapshot's in 1 field: env FOO changed"
        );

        replaced.image = "nginx:1".into();
        let items = drift(&[member("a")], &[replaced], &None);
        let fields: Vec<&str> = items[0].changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["image", "env"]);
        assert_eq!(items[0].changes[0].current.as_deref(), Some("nginx:1"));
        assert_eq!(
            items[0].detail,
            "snapshot has image busybox:latest, the container runs nginx:1; its spec differs from the \
             snapshot's in 1 field: env FOO changed"
        );
        assert!(unchanged(
            &member("a"),
            &container("a", ContainerState::Running)
        ));
    }

    #[test]
    fn a_running_member_whose_tag_names_another_image_is_stale_and_only_when_in_sync_otherwise() {
        let new_id = format!("sha256:{}", "9".repeat(64));
        let mut stale = container("a", ContainerState::Running);
        stale.tag_image_id = Some(new_id.clone());
        let items = drift(&[member("a")], &[stale.clone()], &None);
        assert_eq!(kinds(&items), vec![("a", DriftKind::StaleImage)]);
        assert!(items[0].detail.contains(&new_id), "{}", items[0].detail);
        assert!(items[0].detail.contains("sha256:1"), "{}", items[0].detail);

        let mut current = stale.clone();
        current.tag_image_id = Some(current.image_id.clone());
        assert!(drift(&[member("a")], &[current], &None).is_empty());
        let mut unknown = stale.clone();
        unknown.tag_image_id = None;
        assert!(drift(&[member("a")], &[unknown], &None).is_empty());
        let mut from_id = stale.clone();
        from_id.image = MEMBER_IMAGE_ID.into();
        from_id.image_id = MEMBER_IMAGE_ID.into();
        assert!(
            drift(&[member("a")], &[from_id], &None).is_empty(),
            "made from an id: no tag"
        );

        // One item per member: what needs doing comes first.
        let mut stopped = stale.clone();
        stopped.state = ContainerState::Exited;
        stopped.exit_code = Some(137);
        assert_eq!(
            kinds(&drift(&[member("a")], &[stopped], &None)),
            vec![("a", DriftKind::Stopped)]
        );
        let mut changed = stale.clone();
        changed.spec_changes = vec![env_changed()];
        assert_eq!(
            kinds(&drift(&[member("a")], &[changed], &None)),
            vec![("a", DriftKind::Changed)]
        );
        // Not a member: unexpected, never stale.
        assert_eq!(
            kinds(&drift(&[], &[stale], &None)),
            vec![("a", DriftKind::Unexpected)]
        );
    }

    /// Among many members in sync, one whose container joined a namespace the snapshot never recorded (and
    /// no other) is still orphaned when that owner stops, and the others still are in sync.
    #[test]
    fn one_dependant_among_many_is_found_though_only_its_container_shares() {
        let mut snapshot: Vec<SnapshotMember> =
            (0..50).map(|i| member(&format!("m{i:02}"))).collect();
        snapshot.push(member("vpn"));
        let mut observed: Vec<ContainerStatus> = (0..50)
            .map(|i| container(&format!("m{i:02}"), ContainerState::Running))
            .collect();
        observed[7].shares.network = Some("vpn-id".into());
        observed.push(container("vpn", ContainerState::Running));
        assert!(drift(&snapshot, &observed, &None).is_empty());

        let vpn = observed.len() - 1;
        observed[vpn].state = ContainerState::Exited;
        let items = drift(&snapshot, &observed, &None);
        assert_eq!(
            kinds(&items),
            vec![("m07", DriftKind::Orphaned), ("vpn", DriftKind::Stopped)]
        );
        assert!(
            items[0].detail.contains("which is exited"),
            "{}",
            items[0].detail
        );
    }

    #[test]
    fn equal_references_are_the_same_image_whatever_they_say() {
        for text in ["busybox:latest", "", ":x", " odd ", MEMBER_IMAGE_ID] {
            let mut same = container("a", ContainerState::Running);
            same.image = text.into();
            let mut recorded = member("a");
            recorded.image = text.into();
            assert!(same_image(&recorded, &same), "{text:?}");
            assert!(drift(&[recorded], &[same], &None).is_empty(), "{text:?}");
        }
    }

    /// Both sides are walked by name: in whatever order they come, the items are the same, and of two
    /// entries of one name the last counts, as it always did.
    #[test]
    fn the_order_of_either_side_does_not_matter_and_the_last_of_a_name_counts() {
        let snapshot = vec![member("a"), member("b"), member("c"), member("e")];
        let observed = vec![
            container("b", ContainerState::Exited),
            container("c", ContainerState::Running),
            container("d", ContainerState::Running),
            container("e", ContainerState::Paused),
            container("f", ContainerState::Exited),
        ];
        let expected = vec![
            ("a", DriftKind::Removed),
            ("b", DriftKind::Stopped),
            ("d", DriftKind::Unexpected),
            ("e", DriftKind::Paused),
        ];
        let sorted = drift(&snapshot, &observed, &None);
        assert_eq!(kinds(&sorted), expected);
        let reversed: Vec<SnapshotMember> = snapshot.iter().rev().cloned().collect();
        let shuffled = [2, 4, 0, 3, 1].map(|i| observed[i].clone());
        assert_eq!(drift(&reversed, &shuffled, &None), sorted);

        let twice = [
            container("b", ContainerState::Running),
            container("b", ContainerState::Exited),
        ];
        assert_eq!(
            kinds(&drift(&[member("b")], &twice, &None)),
            vec![("b", DriftKind::Stopped)]
        );
        let mut other_image = member("b");
        other_image.image = "nginx:1".into();
        assert_eq!(
            kinds(&drift(
                &[other_image, member("b")],
                &[container("b", ContainerState::Running)],
                &None
            )),
            vec![]
        );
    }
}
