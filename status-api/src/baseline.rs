//! The baseline in force, and its one owner. [`BaselineKeeper`] takes, writes and publishes it; everyone
//! else holds a [`BaselineReceiver`] and reads an immutable [`Baseline`] from it. [`SnapshotFile`] joins the
//! format (`snapshot`) and the directory it lives in (`state_dir`). What readers derive from a
//! baseline (the summary `GET /snapshot` shows, its JSON, the member names) is computed once, when it is
//! published, not on every request or view.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use shared::runtime::engine::EngineError;
use shared::runtime::engine_json::{engine_state, StateFlags};
use shared::{ContainerState, ContainerStatus, Scope, SnapshotMember, SpecChange};
use tokio::sync::watch;

use crate::docker::{read_inspect, EngineReader};
use crate::snapshot::{
    name_owners, sort_by_name, unnamed_owners, FormatError, Member, RecordedSpec, Snapshot,
    FILE_NAME, FORMAT,
};
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
    taken_at: DateTime<Utc>,
    /// The scope as the file records it.
    recorded_scope: Option<String>,
    /// What `GET /snapshot` shows of each member, in the snapshot's order: the drift reads them as a slice.
    members: Vec<SnapshotMember>,
    /// Each member's spec, beside `members`.
    specs: Vec<RecordedSpec>,
    /// The [`shared::SnapshotSummary`] as JSON: `GET /snapshot` is a reference-count increment.
    summary_json: Bytes,
    /// Where each member is in `members` and `specs`, by name.
    positions: HashMap<String, usize>,
    /// The scope it was taken in, normalised ([`shared::normalized_scope`]); `None` for the whole host.
    scope: Option<String>,
}

impl Baseline {
    pub fn new(snapshot: Snapshot) -> Self {
        let (members, specs): (Vec<_>, Vec<_>) = snapshot
            .containers
            .into_iter()
            .map(|member| (member.summary, member.spec))
            .unzip();
        let summary_json = summary_json(snapshot.taken_at, snapshot.scope.as_deref(), &members);
        let positions = members
            .iter()
            .enumerate()
            .map(|(at, member)| (member.name.clone(), at))
            .collect();
        Self {
            scope: shared::normalized_scope(snapshot.scope.as_deref()),
            taken_at: snapshot.taken_at,
            recorded_scope: snapshot.scope,
            members,
            specs,
            summary_json,
            positions,
        }
    }

    /// The snapshot it was made from, to edit.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            format: FORMAT,
            taken_at: self.taken_at,
            scope: self.recorded_scope.clone(),
            containers: self
                .members
                .iter()
                .zip(&self.specs)
                .map(|(summary, spec)| Member {
                    summary: summary.clone(),
                    spec: spec.clone(),
                })
                .collect(),
        }
    }

    /// The scope it was taken in, normalised; `None` for the whole host.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub fn taken_at(&self) -> DateTime<Utc> {
        self.taken_at
    }

    /// How many containers it records.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members as `GET /snapshot` and the drift computation see them: no environment.
    pub fn members(&self) -> &[SnapshotMember] {
        &self.members
    }

    /// The JSON of the [`shared::SnapshotSummary`].
    pub fn summary_json(&self) -> Bytes {
        self.summary_json.clone()
    }

    /// Whether a container of that name is a member.
    pub fn contains(&self, name: &str) -> bool {
        self.positions.contains_key(name)
    }

    /// Every field but the image in which `container` differs from its member's spec ([`shared::spec_diff`]);
    /// empty when it is no member, or status-api has not inspected it yet.
    pub fn spec_changes(&self, container: &ContainerStatus) -> Vec<SpecChange> {
        match (self.positions.get(&container.name), &container.spec) {
            (Some(&at), Some(current)) => {
                shared::spec_diff::diff(self.specs[at].compared(), current)
            }
            _ => Vec::new(),
        }
    }

    /// The JSON of a member's recreation spec, a [`shared::ContainerSpec`] (with its environment: serve it
    /// only with the token).
    pub fn spec_json(&self, name: &str) -> Option<Bytes> {
        Some(self.specs[*self.positions.get(name)?].json())
    }
}

/// The JSON of the [`shared::SnapshotSummary`] of these members, written from them rather than from a copy.
fn summary_json(taken_at: DateTime<Utc>, scope: Option<&str>, members: &[SnapshotMember]) -> Bytes {
    /// `SnapshotSummary`, borrowed: the same fields, in the same order.
    #[derive(serde::Serialize)]
    struct Summary<'a> {
        taken_at: DateTime<Utc>,
        scope: Option<&'a str>,
        containers: &'a [SnapshotMember],
    }
    let summary = Summary {
        taken_at,
        scope,
        containers: members,
    };
    Bytes::from(serde_json::to_vec(&summary).expect("a snapshot summary always serialises to JSON"))
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

    /// Takes the first snapshot from `recorded`, the running containers the inventory's first re-list read
    /// ([`records`]), unless one exists: a first start reads each container once, not once for the view and
    /// once more for the snapshot.
    pub async fn keep_first(&self, recorded: Vec<Member>) -> Result<Arc<Baseline>, SnapshotError> {
        let _one_at_a_time = self.one_at_a_time.lock().await;
        if let Some(existing) = self.current() {
            return Ok(existing);
        }
        self.file.writable()?;
        self.keep(recorded).await
    }

    async fn take_and_keep(&self) -> Result<Arc<Baseline>, SnapshotError> {
        // Refused before the engine is asked: a read-only or locked state directory would waste the work.
        self.file.writable()?;
        let members = take(self.engine.as_ref(), &self.scope).await?;
        self.keep(members).await
    }

    /// Names the members' namespace owners, then writes the snapshot and publishes it.
    async fn keep(&self, mut members: Vec<Member>) -> Result<Arc<Baseline>, SnapshotError> {
        sort_by_name(&mut members);
        let outsiders = owner_names(self.engine.as_ref(), &unnamed_owners(&members)).await;
        name_owners(&mut members, &outsiders);
        tracing::info!(containers = members.len(), "snapshot taken");
        let snapshot = Snapshot {
            format: FORMAT,
            taken_at: Utc::now(),
            scope: self.scope.as_ref().map(ToString::to_string),
            containers: members,
        };
        self.file.save(&snapshot)?;
        tracing::info!(path = %self.file.path().display(), containers = snapshot.containers.len(), "baseline written");
        let baseline = Arc::new(Baseline::new(snapshot));
        self.current.send_replace(Some(baseline.clone()));
        Ok(baseline)
    }
}

/// Records the running containers in scope, inspecting each for its full configuration; each answer becomes
/// its member as soon as it arrives.
#[tracing::instrument(skip_all)]
async fn take(engine: &dyn EngineReader, scope: &Scope) -> Result<Vec<Member>, SnapshotError> {
    let ids = engine.list(scope, false).await?;
    let members = futures::stream::iter(ids)
        .map(|id| async move { engine.inspect_raw(&id).await })
        .buffer_unordered(INSPECT_CONCURRENCY)
        .try_fold(Vec::new(), |mut members, raw| {
            let spec = raw
                .filter(records)
                .and_then(|raw| read_inspect(raw, true).ok()?.1);
            members.extend(spec.as_ref().map(Member::new));
            futures::future::ready(Ok(members))
        })
        .await?;
    Ok(members)
}

/// Whether a snapshot records the container of this inspect answer (the engine's JSON): one that runs, as
/// `docker ps` lists them (running, paused or restarting, whatever the engine's word for it:
/// [`engine_state`]), unless it was started with `--rm` (`HostConfig.AutoRemove`): a one-shot the engine
/// removes when it exits, which as a member would be re-run (as a persistent container) forever.
pub fn records(raw: &serde_json::Value) -> bool {
    let state = &raw["State"];
    let flag = |name: &str| state[name].as_bool().unwrap_or(false);
    let flags = StateFlags {
        running: flag("Running"),
        paused: flag("Paused"),
        restarting: flag("Restarting"),
        dead: flag("Dead"),
    };
    let runs = matches!(
        engine_state(state["Status"].as_str().unwrap_or_default(), flags),
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
    );
    if !runs {
        return false;
    }
    if raw["HostConfig"]["AutoRemove"] == true {
        tracing::info!(
            container = raw["Name"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/'),
            "not recorded: started with --rm, so it is meant to go away"
        );
        return false;
    }
    true
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
        let summary: shared::SnapshotSummary =
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
        let spec: shared::ContainerSpec =
            serde_json::from_slice(&baseline.spec_json("app").expect("a member")).expect("a spec");
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

    #[tokio::test]
    async fn the_first_snapshot_from_recorded_members_is_named_written_and_kept_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = FakeEngine::new();
        let (vpn, proxy) = ("a".repeat(64), "c".repeat(64));
        engine.put(&proxy, "proxy", "running", &[("team", "b")]);
        let keeper = keeper(&engine, dir.path());
        let spec = |name: &str, id: &str, network_mode: &str| shared::ContainerSpec {
            name: name.into(),
            id: id.into(),
            image: "busybox:latest".into(),
            image_id: "sha256:0".into(),
            config: serde_json::json!({"Labels": {"team": "a"}, "Env": ["TOKEN=x"]}),
            host_config: serde_json::json!({"NetworkMode": network_mode}),
            networks: serde_json::json!({}),
            mounts: serde_json::Value::Null,
        };
        let recorded = vec![
            Member::new(&spec(
                "sidecar",
                &"d".repeat(64),
                &format!("container:{proxy}"),
            )),
            Member::new(&spec("vpn", &vpn, "bridge")),
            Member::new(&spec("app", &"b".repeat(64), &format!("container:{vpn}"))),
        ];

        let baseline = keeper.keep_first(recorded).await.expect("kept");

        let names: Vec<&str> = baseline.members().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["app", "sidecar", "vpn"], "sorted by name");
        let network = |name: &str| {
            baseline
                .members()
                .iter()
                .find(|m| m.name == name)
                .and_then(|m| m.shares.network.clone())
        };
        assert_eq!(network("app").as_deref(), Some("vpn"));
        assert_eq!(
            network("sidecar").as_deref(),
            Some("proxy"),
            "inspected to be named"
        );
        let on_disk = keeper.file().load().expect("loads").expect("written");
        assert_eq!(
            Baseline::new(on_disk).summary_json(),
            baseline.summary_json()
        );
        assert_eq!(
            engine.inspects(),
            1,
            "only the owner outside the members was inspected"
        );

        let again = keeper.keep_first(Vec::new()).await.expect("kept");
        assert!(Arc::ptr_eq(&again, &baseline), "a baseline in force stays");
    }

    #[tokio::test]
    async fn the_summary_s_json_is_the_snapshot_summary_s() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = FakeEngine::new();
        engine.put("b1", "web", "running", &[("team", "a")]);
        engine.put("b2", "api", "running", &[("team", "a"), ("tier", "front")]);
        let keeper = keeper(&engine, dir.path());

        let baseline = keeper.take_if_missing().await.expect("taken");

        let written = keeper.file().load().expect("loads").expect("written");
        assert_eq!(
            baseline.summary_json(),
            serde_json::to_vec(&written.summary()).expect("serialises")
        );
    }
}
