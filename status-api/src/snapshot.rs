//! The snapshot file: the containers that ran when the baseline was taken, with everything needed to recreate
//! them, kept in `<state-dir>/snapshot.json` (mode 0600, replaced atomically). Only the format and the file
//! live here; the `baseline` module owns the baseline in force. A file that cannot be read is
//! reported and left exactly as it is: losing an operator's baseline silently is the worst thing we could do.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::runtime::engine::EngineError;
use shared::{ContainerSpec, SnapshotSummary};

use crate::state_dir::{effective_uid, trust, StateDir, StateDirError};

/// The version of the file format this build writes, and the newest it reads.
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

/// What is read first: a newer format may have changed everything else, and must be told apart from a
/// damaged file.
#[derive(Deserialize)]
struct Header {
    format: u32,
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
        "the snapshot file {path} is a symbolic link: status-api reads only a regular file it owns. Replace \
         the link with the file it points to (cp --remove-destination \"$(readlink -f {path})\" {path})"
    )]
    Symlink { path: PathBuf },
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
        "the snapshot file {path} was written by a newer dockstate (format {found}, this build reads up to \
         {FORMAT}). It has been left as it is: run a status-api at least as new as the one that wrote it"
    )]
    Newer { path: PathBuf, found: u32 },
    #[error(
        "the snapshot file {path} has format {found}, which no dockstate writes (this build reads 1 to \
         {FORMAT}). It has been left as it is: restore it from a backup, or move it aside (mv {path} \
         {path}.bad) to take a new baseline"
    )]
    UnknownFormat { path: PathBuf, found: u32 },
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

    /// The directory it lives in.
    pub fn dir(&self) -> &Arc<StateDir> {
        &self.dir
    }

    /// The stored snapshot; `None` when there is none yet (first start). Reads only: never needs write
    /// access. The file must be a regular file (not a link) owned by us or root and writable by nobody else.
    pub fn load(&self) -> Result<Option<Snapshot>, SnapshotError> {
        let read_failed = |source| SnapshotError::ReadFailed {
            path: self.path.clone(),
            source,
        };
        let mut file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
        {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
                return Err(SnapshotError::Symlink {
                    path: self.path.clone(),
                })
            }
            Err(source) => return Err(read_failed(source)),
        };
        // The checks are made on the file that was opened, so it cannot be swapped in between.
        let meta = file.metadata().map_err(read_failed)?;
        trust(&self.path, meta.uid(), meta.mode(), effective_uid())?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(read_failed)?;
        let corrupt = |source| SnapshotError::Corrupt {
            path: self.path.clone(),
            source,
        };
        let header: Header = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if header.format > FORMAT {
            return Err(SnapshotError::Newer {
                path: self.path.clone(),
                found: header.format,
            });
        }
        if header.format != FORMAT {
            return Err(SnapshotError::UnknownFormat {
                path: self.path.clone(),
                found: header.format,
            });
        }
        Ok(Some(serde_json::from_slice(&bytes).map_err(corrupt)?))
    }

    /// Whether a snapshot could be written now; the error says why not (read-only, or another status-api
    /// holds the lock).
    pub fn writable(&self) -> Result<(), SnapshotError> {
        Ok(self.dir.writable()?)
    }

    /// Replaces the file atomically ([`StateDir::replace`]): a crash leaves the old snapshot or the new one.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        let body =
            serde_json::to_vec_pretty(snapshot).expect("a snapshot always serialises to JSON");
        Ok(self.dir.replace(FILE_NAME, &body)?)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::state_dir::Access;

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

    /// A snapshot file in `dir`, its directory locked by us.
    fn file_in(dir: &Path) -> SnapshotFile {
        let state = StateDir::prepare(dir).expect("a trusted state dir");
        assert!(matches!(
            state.try_lock().expect("locks"),
            Access::Held { .. }
        ));
        SnapshotFile::new(Arc::new(state))
    }

    #[test]
    fn saves_with_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_in(&dir.path().join("state"));
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
        let mut leftovers: Vec<_> = fs::read_dir(dir.path().join("state"))
            .expect("lists")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        leftovers.sort();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from(".lock"), FILE_NAME.into()]
        );
    }

    #[test]
    fn a_corrupt_file_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_in(dir.path());
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
    fn a_newer_format_is_reported_as_newer_with_the_version_found_never_as_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_in(dir.path());
        // A newer format may have changed every other field: only `format` is read before refusing.
        let newer = br#"{"format": 7, "written_by": "dockstate 9", "baseline": {}}"#;
        fs::write(file.path(), newer).expect("writes");
        let err = file.load().expect_err("newer");
        assert!(
            matches!(err, SnapshotError::Newer { found: 7, .. }),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("written by a newer dockstate (format 7, this build reads up to 1)"),
            "{message}"
        );
        assert!(!message.contains("not a valid"), "{message}");
        assert_eq!(fs::read(file.path()).expect("still there"), newer);
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_in(dir.path());
        let mut snapshot = sample();
        snapshot.format = 0;
        fs::write(file.path(), serde_json::to_vec(&snapshot).expect("json")).expect("writes");
        assert!(matches!(
            file.load(),
            Err(SnapshotError::UnknownFormat { found: 0, .. })
        ));
    }

    #[test]
    fn a_linked_or_group_writable_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_in(dir.path());
        file.save(&sample()).expect("saves");
        fs::set_permissions(file.path(), fs::Permissions::from_mode(0o660)).expect("chmod");
        let message = file.load().expect_err("group-writable").to_string();
        assert!(
            message.contains("writable by its group (mode 0660)"),
            "{message}"
        );
        assert!(
            message.contains(&format!("chmod go-w {}", file.path().display())),
            "{message}"
        );

        let elsewhere = dir.path().join("elsewhere.json");
        fs::rename(file.path(), &elsewhere).expect("moves");
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink(&elsewhere, file.path()).expect("links");
        let err = file.load().expect_err("a link");
        assert!(matches!(err, SnapshotError::Symlink { .. }), "{err}");
    }

    #[test]
    fn the_summary_has_no_environment() {
        let summary = serde_json::to_string(&sample().summary()).expect("json");
        assert!(!summary.contains("TOKEN"), "{summary}");
    }
}
