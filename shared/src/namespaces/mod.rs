//! Shared namespaces: a container started with `--network container:X` (compose `network_mode: service:x`,
//! the VPN-sidecar pattern), `--ipc container:X` or `--pid container:X` lives in X's namespace. The engine
//! holds X by **id**, so a dependant outlives its owner badly: once X is recreated the id names nothing and
//! the dependant can never start again, and once X restarts the dependant is left in X's old, dead namespace.
//!
//! Pure, like [`drift`](crate::drift): how a namespace owner is read from a `HostConfig`, how the snapshot
//! names owners (by name, which survives a recreate), and what became of the owner a member joined
//! ([`Owners::fate`]), which drift reports as `orphaned` and the controller's plan acts on.

use std::borrow::Borrow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::model::{
    in_scope, ContainerSpec, ContainerState, ContainerStatus, Scope, SnapshotMember,
};

use crate::namespace_modes::CONTAINER_MODE;
pub use crate::namespace_modes::{Namespace, SharedNamespaces};

/// Rewrites every `container:<id>` in the specs' `HostConfig` to `container:<name>`, so the snapshot names a
/// namespace owner the way it names members: by name, which a recreated owner keeps (and which the engine
/// resolves to the owner's id of the day at create). The names come from the specs themselves and from
/// `names`, id → name, for owners that are not members. An owner found in neither keeps its id. Idempotent.
pub fn name_owners(specs: &mut [ContainerSpec], names: &HashMap<String, String>) {
    let mut by_id: HashMap<String, String> = names.clone();
    by_id.extend(
        specs
            .iter()
            .map(|spec| (spec.id.clone(), spec.name.clone())),
    );
    for spec in specs.iter_mut() {
        let Some(host_config) = spec.host_config.as_object_mut() else {
            continue;
        };
        for namespace in Namespace::ALL {
            let field = namespace.host_config_field();
            let Some(owner) = host_config
                .get(field)
                .and_then(|mode| mode.as_str())
                .and_then(|mode| mode.strip_prefix(CONTAINER_MODE))
            else {
                continue;
            };
            if let Some(name) = lookup_id(&by_id, owner) {
                host_config.insert(
                    field.to_owned(),
                    serde_json::Value::String(format!("{CONTAINER_MODE}{name}")),
                );
            }
        }
    }
}

/// The name of the container with id `id` (the full id, or a prefix of at least 12 characters).
fn lookup_id<'a>(by_id: &'a HashMap<String, String>, id: &str) -> Option<&'a str> {
    if let Some(name) = by_id.get(id) {
        return Some(name);
    }
    if id.len() < 12 || !id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    by_id
        .iter()
        .find(|(full, _)| full.starts_with(id))
        .map(|(_, name)| name.as_str())
}

/// The ids of the namespace owners in `specs` that are not themselves specs: the owners a snapshot must
/// look up to name them.
pub fn unnamed_owners(specs: &[ContainerSpec]) -> Vec<String> {
    let by_id: HashMap<String, String> = specs
        .iter()
        .map(|spec| (spec.id.clone(), spec.name.clone()))
        .collect();
    let mut ids: Vec<String> = specs
        .iter()
        .flat_map(|spec| {
            SharedNamespaces::from_host_config(&spec.host_config)
                .iter()
                .map(|(_, owner)| owner.to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|owner| {
            owner.len() == 64
                && owner.bytes().all(|byte| byte.is_ascii_hexdigit())
                && lookup_id(&by_id, owner).is_none()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// What became of the owner of a namespace a member joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It runs as the very container the member joined, and started before the member did: in order.
    Joined,
    /// It does not run: stopped, paused, restarting, or no container of its name exists. A dependant can
    /// neither start nor be recreated until it does; a running one has lost that namespace.
    Down {
        /// Its state; `None` when no container of its name exists.
        state: Option<ContainerState>,
    },
    /// A container of its name runs, but not the one the member joined (the engine holds the old id): it
    /// was recreated. The member cannot start or restart any more; only a recreate joins the new one.
    Replaced {
        /// The id the owner has now.
        id: String,
    },
    /// It runs as the same container, but started after the member did: it was restarted or started again,
    /// and the member is still in its old namespace. A restart of the member joins the new one.
    Restarted,
}

/// The orphaning of one member: which namespace, whose, and what became of the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphaning {
    pub namespace: Namespace,
    /// The owner's name (its id when it could not be named).
    pub owner: String,
    pub fate: Fate,
}

impl Orphaning {
    /// A sentence for people, about the member.
    pub fn detail(&self) -> String {
        let Self {
            namespace, owner, ..
        } = self;
        match &self.fate {
            Fate::Joined => format!("shares the {namespace} namespace of {owner}"),
            Fate::Down { state: None } => format!(
                "shares the {namespace} namespace of {owner}, which no longer exists"
            ),
            Fate::Down { state: Some(state) } => {
                format!("shares the {namespace} namespace of {owner}, which is {state}")
            }
            Fate::Replaced { id } => format!(
                "shares the {namespace} namespace of a container {owner} replaced ({owner} is now {})",
                crate::short_id(id)
            ),
            Fate::Restarted => format!(
                "shares the {namespace} namespace {owner} had before it started again"
            ),
        }
    }
}

/// Everything in scope that can own a namespace, by id and by name, and the snapshot's members: built once
/// per view, asked once per member. When nothing in scope joined another container's namespace — neither a
/// member as the snapshot recorded it nor a container as it runs — no member can have lost one, and it holds
/// nothing: the common host pays one look at each `shares`, not three maps of every container.
#[derive(Debug, Default)]
pub struct Owners<'a> {
    by_id: HashMap<&'a str, &'a ContainerStatus>,
    by_name: HashMap<&'a str, &'a ContainerStatus>,
    members: HashMap<&'a str, &'a SnapshotMember>,
}

impl<'a> Owners<'a> {
    pub fn new<C: Borrow<ContainerStatus>>(
        snapshot: &'a [SnapshotMember],
        observed: &'a [C],
        scope: &Scope,
    ) -> Self {
        let members: Vec<&SnapshotMember> = snapshot
            .iter()
            .filter(|member| in_scope(scope, &member.labels))
            .collect();
        let visible: Vec<&ContainerStatus> = observed
            .iter()
            .map(Borrow::borrow)
            .filter(|container| in_scope(scope, &container.labels))
            .collect();
        Self::in_scope(&members, &visible)
    }

    /// The same, from the members and the containers already limited to the scope (drift and the
    /// controller's plan limit them once for themselves and for this).
    pub fn in_scope(members: &[&'a SnapshotMember], visible: &[&'a ContainerStatus]) -> Self {
        // `fate` needs a member's live `shares` when its container exists, its recorded ones when it does
        // not: with neither anywhere, every answer is `None`.
        let anyone_shares = members.iter().any(|member| !member.shares.is_empty())
            || visible.iter().any(|container| !container.shares.is_empty());
        if !anyone_shares {
            return Self::default();
        }
        Self {
            by_id: visible
                .iter()
                .map(|container| (container.id.as_str(), *container))
                .collect(),
            by_name: visible
                .iter()
                .map(|container| (container.name.as_str(), *container))
                .collect(),
            members: members
                .iter()
                .map(|member| (member.name.as_str(), *member))
                .collect(),
        }
    }

    /// What became of the owners of the namespaces member `name` joined, the most pressing first (down,
    /// then replaced, then restarted); `None` when every owner is as the member joined it, or the member
    /// joined nothing, or an owner is out of sight (outside the scope, and not in the snapshot).
    ///
    /// The owner is the container the member's live `shares` names by id; failing that (it is gone), the
    /// container of the name the snapshot records. A member that does not exist is judged by the snapshot's
    /// names alone: its owners must run before it is recreated.
    pub fn fate(&self, name: &str) -> Option<Orphaning> {
        let member = self.members.get(name)?;
        let container = self.by_name.get(name).copied();
        let mut found: Vec<Orphaning> = Namespace::ALL
            .into_iter()
            .filter_map(|namespace| self.owner_fate(namespace, member, container))
            .filter(|orphaning| orphaning.fate != Fate::Joined)
            .collect();
        found.sort_by_key(|orphaning| match orphaning.fate {
            Fate::Down { .. } => 0,
            Fate::Replaced { .. } => 1,
            Fate::Restarted | Fate::Joined => 2,
        });
        found.into_iter().next()
    }

    fn owner_fate(
        &self,
        namespace: Namespace,
        member: &SnapshotMember,
        container: Option<&ContainerStatus>,
    ) -> Option<Orphaning> {
        let recorded = member.shares.get(namespace);
        let live = container.and_then(|container| container.shares.get(namespace));
        let Some(container) = container else {
            // Not there: judged by the recorded name, which a recreate will join.
            let owner = recorded?;
            let fate = self.by_recorded_name(owner)?;
            return Some(Orphaning {
                namespace,
                owner: owner.to_owned(),
                fate,
            });
        };
        let live = live?;
        if let Some(owner) = self.by_id.get(live).copied() {
            let fate = if owner.state != ContainerState::Running {
                Fate::Down {
                    state: Some(owner.state),
                }
            } else if container.state == ContainerState::Running
                && started_later(owner.started_at, container.started_at)
            {
                Fate::Restarted
            } else {
                Fate::Joined
            };
            return Some(Orphaning {
                namespace,
                owner: owner.name.clone(),
                fate,
            });
        }
        // The id it joined names nothing in sight: the recorded name says who it was, and a container of
        // that name that runs is another one.
        let owner = recorded?;
        let fate = match self.by_recorded_name(owner)? {
            Fate::Joined => Fate::Replaced {
                id: self.by_name.get(owner)?.id.clone(),
            },
            fate => fate,
        };
        Some(Orphaning {
            namespace,
            owner: owner.to_owned(),
            fate,
        })
    }

    /// The owner by the name the snapshot recorded: joined when a container of that name runs, down when
    /// it does not run or only the snapshot knows it; `None` (out of sight) when neither the view nor the
    /// snapshot knows the name.
    fn by_recorded_name(&self, owner: &str) -> Option<Fate> {
        match self.by_name.get(owner) {
            Some(found) if found.state == ContainerState::Running => Some(Fate::Joined),
            Some(found) => Some(Fate::Down {
                state: Some(found.state),
            }),
            None if self.members.contains_key(owner) => Some(Fate::Down { state: None }),
            None => None,
        }
    }
}

/// Whether the owner's last start is later than the member's: the member joined an earlier namespace.
fn started_later(owner: Option<DateTime<Utc>>, member: Option<DateTime<Utc>>) -> bool {
    matches!((owner, member), (Some(owner), Some(member)) if owner > member)
}

#[cfg(test)]
mod tests;
