//! Dependants: members that joined another container's network, IPC or PID namespace (`--network
//! container:X`, compose `network_mode: service:x`). Pure, and below [`plan`](crate::plan) (it imports nothing
//! of the crate), which asks it the [`Order`] of every heal it plans for a member: a dependant is started,
//! restarted or recreated only once its namespace owner runs, and
//! after the owner started again it is restarted (or, when the owner was recreated, replaced) so that it
//! joins the owner's new namespace. What became of an owner is [`shared::Owners::fate`], the rule status-api's
//! `/drift` reports as `orphaned`.
//!
//! Order comes from state, not from memory: a pass plans the owner's heal and leaves its dependants waiting;
//! the pass that sees the owner run again plans the dependants. So the order holds however the owner came
//! back — healed by this controller, by the engine's restart policy, or by hand — and every step goes
//! through the same per-container backoff as any other action.

use shared::{Fate, Orphaning, Owners};

/// What dependency order asks of a heal (start, restart, recreate) planned for a member, each with the
/// sentence for people. Its own small type, so this module needs nothing of the crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// Every owner is as the member joined it (or it joined none): go ahead as planned.
    AsPlanned,
    /// An owner does not run: a dependant cannot start, or be created, before it does.
    Wait { owner: String, reason: String },
    /// An owner started again after the member: a restart joins its new namespace.
    Restart(String),
    /// An owner was recreated under its name: the engine holds the old id, so only creating the member
    /// again from its spec (which names the owner by name) joins the new one.
    Replace(String),
    /// As `Replace`, but without the token the spec cannot be read: reported.
    Report(String),
}

/// The order for a heal of member `name`, by what became of its namespace owners, the most pressing first
/// ([`Owners::fate`]).
pub fn order(name: &str, owners: &Owners<'_>, can_recreate: bool) -> Order {
    let Some(orphaning) = owners.fate(name) else {
        return Order::AsPlanned;
    };
    let Orphaning { owner, fate, .. } = &orphaning;
    let detail = orphaning.detail();
    match fate {
        Fate::Joined => Order::AsPlanned,
        Fate::Down { .. } => Order::Wait {
            owner: owner.clone(),
            reason: format!("{detail}: waits for {owner} to run first"),
        },
        Fate::Replaced { .. } if can_recreate => Order::Replace(format!(
            "{detail}: the engine holds the old one's id, so it is created again to join {owner}"
        )),
        Fate::Replaced { .. } => Order::Report(format!(
            "{detail}; without --token-file its spec cannot be read, so it is reported, not replaced"
        )),
        Fate::Restarted => Order::Restart(format!(
            "{detail}: restarted after {owner} to join its new namespace"
        )),
    }
}

#[cfg(test)]
mod tests;
