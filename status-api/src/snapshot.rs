//! The snapshot's format: the containers that ran when the baseline was taken, with everything needed to
//! recreate them, as `<state-dir>/snapshot.json` holds them. Only the format lives here and it imports nothing
//! of the crate: `state_dir` reads and writes the file (0600, replaced atomically), `baseline` puts the two
//! together and owns the baseline in force. A file that cannot be used is reported and left exactly as it is:
//! losing an operator's baseline silently is the worst thing we could do.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{ContainerSpec, SnapshotSummary};

/// The version of the file format this build writes, and the newest it reads.
pub const FORMAT: u32 = 1;
/// The file's name in the state directory.
pub const FILE_NAME: &str = "snapshot.json";

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

    /// Reads the file's content (`path` is only for the messages): its format first, then the rest.
    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<Self, FormatError> {
        let corrupt = |source| FormatError::Corrupt {
            path: path.to_path_buf(),
            source,
        };
        let header: Header = serde_json::from_slice(bytes).map_err(corrupt)?;
        if header.format > FORMAT {
            return Err(FormatError::Newer {
                path: path.to_path_buf(),
                found: header.format,
            });
        }
        if header.format != FORMAT {
            return Err(FormatError::UnknownFormat {
                path: path.to_path_buf(),
                found: header.format,
            });
        }
        let mut snapshot: Self = serde_json::from_slice(bytes).map_err(corrupt)?;
        // Files written before owners were recorded by name hold the owner's id: name the members among them.
        shared::namespaces::name_owners(&mut snapshot.containers, &Default::default());
        Ok(snapshot)
    }

    /// The file's content.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a snapshot always serialises to JSON")
    }
}

/// Why the content of a snapshot file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
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
                mounts: serde_json::json!([{"Type": "volume", "Name": "v1", "Destination": "/data"}]),
            }],
        }
    }

    #[test]
    fn a_file_written_before_mounts_were_recorded_still_reads() {
        let mut old = serde_json::to_value(sample()).expect("serialises");
        old["containers"][0]
            .as_object_mut()
            .expect("an object")
            .remove("mounts");
        let text = serde_json::to_vec(&old).expect("serialises");
        let read = Snapshot::from_json(std::path::Path::new(PATH), &text).expect("reads");
        assert_eq!(read.containers[0].mounts, serde_json::Value::Null);
        assert_eq!(read.containers[0].name, "web");
    }

    const PATH: &str = "/var/lib/status-api/snapshot.json";

    #[test]
    fn an_older_file_that_holds_an_owner_s_id_loads_with_its_name() {
        let mut snapshot = sample();
        let mut dependant = snapshot.containers[0].clone();
        dependant.name = "app".into();
        dependant.id = "d".repeat(64);
        dependant.host_config =
            serde_json::json!({"NetworkMode": format!("container:{}", "c".repeat(64))});
        snapshot.containers.insert(0, dependant);
        let read = Snapshot::from_json(Path::new(PATH), &snapshot.to_json()).expect("reads");
        assert_eq!(
            read.containers[0].host_config["NetworkMode"],
            "container:web"
        );
        assert_eq!(
            read.summary().containers[0].shares.network.as_deref(),
            Some("web")
        );
    }

    #[test]
    fn what_is_written_reads_back() {
        let snapshot = sample();
        let read = Snapshot::from_json(Path::new(PATH), &snapshot.to_json()).expect("reads");
        assert_eq!(read, snapshot);
    }

    #[test]
    fn a_corrupt_file_is_reported_with_how_to_recover() {
        let err = Snapshot::from_json(Path::new(PATH), b"{\"format\": 1, \"taken_at\": ")
            .expect_err("corrupt");
        let message = err.to_string();
        assert!(message.contains(PATH), "{message}");
        assert!(message.contains("move it aside"), "{message}");
    }

    #[test]
    fn a_newer_format_is_reported_as_newer_with_the_version_found_never_as_corrupt() {
        // A newer format may have changed every other field: only `format` is read before refusing.
        let newer = br#"{"format": 7, "written_by": "dockstate 9", "baseline": {}}"#;
        let err = Snapshot::from_json(Path::new(PATH), newer).expect_err("newer");
        assert!(matches!(err, FormatError::Newer { found: 7, .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("written by a newer dockstate (format 7, this build reads up to 1)"),
            "{message}"
        );
        assert!(!message.contains("not a valid"), "{message}");
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let mut snapshot = sample();
        snapshot.format = 0;
        assert!(matches!(
            Snapshot::from_json(Path::new(PATH), &snapshot.to_json()),
            Err(FormatError::UnknownFormat { found: 0, .. })
        ));
    }

    #[test]
    fn the_summary_has_no_environment() {
        let summary = serde_json::to_string(&sample().summary()).expect("json");
        assert!(!summary.contains("TOKEN"), "{summary}");
    }
}
