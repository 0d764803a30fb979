//! The engine's side of a recreate: the spec read from status-api and checked again, the namespace owners it
//! joins asked whether they run, the image and the anonymous volumes looked up (never pulled, never removed),
//! create, connect, start — the same steps for the replace of a dependant whose namespace owner was
//! recreated, after a graceful stop and removal — and the finishing of a recreate or replace that was cut
//! short, so a container left `created` starts with every network of its member.
//!
//! Nothing here force-removes a container, or removes one it made: a recreate or replace that fails after its
//! create leaves the container `created`, and the next pass finishes it through
//! [`Executor::finish_and_start`]. The one removal is the replace's own, of the old dependant, stopped
//! gracefully first and only once its spec, image and owners say it can be made again.

use std::time::Duration;

use shared::runtime::engine::EngineError;
use shared::{in_scope, ContainerSpec, Policy, SharedNamespaces};

use super::{outcome_of, Executor};
use crate::docker::{Applied, DockerError, EngineWriter};
use crate::model::{Action, ActionContext, ActionResult, Outcome};
use crate::recheck::Seen;
use crate::recreate::{recreation, Recreation};
use crate::status_client::{StatusError, StatusSource};

/// A create request ready to send, and what could not be as it was (for `/actions`).
struct Ready {
    recreation: Recreation,
    notes: Vec<String>,
}

impl<W: EngineWriter, S: StatusSource> Executor<W, S> {
    /// Reads the spec from status-api, checks it is still ours to recreate, picks the image and the volumes
    /// that are still here, creates, connects, starts.
    pub(super) async fn recreate(&self, action: &Action, context: &ActionContext) -> Outcome {
        match self.ready(action, context).await {
            Ok(ready) => self.create_and_start(ready).await,
            Err(outcome) => outcome,
        }
    }

    /// Stops and removes a member that can never start again as it is (it holds the id of a namespace owner
    /// that was recreated), then creates it again from its spec, which names the owner by name. Re-checked
    /// like every action on an existing container before this is called, and everything a recreate needs
    /// (spec, owners, image, volumes) made ready before anything is removed. Its anonymous volumes outlive
    /// the removal (never `-v`) and are re-attached by name. When the create fails after the removal, the
    /// member is `removed` at the next pass and recreated from there; when it fails after the create, it is
    /// left `created` and finished like a recreate cut short.
    pub(super) async fn replace(
        &self,
        action: &Action,
        context: &ActionContext,
        grace: Duration,
    ) -> Outcome {
        // Ready first: a member is never removed when it cannot be made again.
        let ready = match self.ready(action, context).await {
            Ok(ready) => ready,
            Err(outcome) => return outcome,
        };
        let docker = &self.inner.docker;
        let (name, id) = (action.container.as_str(), action.id.as_str());
        match docker.stop(name, id, grace).await {
            Ok(Applied::Done | Applied::AlreadyDone | Applied::NoSuchContainer) => {}
            other => return outcome_of(other, ""),
        }
        match docker.remove(name, id).await {
            Ok(Applied::Done | Applied::NoSuchContainer) => {}
            other => return outcome_of(other, "already being removed"),
        }
        self.create_and_start(ready).await
    }

    /// The create request for a member, from its spec as status-api serves it, once it is sure the member
    /// is still ours to recreate and the owners of the namespaces it joins run, with the image and the
    /// anonymous volumes that are still here.
    async fn ready(&self, action: &Action, context: &ActionContext) -> Result<Ready, Outcome> {
        let name = action.container.as_str();
        let spec = match self.inner.specs.spec(name).await {
            Ok(spec) => spec,
            Err(StatusError::NotInSnapshot(_)) => {
                return Err(Outcome::skipped("it is no longer in the snapshot"))
            }
            Err(err) => return Err(Outcome::failed(&err)),
        };
        still_ours(&spec, context)?;
        // The spec names the owners by name: the ones it will join.
        self.owners_run(&SharedNamespaces::from_host_config(&spec.host_config))
            .await?;
        let mut recreation = recreation(&spec).map_err(|err| Outcome::failed(&err))?;
        let mut notes = Vec::new();
        self.pick_image(&mut recreation, &mut notes)
            .await
            .map_err(|err| Outcome::failed(&err))?;
        self.keep_volumes_that_exist(&mut recreation, &mut notes)
            .await
            .map_err(|err| Outcome::failed(&err))?;
        Ok(Ready { recreation, notes })
    }

    /// Creates, connects, starts. From the create on, a failure leaves the container `created`; the next
    /// pass connects what is missing and starts it (never a forced removal).
    async fn create_and_start(&self, ready: Ready) -> Outcome {
        let Ready { recreation, notes } = ready;
        let docker = &self.inner.docker;
        let name = recreation.name.as_str();
        let id = match docker.create(&recreation).await {
            Ok(id) => id,
            Err(DockerError::Engine(EngineError::Conflict { .. })) => {
                return Outcome::conflict(format!(
                    "a container named {name} exists again: the next change decides"
                ))
            }
            Err(err) => return Outcome::failed(&err),
        };
        for (network, endpoint) in recreation.extra_networks.iter().cloned() {
            if let Err(err) = docker.connect_network(name, &id, &network, endpoint).await {
                return left_created(&id, &err);
            }
        }
        match docker.start(name, &id).await {
            Ok(Applied::Done | Applied::AlreadyDone) => Outcome::recreated(&id, &notes),
            Ok(Applied::NoSuchContainer) => Outcome::gone(),
            Err(err) => left_created(&id, &err),
        }
    }

    /// Starts a member that is `created` — perhaps a recreate cut short between create and start — after
    /// connecting it to every network of its spec it lacks. Without the spec (no token, or no longer a
    /// member) it is started as it is.
    pub(super) async fn finish_and_start(&self, action: &Action, seen: &Seen) -> Outcome {
        let docker = &self.inner.docker;
        let (name, id) = (action.container.as_str(), seen.id.as_str());
        let mut connected = Vec::new();
        match self
            .inner
            .specs
            .spec(name)
            .await
            .map(|spec| recreation(&spec))
        {
            Ok(Ok(recreation)) => {
                for (network, endpoint) in missing_networks(&recreation, seen) {
                    if let Err(err) = docker.connect_network(name, id, &network, endpoint).await {
                        return Outcome::failed(&err);
                    }
                    connected.push(network);
                }
            }
            Ok(Err(err)) => return Outcome::failed(&err),
            Err(err) => {
                tracing::debug!(container = name, error = %err, "no spec: started as it is");
            }
        }
        let outcome = outcome_of(docker.start(name, id).await, "already running (304)");
        if connected.is_empty() || outcome.result != ActionResult::Ok {
            return outcome;
        }
        Outcome::ok(Some(format!(
            "connected {} first (an unfinished recreate had left it without)",
            connected.join(", ")
        )))
    }

    /// The reference when it still names an image here, else the id the member ran, else an error that
    /// says so. Never pulls.
    async fn pick_image(
        &self,
        recreation: &mut Recreation,
        notes: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let docker = &self.inner.docker;
        let name = recreation.name.clone();
        let (reference, recorded) = (recreation.image.clone(), recreation.image_id.clone());
        if let Some(found) = docker.image_id(&name, &reference).await? {
            if !recorded.is_empty() && found != recorded {
                notes.push(format!(
                    "image {reference} names another image now ({found}) than the member ran ({recorded})"
                ));
            }
            return Ok(());
        }
        if recorded.is_empty() {
            return Err(DockerError::ImageMissing {
                image: reference,
                container: name,
            });
        }
        if docker.image_id(&name, &recorded).await?.is_none() {
            return Err(DockerError::ImageAndIdMissing {
                image: reference,
                image_id: recorded,
                container: name,
            });
        }
        recreation.use_image(&recorded);
        notes.push(format!(
            "image {reference} is no longer on this host: created from the image it ran, {recorded}"
        ));
        Ok(())
    }

    /// Leaves out the anonymous volumes that are gone: the engine makes fresh, empty ones in their place,
    /// and the notes say so. Never creates or removes a volume itself.
    async fn keep_volumes_that_exist(
        &self,
        recreation: &mut Recreation,
        notes: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        for volume in recreation.anonymous_volumes.clone() {
            if !self
                .inner
                .docker
                .volume_exists(&recreation.name, &volume.name)
                .await?
            {
                recreation.forget_volume(&volume.name);
                notes.push(format!(
                    "its volume {} at {} was gone: the engine made a fresh, empty one",
                    shared::short_id(&volume.name),
                    volume.destination
                ));
            }
        }
        Ok(())
    }
}

/// The re-check of a recreate: the spec's own labels must still put it in scope with policy `heal`.
fn still_ours(spec: &ContainerSpec, context: &ActionContext) -> Result<(), Outcome> {
    let labels = spec.member().labels;
    if !in_scope(&context.scope, &labels) {
        return Err(Outcome::skipped(
            "its snapshot labels put it outside status-api's scope",
        ));
    }
    let policy = Policy::from_labels(&labels);
    if policy != Policy::Heal {
        return Err(Outcome::skipped(format!(
            "its policy is {}",
            policy.as_str()
        )));
    }
    Ok(())
}

/// The networks of `recreation` (the one it is created with included) that `seen` is not connected to.
fn missing_networks(
    recreation: &Recreation,
    seen: &Seen,
) -> Vec<(String, bollard::models::EndpointSettings)> {
    recreation
        .all_networks()
        .into_iter()
        .filter(|(network, _)| !seen.networks.contains(network))
        .collect()
}

/// A recreate that failed after create: the container stays `created` for the next pass to finish.
fn left_created(id: &str, err: &DockerError) -> Outcome {
    let mut outcome = Outcome::failed(err);
    outcome.detail = Some(format!(
        "{}; left created as {}: the next pass connects what is missing and starts it",
        outcome.detail.unwrap_or_default(),
        shared::short_id(id)
    ));
    outcome
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;
    use shared::ContainerSpec;

    use super::*;

    #[test]
    fn only_the_networks_a_half_made_container_lacks_are_connected() {
        let spec = ContainerSpec {
            name: "api".into(),
            id: "0123456789ab".repeat(5) + "cdef",
            image: "busybox:latest".into(),
            image_id: "sha256:1".into(),
            config: json!({"Image": "busybox:latest"}),
            host_config: json!({"NetworkMode": "front"}),
            networks: json!({
                "front": {"Aliases": ["api"]},
                "back": {"Aliases": ["api-internal"]},
                "audit": {},
            }),
            mounts: serde_json::Value::Null,
        };
        let recreation = recreation(&spec).expect("valid spec");
        let seen = Seen {
            id: "f".repeat(64),
            name: "api".into(),
            labels: Default::default(),
            running: false,
            paused: false,
            created: true,
            networks: BTreeSet::from(["front".to_owned()]),
            moving: false,
            unhealthy: false,
            stop_timeout: None,
            shares: SharedNamespaces::default(),
        };
        let missing: Vec<(String, Option<Vec<String>>)> = missing_networks(&recreation, &seen)
            .into_iter()
            .map(|(name, endpoint)| (name, endpoint.aliases))
            .collect();
        assert_eq!(
            missing,
            vec![
                ("audit".to_owned(), None),
                ("back".to_owned(), Some(vec!["api-internal".to_owned()]))
            ]
        );
    }
}
