//! The snapshot's format: the containers that ran when the baseline was taken, with everything needed to
//! recreate them, as `<state-dir>/snapshot.json` holds them. Only the format lives here and it imports nothing
//! of the crate: `state_dir` reads and writes the file (0600, replaced atomically), `baseline` puts the two
//! together and owns the baseline in force. A file that cannot be used is reported and left exactly as it is:
//! losing an operator's baseline silently is the worst thing we could do.
//!
//! In memory each [`Member`] keeps its recreation spec as the compact JSON it is served as, and what readers
//! derive from it, made while it was parsed — not the spec's `serde_json::Value` trees, which cost about
//! twice the text (~4.8 KB a member) for as long as the baseline is in force, to serve a recreate now and
//! then. The file is read one member at a time, and written from those texts, byte for byte as before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use shared::{ContainerSpec, SnapshotMember, SnapshotSummary, SpecSummary};

mod pretty;

/// The version of the file format this build writes, and the newest it reads.
pub const FORMAT: u32 = 1;
/// The file's name in the state directory.
pub const FILE_NAME: &str = "snapshot.json";

/// The snapshot as stored on disk. Holds environments: never served without the token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Snapshot {
    /// File format version, for future migrations.
    pub format: u32,
    pub taken_at: DateTime<Utc>,
    /// The scope it was taken in, as a selector string.
    pub scope: Option<String>,
    /// Sorted by name.
    pub containers: Vec<Member>,
}

/// One member of a snapshot, made from its [`ContainerSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// What `GET /snapshot` shows of it: no environment.
    pub summary: SnapshotMember,
    pub spec: RecordedSpec,
}

/// A member's spec, as kept for as long as its baseline is in force.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSpec {
    compared: Arc<SpecSummary>,
    /// The [`ContainerSpec`]'s compact JSON: what `GET /snapshot/containers/{name}` answers, what the file
    /// holds (re-indented), and what a caller that needs the fields parses.
    json: Bytes,
}

impl Member {
    /// Its summary, its compared fields and its JSON, all made from `spec` now.
    pub fn new(spec: &ContainerSpec) -> Self {
        let json = serde_json::to_vec(spec).expect("a container spec always serialises to JSON");
        let compared = SpecSummary::from_engine(
            &spec.id,
            &spec.config,
            &spec.host_config,
            &spec.networks,
            &spec.mounts,
        );
        Self {
            summary: spec.member(),
            spec: RecordedSpec {
                compared: Arc::new(compared),
                json: Bytes::from(json.into_boxed_slice()),
            },
        }
    }

    pub fn name(&self) -> &str {
        &self.summary.name
    }

    /// Whether it names a namespace owner by something that may be an id (hex, at least 12 characters):
    /// only such a member's spec is parsed again to name its owners.
    fn may_name_an_owner_by_id(&self) -> bool {
        self.summary.shares.iter().any(|(_, owner)| {
            owner.len() >= 12 && owner.bytes().all(|byte| byte.is_ascii_hexdigit())
        })
    }
}

impl RecordedSpec {
    /// What of the spec the `changed` drift compares.
    pub fn compared(&self) -> &SpecSummary {
        &self.compared
    }

    /// The spec's compact JSON (with its environment).
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }

    /// The spec, parsed from its JSON: for the rare caller that needs its fields.
    pub fn parse(&self) -> ContainerSpec {
        serde_json::from_slice(&self.json).expect("a member's spec is the JSON of a container spec")
    }
}

/// A member is made as soon as its spec is read, so reading a file (whose list serde reads one element at a
/// time) never holds more than one spec's `Value` trees.
impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ContainerSpec::deserialize(deserializer).map(|spec| Self::new(&spec))
    }
}

/// Sorts members by name, as a snapshot lists them.
pub fn sort_by_name(members: &mut [Member]) {
    members.sort_by(|a, b| a.name().cmp(b.name()));
}

/// The ids of the namespace owners the members name by id and that are not members: the owners a snapshot
/// must look up to name them ([`shared::namespaces::unnamed_owners`], over the members that name one).
pub fn unnamed_owners(members: &[Member]) -> Vec<String> {
    let joined: Vec<ContainerSpec> = members
        .iter()
        .filter(|member| member.may_name_an_owner_by_id())
        .map(|member| member.spec.parse())
        .collect();
    let mut ids = shared::namespaces::unnamed_owners(&joined);
    ids.retain(|id| !members.iter().any(|member| member.summary.id == *id));
    ids
}

/// Names every namespace owner the members hold by id, from the members themselves and from `outsiders` (id
/// → name) ([`shared::namespaces::name_owners`]). Only the members that may hold one are parsed again.
pub fn name_owners(members: &mut [Member], outsiders: &HashMap<String, String>) {
    if !members.iter().any(Member::may_name_an_owner_by_id) {
        return;
    }
    let mut names = outsiders.clone();
    names.extend(
        members
            .iter()
            .map(|member| (member.summary.id.clone(), member.summary.name.clone())),
    );
    for member in members
        .iter_mut()
        .filter(|member| member.may_name_an_owner_by_id())
    {
        let mut spec = [member.spec.parse()];
        shared::namespaces::name_owners(&mut spec, &names);
        *member = Member::new(&spec[0]);
    }
}

/// What is read first: a newer format may have changed everything else, and must be told apart from a
/// damaged file.
#[derive(Deserialize)]
struct Header {
    format: u32,
}

impl Snapshot {
    /// What `GET /snapshot` shows: names, ids, images, labels.
    pub fn summary(&self) -> SnapshotSummary {
        SnapshotSummary {
            taken_at: self.taken_at,
            scope: self.scope.clone(),
            containers: self
                .containers
                .iter()
                .map(|member| member.summary.clone())
                .collect(),
        }
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
        name_owners(&mut snapshot.containers, &HashMap::new());
        Ok(snapshot)
    }

    /// The file's content: the JSON of a snapshot of [`ContainerSpec`]s, pretty-printed as `serde_json` does,
    /// each member re-indented from its compact text rather than parsed again.
    pub fn to_json(&self) -> Vec<u8> {
        let specs = &self.containers;
        let mut out = Vec::with_capacity(
            256 + specs
                .iter()
                .map(|member| member.spec.json.len() * 2)
                .sum::<usize>(),
        );
        out.extend_from_slice(b"{\n  \"format\": ");
        out.extend_from_slice(&text(&self.format));
        out.extend_from_slice(b",\n  \"taken_at\": ");
        out.extend_from_slice(&text(&self.taken_at));
        out.extend_from_slice(b",\n  \"scope\": ");
        out.extend_from_slice(&text(&self.scope));
        out.extend_from_slice(b",\n  \"containers\": ");
        if specs.is_empty() {
            out.extend_from_slice(b"[]");
        } else {
            out.push(b'[');
            for (at, member) in specs.iter().enumerate() {
                out.extend_from_slice(if at == 0 { b"\n    " } else { b",\n    " });
                pretty::reindent(&member.spec.json, 2, &mut out);
            }
            out.extend_from_slice(b"\n  ]");
        }
        out.extend_from_slice(b"\n}");
        out
    }
}

/// The compact JSON of one of the few scalar fields [`Snapshot::to_json`] writes itself.
fn text<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("a snapshot's fields always serialise to JSON")
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
    use serde::Serialize;

    use super::*;

    /// The file as `serde_json` writes a snapshot of `Value` trees: what every earlier build wrote.
    #[derive(Serialize)]
    struct Written {
        format: u32,
        taken_at: DateTime<Utc>,
        scope: Option<String>,
        containers: Vec<ContainerSpec>,
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            id: "c".repeat(64),
            image: "busybox:latest".into(),
            image_id: "sha256:1".into(),
            config: serde_json::json!({"Env": ["TOKEN=x", "QUOTED=\"a, b\": {c}"], "Labels": {"team": "a"},
                                       "Cmd": [], "Healthcheck": {"Test": ["CMD", "true"], "Retries": 2}}),
            host_config: serde_json::json!({"Memory": 67_108_864, "Tmpfs": {}, "Dns": null}),
            networks: serde_json::json!({"front": {"Aliases": ["web"], "IPAMConfig": {}}}),
            mounts: serde_json::json!([{"Type": "volume", "Name": "v1", "Destination": "/data"}]),
        }
    }

    fn written(specs: Vec<ContainerSpec>) -> Written {
        Written {
            format: FORMAT,
            taken_at: Utc::now(),
            scope: Some("team=a".into()),
            containers: specs,
        }
    }

    fn read(text: &[u8]) -> Snapshot {
        Snapshot::from_json(Path::new(PATH), text).expect("reads")
    }

    #[test]
    fn a_file_written_before_mounts_were_recorded_still_reads() {
        let mut old = serde_json::to_value(written(vec![spec()])).expect("serialises");
        old["containers"][0]
            .as_object_mut()
            .expect("an object")
            .remove("mounts");
        let read = read(&serde_json::to_vec(&old).expect("serialises"));
        assert_eq!(
            read.containers[0].spec.parse().mounts,
            serde_json::Value::Null
        );
        assert_eq!(read.containers[0].name(), "web");
    }

    const PATH: &str = "/var/lib/status-api/snapshot.json";

    #[test]
    fn an_older_file_that_holds_an_owner_s_id_loads_with_its_name() {
        let mut dependant = spec();
        dependant.name = "app".into();
        dependant.id = "d".repeat(64);
        dependant.host_config =
            serde_json::json!({"NetworkMode": format!("container:{}", "c".repeat(64))});
        let file = written(vec![dependant, spec()]);
        let read = read(&serde_json::to_vec_pretty(&file).expect("serialises"));
        assert_eq!(
            read.containers[0].spec.parse().host_config["NetworkMode"],
            "container:web"
        );
        assert_eq!(
            read.summary().containers[0].shares.network.as_deref(),
            Some("web")
        );
    }

    #[test]
    fn what_is_written_reads_back_and_is_what_earlier_builds_wrote_byte_for_byte() {
        let mut other = spec();
        other.name = "zeta".into();
        other.mounts = serde_json::Value::Null;
        for file in [written(vec![spec(), other]), written(Vec::new())] {
            let before = serde_json::to_vec_pretty(&file).expect("serialises");
            let snapshot = read(&before);
            assert_eq!(
                String::from_utf8(snapshot.to_json()),
                String::from_utf8(before)
            );
            assert_eq!(read(&snapshot.to_json()), snapshot);
        }
    }

    #[test]
    fn a_member_serves_the_json_of_its_spec_and_derives_its_summary_from_it() {
        let member = Member::new(&spec());
        assert_eq!(
            member.spec.json(),
            serde_json::to_vec(&spec()).expect("serialises")
        );
        assert_eq!(member.spec.parse(), spec());
        assert_eq!(member.summary, spec().member());
        assert_eq!(member.summary.labels["team"], "a");
    }

    #[test]
    fn a_corrupt_file_is_reported_with_how_to_recover() {
        let err = Snapshot::from_json(Path::new(PATH), b"{\"format\": 1, \"taken_at\": ")
            .expect_err("corrupt");
        let message = err.to_string();
        assert!(message.contains(PATH), "{message}");
        assert!(message.contains("move it aside"), "{message}");
        let mut damaged = serde_json::to_value(written(vec![spec()])).expect("serialises");
        damaged["containers"][0]["config"] = serde_json::json!("not an object");
        damaged["containers"][0]["name"] = serde_json::json!(7);
        let err = Snapshot::from_json(Path::new(PATH), damaged.to_string().as_bytes())
            .expect_err("a member that is no spec");
        assert!(matches!(err, FormatError::Corrupt { .. }), "{err}");
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
        let mut file = written(vec![spec()]);
        file.format = 0;
        assert!(matches!(
            Snapshot::from_json(
                Path::new(PATH),
                &serde_json::to_vec(&file).expect("serialises")
            ),
            Err(FormatError::UnknownFormat { found: 0, .. })
        ));
    }

    #[test]
    fn the_summary_has_no_environment() {
        let snapshot = read(&serde_json::to_vec(&written(vec![spec()])).expect("serialises"));
        let summary = serde_json::to_string(&snapshot.summary()).expect("json");
        assert!(!summary.contains("TOKEN"), "{summary}");
    }
}
