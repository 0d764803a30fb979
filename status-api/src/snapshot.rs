//! The snapshot file: the containers that ran when the baseline was taken, with everything needed to recreate
//! them, kept in `<state-dir>/snapshot.json` (mode 0600, replaced atomically). Only the format and the file
//! live here; the `baseline` module owns the baseline in force. A file that cannot be read is
//! reported and left exactly as it is: losing an operator's baseline silently is the worst thing we could do.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::runtime::engine::EngineError;
use shared::{ContainerSpec, SnapshotSummary};

/// The version of the file format this build writes and reads.
pub const FORMAT: u32 = 1;
const FILE_NAME: &str = "snapshot.json";

/// The snapshot as stored on disk. Holds environments: never served without the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// File format version, for future migrations.
    pub format: u32,
    pub taken_at: DateTime<Utc>,
    /// The scope it was taken in, as a selector string.
    pub scope: Option<String>,
    /// Sorted by name.
    pub containers: Vec<ContainerSpec>,
}

impl Snapshot {
    /// What `GET /snapshot` shows: names, ids, images, labels. Parses every member's labels: call it once
    /// per baseline (the `Baseline` in force keeps the result).
    pub fn summary(&self) -> SnapshotSummary {
        SnapshotSummary {
            taken_at: self.taken_at,
            scope: self.scope.clone(),
            containers: self.containers.iter().map(ContainerSpec::member).collect(),
        }
    }

    pub fn spec(&self, name: &str) -> Option<&ContainerSpec> {
        self.containers.iter().find(|spec| spec.name == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "cannot read the snapshot file {path}: {source}. Fix its permissions, or point --state-dir at the \
         directory that holds it"
    )]
    ReadFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the snapshot file {path} is not a valid dockstate snapshot ({source}). It has been left as it is. \
         To recover, restore it from a backup; or, to take a new baseline of what runs now, move it aside \
         (mv {path} {path}.bad) and start status-api again"
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the snapshot file {path} has format {found}, this status-api reads format {FORMAT}. Run a newer \
         status-api, or move the file aside to take a new baseline"
    )]
    UnknownFormat { path: PathBuf, found: u32 },
    #[error("cannot write the snapshot to {path}: {source}. Check that --state-dir is writable")]
    WriteFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("taking the snapshot failed: the Docker engine did not answer")]
    Docker(#[from] EngineError),
}

/// `<state-dir>/snapshot.json`.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    dir: PathBuf,
    path: PathBuf,
}

impl SnapshotFile {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.to_path_buf(),
            path: state_dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the state directory (mode 0700) if needed and proves it is writable, so a bad `--state-dir`
    /// stops start-up instead of failing the first snapshot minutes later.
    pub fn prepare(&self) -> Result<(), SnapshotError> {
        let write_failed = |source| SnapshotError::WriteFailed {
            path: self.dir.clone(),
            source,
        };
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir).map_err(write_failed)?;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(write_failed)?;
        }
        let probe = self.dir.join(".write-probe");
        fs::write(&probe, b"").map_err(write_failed)?;
        fs::remove_file(&probe).map_err(write_failed)
    }

    /// The stored snapshot; `None` when there is none yet (first start).
    pub fn load(&self) -> Result<Option<Snapshot>, SnapshotError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SnapshotError::ReadFailed {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        if snapshot.format != FORMAT {
            return Err(SnapshotError::UnknownFormat {
                path: self.path.clone(),
                found: snapshot.format,
            });
        }
        Ok(Some(snapshot))
    }

    /// Replaces the file atomically: a temporary file (0600) is written and fsynced, renamed over the old
    /// one, and the directory fsynced, so a crash leaves either the old snapshot or the new one, never half.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        let write_failed = |source| SnapshotError::WriteFailed {
            path: self.path.clone(),
            source,
        };
        let body = serde_json::to_vec_pretty(snapshot).map_err(|err| write_failed(err.into()))?;
        let temporary = self
            .dir
            .join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&body)?;
            file.sync_all()?;
            fs::rename(&temporary, &self.path)?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        result.map_err(write_failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            format: FORMAT,
            taken_at: Utc::now(),
            scope: Some("team=a".into()),
            containers: vec![ContainerSpec {
                name: "web".into(),
                id: "c".repeat(64),
                image: "busybox:latest".into(),
                image_id: "sha256:1".into(),
                config: serde_json::json!({"Env": ["TOKEN=x"]}),
                host_config: serde_json::json!({}),
                networks: serde_json::json!({}),
            }],
        }
    }

    #[test]
    fn saves_with_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SnapshotFile::new(&dir.path().join("state"));
        file.prepare().expect("prepare");
        assert_eq!(file.load().expect("loads"), None);
        let snapshot = sample();
        file.save(&snapshot).expect("saves");
        let mode = fs::metadata(file.path())
            .expect("exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(file.load().expect("loads"), Some(snapshot));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("state"))
            .expect("lists")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(FILE_NAME)]);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SnapshotFile::new(dir.path());
        fs::write(file.path(), b"{\"format\": 1, \"taken_at\": ").expect("writes");
        let err = file.load().expect_err("corrupt");
        let message = err.to_string();
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("move it aside"), "{message}");
        assert_eq!(
            fs::read(file.path()).expect("still there"),
            b"{\"format\": 1, \"taken_at\": "
        );
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SnapshotFile::new(dir.path());
        let mut snapshot = sample();
        snapshot.format = 99;
        fs::write(file.path(), serde_json::to_vec(&snapshot).expect("json")).expect("writes");
        assert!(matches!(
            file.load(),
            Err(SnapshotError::UnknownFormat { found: 99, .. })
        ));
    }

    #[test]
    fn the_summary_has_no_environment() {
        let summary = serde_json::to_string(&sample().summary()).expect("json");
        assert!(!summary.contains("TOKEN"), "{summary}");
    }
}
