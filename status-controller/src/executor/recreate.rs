//! The engine half of a recreate: the spec read from status-api and checked again, the namespace owners it
//! joins asked whether they run, the image and the anonymous volumes looked up (never pulled, never removed),
//! create, connect, start — the same steps for the replace of a dependant whose namespace owner was
//! recreated, after a graceful stop and removal — and the finishing of a recreate or replace that was cut
//! short, so a container this controller left `created` starts with every network of its member. A
//! `created` container it did not make (one made by hand under the member's name, say) is started as it
//! is: the snapshot's networks and aliases are the member's, not an impostor's to take. The request half,
//! the snapshot spec turned into the create request these steps send, without any I/O, is
//! [`crate::recreate`].
//!
//! Nothing here force-removes a container, or removes one it made: a recreate or replace that fails after its
//! create leaves the container `created`, and the next pass finishes it through
//! [`Executor::finish_and_start`]. The one removal is the replace's own, of the old dependant, stopped
//! gracefully first and only once its spec, image and owners say it can be made again.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use shared::runtime::engine::EngineError;
use shared::{in_scope, ContainerSpec, Policy, SharedNamespaces};

use super::{outcome_of, Executor};
use crate::clock::Clock;
use crate::docker::{Applied, DockerError, EngineWriter};
use crate::model::{Action, ActionContext, ActionResult, Outcome};
use crate::recheck::Seen;
use crate::recreate::{recreation, Recreation};
use crate::status_client::{StatusError, StatusSource};

/// The containers this controller created for a recreate or replace that have not started yet: the only
/// `created` containers whose start connects the spec's networks first. Kept in memory, so after the
/// controller restarts, a recreate it had cut short is started as it is, without the networks it lacks,
/// and `/actions` names them. No label marks them: it would be in the container's spec, which the
/// snapshot's does not have.
#[derive(Debug, Default)]
pub(super) struct Made(Mutex<HashSet<String>>);

impl Made {
    fn ids(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, id: &str) {
        self.ids().insert(id.to_owned());
    }

    fn contains(&self, id: &str) -> bool {
        self.ids().contains(id)
    }

    /// It started, or is gone: no start is left to finish.
    fn forget(&self, id: &str) {
        self.ids().remove(id);
    }
}

/// A create request ready to send, and what could not be as it was (for `/actions`).
struct Ready {
    recreation: Recreation,
    notes: Vec<String>,
}

impl<W: EngineWriter, S: StatusSource, C: Clock> Executor<W, S, C> {
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
        still_opted_in(action, &spec)?;
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
        self.inner.made.insert(&id);
        for (network, endpoint) in recreation.extra_networks.iter().cloned() {
            if let Err(err) = docker.connect_network(name, &id, &network, endpoint).await {
                return left_created(&id, &err);
            }
        }
        let started = docker.start(name, &id).await;
        if started.is_ok() {
            self.inner.made.forget(&id);
        }
        match started {
            Ok(Applied::Done | Applied::AlreadyDone) => Outcome::recreated(&id, &notes),
            Ok(Applied::NoSuchContainer) => Outcome::gone(),
            Err(err) => left_created(&id, &err),
        }
    }

    /// Starts a member that is `created`. When this controller created it (a recreate or replace cut short
    /// between create and start), every network of its spec it lacks is connected first; any other
    /// container is started as it is — the detail then names the networks of the spec it lacks. Without
    /// the spec (no token, or no longer a member) it is started as it is.
    pub(super) async fn finish_and_start(&self, action: &Action, seen: &Seen) -> Outcome {
        let docker = &self.inner.docker;
        let (name, id) = (action.container.as_str(), seen.id.as_str());
        let mut connected = Vec::new();
        let mut lacking = Vec::new();
        match self
            .inner
            .specs
            .spec(name)
            .await
            .map(|spec| recreation(&spec))
        {
            Ok(Ok(recreation)) => {
                let missing = missing_networks(&recreation, seen);
                if self.inner.made.contains(id) {
                    for (network, endpoint) in missing {
                        if let Err(err) = docker.connect_network(name, id, &network, endpoint).await
                        {
                            return Outcome::failed(&err);
                        }
                        connected.push(network);
                    }
                } else {
                    // Not one it made: whoever made it chose its networks.
                    lacking = missing.into_iter().map(|(network, _)| network).collect();
                }
            }
            Ok(Err(err)) => return Outcome::failed(&err),
            Err(err) => {
                tracing::debug!(container = name, error = %err, "no spec: started as it is");
            }
        }
        let started = docker.start(name, id).await;
        if started.is_ok() {
            self.inner.made.forget(id);
        }
        let outcome = outcome_of(started, "already running (304)");
        if outcome.result != ActionResult::Ok {
            return outcome;
        }
        if !connected.is_empty() {
            return Outcome::ok(Some(format!(
                "connected {} first (an unfinished recreate had left it without)",
                connected.join(", ")
            )));
        }
        if !lacking.is_empty() {
            return Outcome::ok(Some(format!(
                "started as it is, without the snapshot's networks {}: the controller did not create \
                 this container (or created it before it last restarted), so it connects none",
                lacking.join(", ")
            )));
        }
        outcome
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

    /// Leaves out the volumes that are gone — anonymous ones, however they were given, and those the spec
    /// names: the engine makes fresh, empty ones in their place, and the notes say so. Never creates or
    /// removes a volume itself.
    async fn keep_volumes_that_exist(
        &self,
        recreation: &mut Recreation,
        notes: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        for volume in recreation.volumes.clone() {
            if !self
                .inner
                .docker
                .volume_exists(&recreation.name, &volume.name)
                .await?
            {
                recreation.forget_volume(&volume.name);
                notes.push(format!(
                    "its volume {} at {} was gone: the engine made a fresh, empty one",
                    volume.short_name(),
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

/// A `changed` member is put back only while its snapshot spec asks for it: an edit of the baseline since
/// the plan (a re-baseline without the label) is respected.
fn still_opted_in(action: &Action, spec: &ContainerSpec) -> Result<(), Outcome> {
    let labels = spec.member().labels;
    let asked = labels.get(shared::CHANGED_LABEL).map(|value| value.trim());
    if action.drift == Some(shared::DriftKind::Changed) && asked != Some(shared::CHANGED_RECREATE) {
        return Err(Outcome::skipped(format!(
            "its snapshot spec is no longer labelled {}={}",
            shared::CHANGED_LABEL,
            shared::CHANGED_RECREATE
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
    use std::sync::Arc;

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
        let seen = created(&"f".repeat(64));
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

    /// An engine where each call is remembered and succeeds, but for connecting the networks in `refused`.
    #[derive(Debug, Clone, Default)]
    struct Engine {
        calls: Arc<Mutex<Vec<String>>>,
        refused: Arc<Mutex<BTreeSet<String>>>,
    }

    impl Engine {
        fn record(&self, call: String) {
            self.calls.lock().expect("not poisoned").push(call);
        }

        fn take_calls(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.lock().expect("not poisoned"))
        }
    }

    impl EngineWriter for Engine {
        async fn negotiate(&self) -> crate::docker::Result<()> {
            Ok(())
        }
        async fn inspect(
            &self,
            _name: &str,
            _id: &str,
        ) -> crate::docker::Result<Option<bollard::models::ContainerInspectResponse>> {
            Ok(None)
        }
        async fn start(&self, _name: &str, id: &str) -> crate::docker::Result<Applied> {
            self.record(format!("start {id}"));
            Ok(Applied::Done)
        }
        async fn unpause(&self, _name: &str, _id: &str) -> crate::docker::Result<Applied> {
            Ok(Applied::Done)
        }
        async fn restart(&self, _: &str, _: &str, _: Duration) -> crate::docker::Result<Applied> {
            Ok(Applied::Done)
        }
        async fn stop(&self, _: &str, _: &str, _: Duration) -> crate::docker::Result<Applied> {
            Ok(Applied::Done)
        }
        async fn remove(&self, _name: &str, _id: &str) -> crate::docker::Result<Applied> {
            Ok(Applied::Done)
        }
        async fn image_id(
            &self,
            _name: &str,
            _reference: &str,
        ) -> crate::docker::Result<Option<String>> {
            Ok(Some("sha256:1".into()))
        }
        async fn volume_exists(&self, _name: &str, _volume: &str) -> crate::docker::Result<bool> {
            Ok(true)
        }
        async fn create(&self, _recreation: &Recreation) -> crate::docker::Result<String> {
            self.record("create".into());
            Ok("made".into())
        }
        async fn connect_network(
            &self,
            _name: &str,
            id: &str,
            network: &str,
            _endpoint: bollard::models::EndpointSettings,
        ) -> crate::docker::Result<()> {
            self.record(format!("connect {id} {network}"));
            if self.refused.lock().expect("not poisoned").contains(network) {
                return Err(DockerError::Engine(EngineError::Conflict {
                    op: "connect",
                    target: network.to_owned(),
                    message: format!("network {network} not found"),
                }));
            }
            Ok(())
        }
    }

    /// status-api as a recreate sees it: the spec of `api`, a member on `front` and `back`.
    #[derive(Debug, Clone)]
    struct Specs;

    impl StatusSource for Specs {
        async fn status(
            &self,
            _since: Option<u64>,
            _wait: Duration,
        ) -> crate::status_client::Result<crate::model::StatusAnswer> {
            Err(StatusError::NoSnapshot)
        }
        async fn snapshot(
            &self,
        ) -> crate::status_client::Result<std::sync::Arc<shared::SnapshotSummary>> {
            Err(StatusError::NoSnapshot)
        }
        async fn spec(&self, _name: &str) -> crate::status_client::Result<ContainerSpec> {
            Ok(ContainerSpec {
                name: "api".into(),
                id: "0".repeat(64),
                image: "busybox:latest".into(),
                image_id: "sha256:1".into(),
                config: json!({"Image": "busybox:latest"}),
                host_config: json!({"NetworkMode": "front"}),
                networks: json!({"front": {"Aliases": ["api"]}, "back": {"Aliases": ["api-internal"]}}),
                mounts: serde_json::Value::Null,
            })
        }
    }

    fn executor(engine: &Engine) -> Executor<Engine, Specs> {
        let clock = crate::clock::SystemClock;
        let metrics = crate::metrics::Metrics::new();
        let (set, until) = metrics.maintenance();
        let maintenance = crate::maintenance::Maintenance::start(
            None,
            crate::maintenance::HoldMetrics { set, until },
            clock.utc(),
        );
        Executor::with_clock(
            engine.clone(),
            Specs,
            crate::journal::Journal::new(),
            metrics,
            maintenance,
            clock,
        )
    }

    fn action(kind: crate::model::ActionKind) -> Action {
        Action {
            container: "api".into(),
            id: "0".repeat(64),
            kind,
            drift: None,
            policy: Policy::Heal,
            state: None,
            reason: "test".into(),
            waits_for: None,
            retry_at: None,
        }
    }

    /// `api`, `created`, with the network it was created with.
    fn created(id: &str) -> Seen {
        Seen {
            id: id.into(),
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
        }
    }

    #[tokio::test]
    async fn only_a_container_it_created_is_connected_before_it_starts() {
        use crate::model::ActionKind;

        let engine = Engine::default();
        let executor = executor(&engine);
        engine
            .refused
            .lock()
            .expect("not poisoned")
            .insert("back".into());
        let cut_short = executor
            .recreate(&action(ActionKind::Recreate), &ActionContext::default())
            .await;
        assert_eq!(cut_short.result, ActionResult::Failed, "{cut_short:?}");
        assert_eq!(engine.take_calls(), ["create", "connect made back"]);
        engine.refused.lock().expect("not poisoned").clear();

        // Made by someone else (or before the controller restarted): started as it is.
        let other = executor
            .finish_and_start(&action(ActionKind::Start), &created("by-hand"))
            .await;
        assert_eq!(engine.take_calls(), ["start by-hand"]);
        assert_eq!(other.result, ActionResult::Ok);
        assert!(
            other.detail.as_deref().is_some_and(|detail| detail
                .starts_with("started as it is, without the snapshot's networks back:")),
            "{other:?}"
        );

        // Its own: finished.
        let finished = executor
            .finish_and_start(&action(ActionKind::Start), &created("made"))
            .await;
        assert_eq!(engine.take_calls(), ["connect made back", "start made"]);
        assert_eq!(
            finished.detail.as_deref(),
            Some("connected back first (an unfinished recreate had left it without)")
        );

        // Once started, it is no longer one to finish.
        executor
            .finish_and_start(&action(ActionKind::Start), &created("made"))
            .await;
        assert_eq!(engine.take_calls(), ["start made"]);
    }

    /// A clock that does not move: whatever the executor reads from it shows unchanged in the record.
    #[derive(Debug, Clone, Copy)]
    struct StoppedClock {
        now: std::time::Instant,
        utc: chrono::DateTime<chrono::Utc>,
    }

    impl Clock for StoppedClock {
        fn now(&self) -> std::time::Instant {
            self.now
        }

        fn utc(&self) -> chrono::DateTime<chrono::Utc> {
            self.utc
        }
    }

    #[tokio::test]
    async fn a_recreate_is_dated_and_timed_by_the_executor_s_clock() {
        use chrono::TimeZone;

        let engine = Engine::default();
        let clock = StoppedClock {
            now: crate::clock::SystemClock.now(),
            utc: chrono::Utc
                .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
                .single()
                .expect("a time"),
        };
        let metrics = crate::metrics::Metrics::new();
        let (set, until) = metrics.maintenance();
        let maintenance = crate::maintenance::Maintenance::start(
            None,
            crate::maintenance::HoldMetrics { set, until },
            clock.utc(),
        );
        let executor = Executor::with_clock(
            engine.clone(),
            Specs,
            crate::journal::Journal::new(),
            metrics.clone(),
            maintenance,
            clock,
        );

        let record = executor
            .spawn(
                action(crate::model::ActionKind::Recreate),
                Arc::new(ActionContext::default()),
                clock.now(),
            )
            .expect("not busy")
            .await
            .expect("the task ends");

        assert_eq!(record.result, ActionResult::Ok, "{record:?}");
        assert_eq!(record.time, clock.utc());
        assert_eq!(record.duration_seconds, 0.0);
        let text = metrics.render();
        assert!(
            text.contains("dockstate_controller_heal_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("dockstate_controller_heal_seconds_sum 0\n"),
            "{text}"
        );
    }
}
