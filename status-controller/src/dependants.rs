//! Dependants: members that joined another container's network, IPC or PID namespace (`--network
//! container:X`, compose `network_mode: service:x`). Pure, like [`plan`](crate::plan), whose heals it puts in
//! dependency order: a dependant is started, restarted or recreated only once its namespace owner runs, and
//! after the owner started again it is restarted (or, when the owner was recreated, replaced) so that it
//! joins the owner's new namespace. What became of an owner is [`shared::Owners::fate`], the rule status-api's
//! `/drift` reports as `orphaned`.
//!
//! Order comes from state, not from memory: a pass plans the owner's heal and leaves its dependants waiting;
//! the pass that sees the owner run again plans the dependants. So the order holds however the owner came
//! back — healed by this controller, by the engine's restart policy, or by hand — and every step goes
//! through the same per-container backoff as any other action.

use shared::{Fate, Orphaning, Owners};

use crate::model::{Action, ActionKind};

/// `action`, in dependency order: unchanged unless it heals a member whose namespace owner is not as the
/// member joined it. Then, by what became of the owner:
/// - it does not run → wait for it (a dependant cannot start, or be created, before its owner runs);
/// - it was recreated under its name → replace the member (recreate it from its spec, which names the owner
///   by name), or report it without the token;
/// - it started again after the member → restart the member.
pub fn in_order(action: Action, owners: &Owners<'_>, can_recreate: bool) -> Action {
    if !matches!(
        action.kind,
        ActionKind::Start | ActionKind::Restart | ActionKind::Recreate
    ) {
        return action;
    }
    let Some(orphaning) = owners.fate(&action.container) else {
        return action;
    };
    let Orphaning { owner, fate, .. } = &orphaning;
    let detail = orphaning.detail();
    let (kind, reason) = match fate {
        Fate::Joined => return action,
        Fate::Down { .. } => (
            ActionKind::Wait,
            format!("{detail}: waits for {owner} to run first"),
        ),
        Fate::Replaced { .. } if can_recreate => (
            ActionKind::Replace,
            format!("{detail}: the engine holds the old one's id, so it is created again to join {owner}"),
        ),
        Fate::Replaced { .. } => (
            ActionKind::Report,
            format!("{detail}; without --token-file its spec cannot be read, so it is reported, not replaced"),
        ),
        Fate::Restarted => (
            ActionKind::Restart,
            format!("{detail}: restarted after {owner} to join its new namespace"),
        ),
    };
    Action {
        kind,
        reason,
        ..action
    }
}

#[cfg(test)]
mod tests;
