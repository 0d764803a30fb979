//! The engine's side of a recreate: the spec read from status-api and checked again, the image and the
//! anonymous volumes looked up (never pulled, never removed), create, connect, start — and the finishing of a
//! recreate that was cut short, so a container left `created` starts with every network of its member.
//!
//! Nothing here removes a container: a recreate that fails half-way leaves the container `created`, and the
//! next pass finishes it through [`Executor::finish_and_start`].

use shared::runtime::engine::EngineError;
use shared::{in_scope, ContainerSpec, Policy};

use super::{outcome_of, Executor};
use crate::docker::{Applied, DockerError, EngineWriter};
use crate::model::{Action, ActionContext, ActionResult, Outcome};
use crate::recheck::Seen;
use crate::recreate::{recreation, Recreation};
use crate::status_client::{StatusError, StatusSource};

impl<W: EngineWriter, S: StatusSource> Executor<W, S> {
    /// Reads the spec from status-api, checks it is still ours to recreate, picks the image and the volumes
    /// that are still here, creates, connects, starts.
    pub(super) async fn recreate(&self, action: &Action, context: &ActionContext) -> Outcome {
        let name = action.container.as_str();
        let spec = match self.inner.specs.spec(name).await {
            Ok(spec) => spec,
            Err(StatusError::NotInSnapshot(_)) => {
                return Outcome::skipped("it is no longer in the snapshot")
            }
            Err(err) => return Outcome::failed(&err),
        };
        if let Err(outcome) = still_ours(&spec, context) {
            return outcome;
        }
        let mut recreation = match recreation(&spec) {
            Ok(recreation) => recreation,
            Err(err) => return Outcome::failed(&err),
        };
        let mut notes = Vec::new();
        if let Err(err) = self.pick_image(&mut recreation, &mut notes).await {
            return Outcome::failed(&err);
        }
        if let Err(err) = self
            .keep_volumes_that_exist(&mut recreation, &mut notes)
            .await
        {
            return Outcome::failed(&err);
        }

        let docker = &self.inner.docker;
        let id = match docker.create(&recreation).await {
            Ok(id) => id,
            Err(DockerError::Engine(EngineError::Conflict { .. })) => {
                return Outcome::conflict(format!(
                    "a container named {name} exists again: the next change decides"
                ))
            }
            Err(err) => return Outcome::failed(&err),
        };
        // From here on a failure leaves the container `created`; the next pass connects what is missing and
        // starts it (never a forced removal).
        for (network, endpoint) in recreation.extra_networks {
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
                    &volume.name[..volume.name.len().min(12)],
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
        &id[..id.len().min(12)]
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
