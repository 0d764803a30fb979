//! Editing the baseline one member at a time (`PUT` and `DELETE /snapshot/containers/{name}`): an operator
//! who stopped a container on purpose forgets it, and one who changed a container on purpose (a new image, a
//! new option) adopts it as it runs now. Each edit is written like a re-baseline — the whole file replaced
//! atomically before the new baseline is published — and carries a new `taken_at`, so the controller, which
//! re-reads the snapshot when that changes, follows within its long poll.

use std::sync::Arc;

use chrono::Utc;
use shared::{in_scope, labels_of_config, scope_in_words, ContainerSpec};

use super::{owner_names, Baseline, BaselineKeeper, SnapshotError};
use crate::docker::read_inspect;
use crate::snapshot::{name_owners, sort_by_name, unnamed_owners, Member};

/// Why a member could not be forgotten or adopted.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("there is no snapshot yet: it is taken as soon as the Docker engine answers")]
    NoSnapshot,
    #[error(
        "the snapshot was taken in another scope ({snapshot}) than status-api's ({ours}): start status-api with \
         the snapshot's scope, or re-baseline with POST /snapshot, before editing it"
    )]
    ScopeMismatch { snapshot: String, ours: String },
    #[error("the snapshot has no member named `{0}`: GET /snapshot lists its members")]
    NotAMember(String),
    #[error("no container is named `{0}`: start it first, then adopt it")]
    NoSuchContainer(String),
    #[error("`{name}` is {state}, not running: start it, then adopt it (a baseline records running containers); if status-controller stops it first, hold the controller meanwhile (POST /hold, see docs/runbook.md)")]
    NotRunning { name: String, state: String },
    #[error(
        "`{name}` is outside status-api's scope ({scope}): give it the scope's label to adopt it"
    )]
    OutOfScope { name: String, scope: String },
    #[error("`{0}` was started with --rm, so it is meant to go away: it is never a member")]
    RemovesItself(String),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

impl BaselineKeeper {
    /// Forgets the member `name` ("stopped on purpose"): from now on it is reported only if it runs again,
    /// as unexpected.
    pub async fn forget(&self, name: &str) -> Result<Arc<Baseline>, EditError> {
        let _one_at_a_time = self.one_at_a_time.lock().await;
        let mut snapshot = self.editable()?;
        let before = snapshot.containers.len();
        snapshot.containers.retain(|member| member.name() != name);
        if snapshot.containers.len() == before {
            return Err(EditError::NotAMember(name.to_owned()));
        }
        self.keep_edit(snapshot, "forgot", name)
    }

    /// Adopts the container now running as `name` into the baseline: a new member, or a member's spec
    /// refreshed after an intended change (which clears `changed`).
    pub async fn adopt(&self, name: &str) -> Result<Arc<Baseline>, EditError> {
        let _one_at_a_time = self.one_at_a_time.lock().await;
        let mut snapshot = self.editable()?;
        let spec = self.running_spec(name).await?;
        snapshot.containers.retain(|member| member.name() != name);
        snapshot.containers.push(Member::new(&spec));
        sort_by_name(&mut snapshot.containers);
        let outsiders =
            owner_names(self.engine.as_ref(), &unnamed_owners(&snapshot.containers)).await;
        name_owners(&mut snapshot.containers, &outsiders);
        self.keep_edit(snapshot, "adopted", name)
    }

    /// A copy of the snapshot in force, when it may be edited: there is one, it was taken in status-api's
    /// scope, and the state directory takes writes.
    fn editable(&self) -> Result<crate::snapshot::Snapshot, EditError> {
        let current = self.current().ok_or(EditError::NoSnapshot)?;
        let ours =
            shared::normalized_scope(self.scope.as_ref().map(ToString::to_string).as_deref());
        if current.scope() != ours.as_deref() {
            return Err(EditError::ScopeMismatch {
                snapshot: scope_in_words(current.scope()),
                ours: scope_in_words(ours.as_deref()),
            });
        }
        self.file.writable()?;
        Ok(current.snapshot())
    }

    /// The spec of the running container `name`, if it may become a member.
    async fn running_spec(&self, name: &str) -> Result<ContainerSpec, EditError> {
        // Docker and Podman name containers `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: no container has any other name,
        // and it is not sent to the engine, which answers 400 to some (one with `%`, say).
        let possible = name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !possible {
            return Err(EditError::NoSuchContainer(name.to_owned()));
        }
        let raw = self
            .engine
            .inspect_raw(name)
            .await
            .map_err(SnapshotError::from)?
            .ok_or_else(|| EditError::NoSuchContainer(name.to_owned()))?;
        let (inspect, spec) =
            read_inspect(raw, true).map_err(|_| EditError::NoSuchContainer(name.to_owned()))?;
        let spec = spec
            .filter(|spec| spec.name == name)
            .ok_or_else(|| EditError::NoSuchContainer(name.to_owned()))?;
        if !in_scope(&self.scope, &labels_of_config(&spec.config)) {
            return Err(EditError::OutOfScope {
                name: name.to_owned(),
                scope: scope_in_words(self.scope.as_ref().map(ToString::to_string).as_deref()),
            });
        }
        let state = inspect
            .state
            .as_ref()
            .and_then(|state| state.status)
            .map(|status| status.to_string())
            .unwrap_or_else(|| "in an unknown state".to_owned());
        if state != "running" {
            return Err(EditError::NotRunning {
                name: name.to_owned(),
                state,
            });
        }
        if inspect
            .host_config
            .as_ref()
            .and_then(|host| host.auto_remove)
            .unwrap_or(false)
        {
            return Err(EditError::RemovesItself(name.to_owned()));
        }
        Ok(spec)
    }

    fn keep_edit(
        &self,
        mut snapshot: crate::snapshot::Snapshot,
        what: &str,
        name: &str,
    ) -> Result<Arc<Baseline>, EditError> {
        snapshot.taken_at = Utc::now();
        self.file.save(&snapshot)?;
        tracing::info!(container = %name, edit = what, members = snapshot.containers.len(), "baseline edited");
        let baseline = Arc::new(Baseline::new(snapshot));
        self.current.send_replace(Some(baseline.clone()));
        Ok(baseline)
    }
}
