//! Compose replacing its own containers, told apart from drift. `docker compose up` recreates a service's
//! container whenever its configuration changed (or with `--force-recreate`): docker-compose 1.29 stops the
//! old one, renames it `<its short id>_<name>`, creates and starts the new one under the name, then removes
//! the old one; `docker compose` v2 creates the new one as `<old short id>_<name>` (labelled
//! `com.docker.compose.replace`), stops and removes the old one, renames the new one and starts it. Seen one
//! event at a time, that is a member stopped, then removed, then created and not started, and a stranger
//! beside it — each of which the plan would heal, fighting compose until its removal of a container the
//! controller started again fails.
//!
//! So, for a container compose manages (`com.docker.compose.project`), the plan waits while compose is at
//! work, and only for a bounded time, measured on the engine's own timestamps so that it stays pure:
//! - a member stopped on request (a `kill`/`stop` event before its exit) waits [`SETTLE`] after it stopped;
//! - a member compose created and has not started yet waits [`SETTLE`] after its creation;
//! - while a container compose set aside for a member exists — same project, named `<12 hex>_<member>` or
//!   labelled `com.docker.compose.replace` for the same service and number — the member (stopped or
//!   removed) and that container itself (never stopped as unexpected) wait, up to [`REPLACEMENT`] after the
//!   set-aside container last changed (created, started or stopped). A leftover of a compose that died half
//!   way is healed after that.
//!
//! A container that crashed (no `kill` before its `die`) is healed at once, compose or not.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use shared::{ContainerState, ContainerStatus, ExitCause, SnapshotMember};

/// The label compose puts on every container of a project, naming the project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The labels naming a container's service and its number within the service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
pub const NUMBER_LABEL: &str = "com.docker.compose.container-number";
/// The label `docker compose` v2 puts on the container that replaces another (its value names the
/// replaced one: its id in older releases, its service and number in newer ones).
pub const REPLACE_LABEL: &str = "com.docker.compose.replace";

/// How long a compose member stopped on request, or created by compose and not yet started, is left to
/// compose before the controller heals it. Compose renames or starts within milliseconds of those steps;
/// seconds leave room for a loaded engine.
pub const SETTLE: Duration = Duration::from_secs(5);

/// How long a container compose set aside while it replaces a member holds the member's heal back, after
/// the set-aside container last changed. Compose creates and starts the new container right after it
/// stopped the old one (1.29), or removes the old one right after stopping it (v2, whose stop waits out the
/// service's `stop_grace_period`, 10 s by default).
pub const REPLACEMENT: Duration = Duration::from_secs(60);

/// Compose is at work on a container: the plan waits until `until`, then looks again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeAtWork {
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// Whether compose is at work on member `member`, whose container is `current` (`None`: removed), among
/// `observed` (in scope); `None` when the plan should heal it as usual.
pub fn member_at_work(
    member: &SnapshotMember,
    current: Option<&ContainerStatus>,
    observed: &[&ContainerStatus],
    now: DateTime<Utc>,
) -> Option<ComposeAtWork> {
    let project = member.labels.get(PROJECT_LABEL)?;
    if let Some(aside) = observed
        .iter()
        .copied()
        .filter(|container| current.is_none_or(|current| current.id != container.id))
        .filter(|container| set_aside_for(container, member))
        .max_by_key(|container| last_change(container))
    {
        let until = last_change(aside).map(|changed| changed + delta(REPLACEMENT));
        if let Some(until) = until.filter(|until| *until > now) {
            return Some(ComposeAtWork {
                until,
                reason: format!(
                    "compose project {project} is replacing it ({} is set aside beside it): left to \
                     compose until {}",
                    aside.name,
                    until.format("%H:%M:%S")
                ),
            });
        }
    }
    let current = current?;
    let managed = current.labels.get(PROJECT_LABEL) == Some(project);
    let (since, what) = match current.state {
        ContainerState::Exited if current.exit_cause == Some(ExitCause::Requested) => {
            (current.finished_at?, "stopped on request")
        }
        ContainerState::Created => (current.created_at?, "created and not started yet"),
        _ => return None,
    };
    let until = since + delta(SETTLE);
    (managed && until > now).then(|| ComposeAtWork {
        until,
        reason: format!(
            "{what} in compose project {project}, which may be replacing it: started {}s after that \
             unless compose has done so",
            SETTLE.as_secs()
        ),
    })
}

/// Whether `container`, running outside the snapshot, is one compose set aside while it replaces a member
/// of `snapshot`: left alone, not stopped as unexpected, for [`REPLACEMENT`] after it last changed.
pub fn stranger_at_work(
    container: &ContainerStatus,
    snapshot: &[SnapshotMember],
    now: DateTime<Utc>,
) -> Option<ComposeAtWork> {
    if !may_be_set_aside(container) {
        return None;
    }
    let member = snapshot
        .iter()
        .find(|member| set_aside_for(container, member))?;
    let until = last_change(container)? + delta(REPLACEMENT);
    (until > now).then(|| ComposeAtWork {
        until,
        reason: format!(
            "compose set it aside while it replaces {}: left alone until {}",
            member.name,
            until.format("%H:%M:%S")
        ),
    })
}

/// Whether `container` may be one compose set aside for some member: in a compose project, and named
/// `<12 hex>_…` or labelled as a replacement. What [`set_aside_for`] asks of the container alone, so that a
/// plan looks at these few rather than every container for each member, and at every member for these few
/// only.
pub fn may_be_set_aside(container: &ContainerStatus) -> bool {
    let name = container.name.as_bytes();
    let renamed =
        name.len() > 12 && name[..12].iter().all(u8::is_ascii_hexdigit) && name[12] == b'_';
    container.labels.contains_key(PROJECT_LABEL)
        && (renamed || container.labels.contains_key(REPLACE_LABEL))
}

/// Whether `container` is one compose set aside while it replaces `member`: in the member's project, and
/// named `<12 hex>_<member>` (both compose generations) or labelled as the replacement of the member's
/// service and number (`docker compose` v2).
fn set_aside_for(container: &ContainerStatus, member: &SnapshotMember) -> bool {
    let project = member.labels.get(PROJECT_LABEL);
    if project.is_none() || container.labels.get(PROJECT_LABEL) != project {
        return false;
    }
    let renamed = container
        .name
        .strip_suffix(member.name.as_str())
        .and_then(|prefix| prefix.strip_suffix('_'))
        .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    let same_slot = [SERVICE_LABEL, NUMBER_LABEL]
        .iter()
        .all(|key| container.labels.get(*key) == member.labels.get(*key));
    let replacing = container.labels.contains_key(REPLACE_LABEL) && same_slot;
    container.name != member.name && (renamed || replacing)
}

/// When the container last changed, as far as its timestamps say.
fn last_change(container: &ContainerStatus) -> Option<DateTime<Utc>> {
    [
        container.created_at,
        container.started_at,
        container.finished_at,
    ]
    .into_iter()
    .flatten()
    .max()
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}
