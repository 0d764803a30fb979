//! The baseline in force, and its one owner. [`BaselineKeeper`] takes, writes and publishes it; everyone
//! else holds a [`BaselineReceiver`] and reads an immutable [`Baseline`] from it. [`SnapshotFile`] joins the
//! format (`snapshot`) and the directory it lives in (`state_dir`). What readers derive from a
//! baseline (the summary `GET /snapshot` shows, its JSON, the member names) is computed once, when it is
//! published, not on every request or view.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::models::ContainerInspectResponse;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use shared::runtime::engine::EngineError;
use shared::{
    ContainerSpec, ContainerStatus, Scope, SnapshotMember, SnapshotSummary, SpecChange, SpecSummary,
};
use tokio::sync::watch;

use crate::docker::{spec_from_inspect, EngineReader};
use crate::snapshot::{FormatError, Snapshot, FILE_NAME, FORMAT};
use crate::state_dir::{StateDir, StateDirError};

mod edit;
pub use edit::EditError;

/// How many inspects taking a snapshot runs at once.
const INSPECT_CONCURRENCY: usize = 8;

/// Where readers see the baseline in force: `None` until the first one is loaded or taken.
pub type BaselineReceiver = watch::Receiver<Option<Arc<Baseline>>>;

/// Why the snapshot could not be loaded, taken or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file's content: corrupt, or a format this build does not read.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The state directory: untrusted, unreadable, read-only, locked by another status-api, or a failed write.
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    #[error("taking the snapshot failed: the Docker engine did not answer")]
    Docker(#[from] EngineError),
}

/// `<state-dir>/snapshot.json`.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    dir: Arc<StateDir>,
    path: PathBuf,
}

impl SnapshotFile {
    pub fn new(dir: Arc<StateDir>) -> Self {
        Self {
            path: dir.path().join(FILE_NAME),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored snapshot; `None` when there is none yet (first start). Never needs write access.
    pub fn load(&self) -> Result<Option<Snapshot>, SnapshotError> {
        match self.dir.read(FILE_NAME)? {
            Some(bytes) => Ok(Some(Snapshot::from_json(&self.path, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Whether a snapshot could be written now; the error says why not (read-only, or another status-api
    /// holds the lock).
    pub fn writable(&self) -> Result<(), SnapshotError> {
        Ok(self.dir.writable()?)
    }

    /// Replaces the file atomically ([`StateDir::replace`]): a crash leaves the old snapshot or the new one.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        Ok(self.dir.replace(FILE_NAME, &snapshot.to_json())?)
    }
}

/// A snapshot in force, with what every reader derives from it. Immutable: a re-baseline publishes a new one.
#[derive(Debug)]
pub struct Baseline {
    snapshot: Snapshot,
    summary: SnapshotSummary,
    /// `summary` as JSON: `GET /snapshot` is a reference-count increment.
    summary_json: Bytes,
    members: HashSet<String>,
    /// What of each member's spec the `changed` drift compares, by name: made once, as the baseline is.
    specs: HashMap<String, Arc<SpecSummary>>,
    /// The scope it was taken in, normalised ([`shared::normalized_scope`]); `None` for the whole host.
    scope: Option<String>,
}

impl Baseline {
    pub fn new(snapshot: Snapshot) -> Self {
        let summary = snapshot.summary();
        let summary_json = Bytes::from(
            serde_json::to_vec(&summary).expect("a snapshot summary always serialises to JSON"),
        );
        let members = snapshot
            .containers
            .iter()
            .map(|spec| spec.name.clone())
            .collect();
        let specs = snapshot
            .containers
            .iter()
            .map(|spec| {
                let compared = SpecSummary::from_engine(
                    &spec.id,
                    &spec.config,
                    &spec.host_config,
                    &spec.networks,
                    &spec.mounts,
                );
                (spec.name.clone(), Arc::new(compared))
            })
            .collect();
        Self {
            scope: shared::normalized_scope(snapshot.scope.as_deref()),
            snapshot,
            summary,
            summary_json,
            members,
            specs,
        }
    }

    /// The scope it was taken in, normalised; `None` for the whole host.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub fn taken_at(&self) -> DateTime<Utc> {
        self.snapshot.taken_at
    }

    /// How many containers it records.
    pub fn len(&self) -> usize {
        self.snapshot.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.snapshot.containers.is_empty()
    }

    /// The members as `GET /snapshot` and the drift computation see them: no environment.
    pub fn members(&self) -> &[SnapshotMember] {
        &self.summary.containers
    }

    /// The JSON of the [`SnapshotSummary`].
    pub fn summary_json(&self) -> Bytes {
        self.summary_json.clone()
    }

    /// Whether a container of that name is a member.
    pub fn contains(&self, name: &str) -> bool {
        self.members.contains(name)
    }

    /// Every field but the image in which `container` differs from its member's spec ([`shared::spec_diff`]);
    /// empty when it is no member, or status-api has not inspected it yet.
    pub fn spec_changes(&self, container: &ContainerStatus) -> Vec<SpecChange> {
        match (self.specs.get(&container.name), &container.spec) {
            (Some(member), Some(current)) => shared::spec_diff::diff(member, current),
            _ => Vec::new(),
        }
    }

    /// A member's recreation spec (with its environment: serve it only with the token).
    pub fn spec(&self, name: &str) -> Option<&ContainerSpec> {
        self.snapshot.spec(name)
    }
}

/// The one owner of the baseline: loads it at start, takes the first one, re-baselines on request — one at
/// a time, the file written before the new baseline is published.
#[derive(Debug)]
pub struct BaselineKeeper {
    file: SnapshotFile,
    engine: Arc<dyn EngineReader>,
    scope: Scope,
    current: watch::Sender<Option<Arc<Baseline>>>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl BaselineKeeper {
    /// A keeper of the snapshot `loaded` from `file` (`None` on a first start).
    pub fn new(
        file: SnapshotFile,
        engine: Arc<dyn EngineReader>,
        scope: Scope,
        loaded: Option<Snapshot>,
    ) -> Self {
        Self {
            file,
            engine,
            scope,
            current: watch::Sender::new(loaded.map(|snapshot| Arc::new(Baseline::new(snapshot)))),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// A receiver that always holds the baseline in force and is told of every new one.
    pub fn subscribe(&self) -> BaselineReceiver {
        self.current.subscribe()
    }

    /// The baseline in force.
    pub fn current(&self) -> Option<Arc<Baseline>> {
        self.current.borrow().clone()
    }

    /// Re-baselines to what runs now: takes a snapshot, writes it, then publishes it.
    pub async fn retake(&self) -> Result<Arc<Baseline>, SnapshotError> {
        let _one_at_a_time = self.one_at_a_time.lock().await;
        self.take_and_keep().await
    }

    /// Takes the first snapshot unless one exists (loaded from disk, or taken meanwhile by a re-baseline).
    pub async fn take_if_missing(&self) -> Result<Arc<Baseline>, SnapshotError> {
        let _one_at_a_time = self.one_at_a_time.lock().await;
        match self.current() {
            Some(existing) => Ok(existing),
            None => self.take_and_keep().await,
        }
    }

    /// Loads the snapshot file and publishes what it holds: for a status-api that waited for the state
    /// directory's lock, and now reads what its predecessor left. Nothing is published when there is no file
    /// (the first snapshot is then taken).
    pub async fn load(&self) -> Result<(), SnapshotError> {
        let _one_at_a_time = self.one_at_a_time.lock().await;
        if let Some(snapshot) = self.file.load()? {
            tracing::info!(path = %self.file.path().display(), containers = snapshot.containers.len(), "snapshot loaded");
            self.current
                .send_replace(Some(Arc::new(Baseline::new(snapshot))));
        }
        Ok(())
    }

    /// The snapshot file it keeps.
    pub fn file(&self) -> &SnapshotFile {
        &self.file
    }

    async fn take_and_keep(&self) -> Result<Arc<Baseline>, SnapshotError> {
        // Refused before the engine is asked: a read-only or locked state directory would waste the work.
        self.file.writable()?;
        let snapshot = take(self.engine.as_ref(), &self.scope).await?;
        self.file.save(&snapshot)?;
        tracing::info!(path = %self.file.path().display(), containers = snapshot.containers.len(), "baseline written");
        let baseline = Arc::new(Baseline::new(snapshot));
        self.current.send_replace(Some(baseline.clone()));
        Ok(baseline)
    }
}

/// Records the running containers in scope, inspecting each for its full configuration.
#[tracing::instrument(skip_all)]
async fn take(engine: &dyn EngineReader, scope: &Scope) -> Result<Snapshot, SnapshotError> {
    let running = engine.list(scope, false).await?;
    let ids: Vec<String> = running
        .into_iter()
        .filter_map(|summary| summary.id)
        .collect();
    let inspected: Vec<_> = futures::stream::iter(ids)
        .map(|id| async move { engine.inspect_raw(&id).await })
        .buffer_unordered(INSPECT_CONCURRENCY)
        .try_collect()
        .await?;
    let (temporary, kept): (Vec<_>, Vec<_>) = inspected
        .iter()
        .flatten()
        .filter_map(|raw| {
            let inspect: ContainerInspectResponse =
                shared::runtime::engine_json::inspect(raw.clone()).ok()?;
            Some((inspect, raw))
        })
        .partition(|(inspect, _)| removes_itself(inspect));
    for (inspect, _) in temporary {
        tracing::info!(
            container = inspect
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/'),
            "not recorded: started with --rm, so it is meant to go away"
        );
    }
    let mut containers: Vec<ContainerSpec> = kept
        .into_iter()
        .filter_map(|(_, raw)| spec_from_inspect(raw))
        .collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    let outsiders = owner_names(engine, &shared::namespaces::unnamed_owners(&containers)).await;
    shared::namespaces::name_owners(&mut containers, &outsiders);
    tracing::info!(containers = containers.len(), "snapshot taken");
    Ok(Snapshot {
        format: FORMAT,
        taken_at: Utc::now(),
        scope: scope.as_ref().map(ToString::to_string),
        containers,
    })
}

/// The names of namespace owners that are not members (outside the scope), id → name, so that the snapshot
/// records every owner by name. One that cannot be inspected keeps its id: drift then judges it by id alone.
async fn owner_names(engine: &dyn EngineReader, ids: &[String]) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for id in ids {
        match engine.inspect(id).await {
            Ok(Some(inspect)) => {
                if let Some(name) = inspect.name {
                    names.insert(id.clone(), name.trim_start_matches('/').to_owned());
                }
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(owner = %id, error = %err, "could not name a namespace owner: the snapshot keeps its id")
            }
        }
    }
    names
}

/// Whether the container was started with `--rm` (`HostConfig.AutoRemove`): a one-shot the engine removes when
/// it exits. It never becomes a member, or it would be re-run (as a persistent container) forever.
fn removes_itself(inspect: &ContainerInspectResponse) -> bool {
    inspect
        .host_config
        .as_ref()
        .and_then(|host| host.auto_remove)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::FakeEngine;

    fn file_in(dir: &std::path::Path) -> SnapshotFile {
        let state = crate::state_dir::StateDir::prepare(dir).expect("a trusted state dir");
        state.try_lock().expect("locks");
        SnapshotFile::new(Arc::new(state))
    }

    fn keeper(engine: &FakeEngine, dir: &std::path::Path) -> BaselineKeeper {
        BaselineKeeper::new(
            file_in(dir),
            Arc::new(engine.clone()),
            Some("team=a".parse().expect("selector")),
            None,
        )
    }

    #[test]
    fn a_snapshot_file_saves_with_mode_0600_and_loads_back() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_in(&dir.path().join("state"));
        assert_eq!(file.load().expect("loads"), None);
        let snapshot = Snapshot {
            format: FORMAT,
            taken_at: Utc::now(),
            scope: Some("team=a".into()),
            containers: Vec::new(),
        };
        file.save(&snapshot).expect("saves");
        let mode = std::fs::metadata(file.path())
            .expect("exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(file.load().expect("loads"), Some(snapshot));
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .expect("lists")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(".lock"), FILE_NAME.into()]
        );
    }

    #[test]
    fn a_corrupt_or_newer_file_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_in(dir.path());
        for content in [&b"{\"format\": 1, \"taken_at\": "[..], br#"{"format": 2}"#] {
            std::fs::write(file.path(), content).expect("writes");
            let err = file.load().expect_err("unusable");
            assert!(matches!(err, SnapshotError::Format(_)), "{err}");
            assert!(
                err.to_string().contains(&file.path().display().to_string()),
                "{err}"
            );
            assert_eq!(std::fs::read(file.path()).expect("still there"), content);
        }
    }

    #[tokio::test]
    async fn a_retake_records_the_running_containers_in_scope_writes_them_and_publishes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = FakeEngine::new();
        engine.put("b1", "web", "running", &[("team", "a")]);
        engine.put("b2", "batch", "exited", &[("team", "a")]);
        engine.put("b3", "other", "running", &[("team", "b")]);
        let keeper = keeper(&engine, dir.path());
        let mut readers = keeper.subscribe();
        assert!(readers.borrow_and_update().is_none());

        let baseline = keeper.take_if_missing().await.expect("taken");

        assert!(readers.has_changed().expect("open"), "readers are told");
        let names: Vec<&str> = baseline.members().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["web"]);
        assert!(baseline.contains("web") && !baseline.contains("batch"));
        let summary: SnapshotSummary =
            serde_json::from_slice(&baseline.summary_json()).expect("the summary's JSON");
        assert_eq!(summary.scope.as_deref(), Some("team=a"));
        assert_eq!(summary.containers.len(), 1);
        let on_disk = keeper.file().load().expect("loads");
        assert_eq!(on_disk.map(|s| s.containers.len()), Some(1));
    }

    #[tokio::test]
    async fn namespace_owners_are_recorded_by_name_those_outside_the_scope_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = FakeEngine::new();
        let (vpn, proxy) = ("a".repeat(64), "c".repeat(64));
        engine.put(&vpn, "vpn", "running", &[("team", "a")]);
        engine.put(&"b".repeat(64), "app", "running", &[("team", "a")]);
        engine.set_network_mode(&"b".repeat(64), &format!("container:{vpn}"));
        engine.put(&proxy, "proxy", "running", &[("team", "b")]);
        engine.put(&"d".repeat(64), "sidecar", "running", &[("team", "a")]);
        engine.set_network_mode(&"d".repeat(64), &format!("container:{proxy}"));
        let keeper = keeper(&engine, dir.path());

        let baseline = keeper.take_if_missing().await.expect("taken");

        let owner = |name: &str| {
            baseline
                .members()
                .iter()
                .find(|member| member.name == name)
                .and_then(|member| member.shares.network.clone())
        };
        assert_eq!(owner("app").as_deref(), Some("vpn"));
        assert_eq!(
            owner("sidecar").as_deref(),
            Some("proxy"),
            "inspected to be named"
        );
        assert_eq!(owner("vpn"), None);
        let spec = baseline.spec("app").expect("a member");
        assert_eq!(spec.host_config["NetworkMode"], "container:vpn");
    }

    #[tokio::test]
    async fn containers_started_with_rm_are_never_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = FakeEngine::new();
        engine.put("b1", "web", "running", &[("team", "a")]);
        engine.put("b2", "backup-job", "running", &[("team", "a")]);
        engine.set_auto_remove("b2");
        let keeper = keeper(&engine, dir.path());

        let first = keeper.take_if_missing().await.expect("taken");
        let again = keeper.retake().await.expect("retaken");

        for baseline in [first, again] {
            assert!(baseline.contains("web"));
            assert!(
                !baseline.contains("backup-job"),
                "a --rm container is never a member"
            );
        }
    }

    #[tokio::test]
    async fn take_if_missing_keeps_a_loaded_baseline_and_a_failed_retake_keeps_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = FakeEngine::new();
        engine.put("b1", "web", "running", &[("team", "a")]);
        let keeper = keeper(&engine, dir.path());
        let first = keeper.take_if_missing().await.expect("taken");
        engine.put("b2", "api", "running", &[("team", "a")]);

        let again = keeper.take_if_missing().await.expect("kept");
        assert!(Arc::ptr_eq(&first, &again), "no second snapshot");

        engine.set_unreachable(true);
        let err = keeper.retake().await.expect_err("the engine is gone");
        assert!(matches!(err, SnapshotError::Docker(_)), "{err}");
        assert!(keeper
            .current()
            .is_some_and(|now| Arc::ptr_eq(&now, &first)));
    }
}
