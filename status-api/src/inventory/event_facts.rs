//! What engine events tell by themselves, before the inspect each one leads to: the state an event proves,
//! shown at once ([`Inventory::foresee`]), and — on every (re)connection — the events of the time nobody
//! watched, which no re-list can replay but which say how each exit came about ([`Inventory::recall`]).

use std::collections::HashMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use shared::{
    error_chain, in_scope, ContainerState, ContainerStatus, EngineKind, Health, Policy,
    SharedNamespaces,
};

use super::{event_time, unix_seconds, Inventory, RECALL};
use crate::docker::event_action;

impl Inventory {
    /// Applies at once what the event itself proves about a container the view already holds: `start` and
    /// `unpause` → running, `pause` → paused, `die` → exited with the exit code the event carries. The
    /// inspect that follows fills in the rest, but it can wait a long time: the engine holds a container's
    /// lock while it starts or stops it, and an inspect queues behind that (seconds on a busy engine).
    ///
    /// A `die` does not prove the container stays: `docker rm -f` sends `die` and then `destroy`. So the
    /// container is shown exited but `settling` until its inspect answers, and the controller acts on no
    /// settling container: it would start one that is being removed.
    ///
    /// A `create` of a container the view does not hold yet shows it at once too, as `created` and settling,
    /// from what the event carries (its name, image and labels): a `destroy` needs no inspect and is applied
    /// at once, so a container replaced under its name (`docker compose up --force-recreate` removes the old
    /// one right after it started the new one) would otherwise vanish from the view until the new one's
    /// inspect answers — and a member with no container is `removed`, which the controller recreates.
    ///
    /// A `kill`, a `stop` after its `die` and a `restart` after its `start` change nothing in the view, which
    /// already shows what they mean.
    ///
    /// Returns whether the view now shows the event's effect: such an event is no backlog (see
    /// [`super::applier`]), since what the controller may do about the container is decided on the state
    /// shown, and a state that is not final yet (`die`, `create`) is shown `settling`, which it never acts on.
    pub(super) fn foresee(
        &self,
        id: &str,
        action: &str,
        attributes: Option<&HashMap<String, String>>,
        at: Option<DateTime<Utc>>,
    ) -> bool {
        let Some(mut status) = self.writer.store().container(id) else {
            if action == "create" {
                if let Some(status) = created_from_event(id, attributes, at)
                    .filter(|status| in_scope(self.writer.scope(), &status.labels))
                {
                    self.writer.apply(id.to_owned(), Some(status));
                    tracing::debug!(target: crate::HEAL_TRACE, container = %id, action, stage = "foreseen", "view updated from the event");
                    return true;
                }
            }
            return false;
        };
        match action {
            "start" => {
                status.state = ContainerState::Running;
                status.started_at = at.or(status.started_at);
                status.exit_code = None;
                status.settling = false;
                // Read before the start, the spec may lack what was done in between (compose connects its
                // networks after the create): unknown, so no change, until the start's inspect says.
                status.spec = None;
                // A health check starts over with the container: never carry an old `unhealthy` into it.
                if status.health != Health::None {
                    status.health = Health::Starting;
                }
            }
            "unpause" => status.state = ContainerState::Running,
            "pause" => status.state = ContainerState::Paused,
            "die" => {
                status.state = ContainerState::Exited;
                status.finished_at = at.or(status.finished_at);
                // Podman names it `containerExitCode`.
                status.exit_code = attributes
                    .and_then(|attributes| {
                        attributes
                            .get("exitCode")
                            .or_else(|| attributes.get("containerExitCode"))
                    })
                    .and_then(|code| code.parse().ok())
                    .or(status.exit_code);
                status.settling = true;
            }
            // A signal sent tells no state by itself (the `die` that may follow does); a `stop` ends with the
            // exit its `die` showed, a `restart` with the run its `start` showed. Nothing to write: whether
            // the view shows the event's effect is all that is asked.
            "kill" => return true,
            "stop" => return status.state == ContainerState::Exited,
            "restart" => return status.state == ContainerState::Running,
            _ => return false,
        }
        self.exits().annotate(&mut status);
        self.writer.apply(id.to_owned(), Some(status));
        tracing::debug!(target: crate::HEAL_TRACE, container = %id, action, stage = "foreseen", "view updated from the event");
        true
    }

    /// Asks the engine what happened while nobody watched — from `from` (at most [`RECALL`] ago) to `to` —
    /// and tells the exit tracker only: the re-list that follows reads every container as it is now, but it
    /// cannot say how an exit came about. So a member stopped while status-api restarted, or by an engine
    /// restarting (which stops what ran under it), is told as stopped on request rather than `unseen`, as far
    /// as the engine still remembers. A failure is only logged: the re-list meets the same engine next.
    pub(super) async fn recall(&self, from: DateTime<Utc>, to: DateTime<Utc>, kind: EngineKind) {
        let from = from.max(to - RECALL);
        if from >= to {
            return;
        }
        let (since, until) = (
            unix_seconds(SystemTime::from(from)),
            unix_seconds(SystemTime::from(to)),
        );
        match self
            .engine
            .past_events(self.writer.scope(), since, until, kind)
            .await
        {
            Ok(past) => {
                let mut exits = self.exits();
                for event in &past {
                    let id = event.actor.as_ref().and_then(|actor| actor.id.as_deref());
                    let action = event.action.as_deref().and_then(event_action);
                    if let (Some(id), Some(action)) = (id, action) {
                        exits.event(id, action, event_time(event));
                    }
                }
                tracing::debug!(events = past.len(), %from, "recalled what happened while nobody watched");
            }
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "cannot read the engine's past events: exits before now show as unseen");
            }
        }
    }
}

/// A container as its `create` event tells it: named, with its image and labels (Docker's event attributes
/// are the container's labels plus `name` and `image`), `created`, and settling until its inspect answers.
fn created_from_event(
    id: &str,
    attributes: Option<&HashMap<String, String>>,
    at: Option<DateTime<Utc>>,
) -> Option<ContainerStatus> {
    let attributes = attributes?;
    let name = attributes.get("name")?.trim_start_matches('/').to_owned();
    let image = attributes.get("image").cloned().unwrap_or_default();
    let labels: std::collections::BTreeMap<String, String> = attributes
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "name" | "image"))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Some(ContainerStatus {
        id: id.to_owned(),
        name,
        image,
        image_id: String::new(),
        state: ContainerState::Created,
        health: Health::None,
        exit_code: None,
        restart_count: 0,
        created_at: at,
        started_at: None,
        finished_at: None,
        policy: Policy::from_labels(&labels),
        labels,
        ports: Vec::new(),
        in_snapshot: false,
        settling: true,
        restart_policy: None,
        exit_cause: None,
        spec_changes: Vec::new(),
        tag_image_id: None,
        spec: None,
        shares: SharedNamespaces::default(),
    })
}
