//! The synthetic engine's containers: what they are (name, image, labels, a healthcheck or not), what state
//! each is in, and the Docker API's JSON for them — the list entry, the inspect, and the event a change makes.
//! Pure: the time of every change is given, so the inspect after an event says exactly what the event said.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The label every synthetic container carries with value `1` when the bench measures its events' lag
/// through a filtered `/status` (see [`is_probe`]).
pub const PROBE_LABEL: &str = "dockstate.bench.probe";

/// One container in ten is a probe: enough samples for a p99, a `/status` answer a tenth the size.
pub fn is_probe(index: usize) -> bool {
    index.is_multiple_of(10)
}

/// The name of container `index`.
pub fn name_of(index: usize) -> String {
    format!("syn-{index:05}")
}

/// One container in four has a healthcheck, so `health_status` events are part of the mix.
fn has_healthcheck(index: usize) -> bool {
    index % 4 == 1
}

/// The images the containers run, by index: a few, as on a real host.
const IMAGES: [&str; 4] = [
    "synthetic/web:1",
    "synthetic/worker:1",
    "synthetic/cache:7",
    "synthetic/db:16",
];

/// A container's health, as its inspect and its `health_status` events say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
        }
    }
}

/// Whether it runs, with the engine times (nanoseconds since the epoch) its inspect reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// `finished_ns`: the end of the run before, which Docker goes on reporting.
    Running {
        started_ns: i64,
        finished_ns: Option<i64>,
    },
    Exited {
        started_ns: i64,
        finished_ns: i64,
        exit_code: i64,
    },
}

/// One synthetic container.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub id: String,
    pub name: String,
    pub image: &'static str,
    pub labels: BTreeMap<String, String>,
    pub run: Run,
    /// `None`: no healthcheck.
    pub health: Option<Health>,
}

/// What the next event of a container is, chosen from its state: an exited one starts, a running one
/// whose health check is still starting turns healthy, any other running one dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Start,
    Healthy,
    Die { exit_code: i64 },
}

/// All the containers of one synthetic host.
#[derive(Debug)]
pub struct Fleet {
    containers: Vec<Synthetic>,
    /// Id and name → index.
    index: HashMap<String, usize>,
    created_ns: i64,
}

/// The image id an image reference names (stable, so no `stale_image` drift shows).
pub fn image_id(reference: &str) -> String {
    // FNV-1a, spread over 64 hex digits: an id that looks like one and is the same every run.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in reference.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "sha256:{hash:016x}{:016x}{hash:016x}{:016x}",
        !hash,
        hash.rotate_left(17)
    )
}

/// The engine's way of writing a time: RFC 3339 with nanoseconds; "never" is year 1.
fn engine_time(ns: Option<i64>) -> String {
    match ns {
        Some(ns) => {
            DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Nanos, true)
        }
        None => "0001-01-01T00:00:00Z".to_owned(),
    }
}

impl Fleet {
    /// `count` containers, all running since `now_ns`, each labelled `scope` (KEY=VALUE) and, when a probe,
    /// [`PROBE_LABEL`]`=1`.
    pub fn new(count: usize, scope: (&str, &str), now_ns: i64) -> Self {
        let containers: Vec<Synthetic> = (0..count)
            .map(|index| {
                let mut labels = BTreeMap::from([
                    (scope.0.to_owned(), scope.1.to_owned()),
                    (
                        "com.example.tier".to_owned(),
                        ["web", "worker", "cache", "db"][index % 4].to_owned(),
                    ),
                ]);
                if is_probe(index) {
                    labels.insert(PROBE_LABEL.to_owned(), "1".to_owned());
                }
                Synthetic {
                    id: format!("5e{index:062x}"),
                    name: name_of(index),
                    image: IMAGES[index % IMAGES.len()],
                    labels,
                    run: Run::Running {
                        started_ns: now_ns,
                        finished_ns: None,
                    },
                    health: has_healthcheck(index).then_some(Health::Healthy),
                }
            })
            .collect();
        let mut index = HashMap::with_capacity(count * 2);
        for (at, container) in containers.iter().enumerate() {
            index.insert(container.id.clone(), at);
            index.insert(container.name.clone(), at);
        }
        Self {
            containers,
            index,
            created_ns: now_ns - 60_000_000_000,
        }
    }

    pub fn len(&self) -> usize {
        self.containers.len()
    }

    /// The index of the container `key` (its id or its name) names.
    pub fn find(&self, key: &str) -> Option<usize> {
        self.index.get(key.trim_start_matches('/')).copied()
    }

    #[cfg(test)]
    pub fn get(&self, index: usize) -> &Synthetic {
        &self.containers[index]
    }

    /// Whether an image reference is one the containers run.
    pub fn knows_image(reference: &str) -> bool {
        IMAGES.contains(&reference) || IMAGES.iter().any(|image| image_id(image) == reference)
    }

    /// The next change of container `index` (see [`Change`]).
    pub fn next_change(&self, index: usize) -> Change {
        let container = &self.containers[index];
        match (container.run, container.health) {
            (Run::Exited { .. }, _) => Change::Start,
            (Run::Running { .. }, Some(Health::Starting)) => Change::Healthy,
            // Exit codes as crashes and kills give them.
            (Run::Running { .. }, _) => Change::Die {
                exit_code: [137, 1, 143][index % 3],
            },
        }
    }

    /// Applies `change` to container `index` at `at_ns` and answers the event the engine sends for it.
    pub fn apply(&mut self, index: usize, change: Change, at_ns: i64) -> Event {
        let container = &mut self.containers[index];
        let action = match change {
            Change::Start => {
                let finished_ns = match container.run {
                    Run::Running { finished_ns, .. } => finished_ns,
                    Run::Exited { finished_ns, .. } => Some(finished_ns),
                };
                container.run = Run::Running {
                    started_ns: at_ns,
                    finished_ns,
                };
                if container.health.is_some() {
                    container.health = Some(Health::Starting);
                }
                "start".to_owned()
            }
            Change::Healthy => {
                container.health = Some(Health::Healthy);
                "health_status: healthy".to_owned()
            }
            Change::Die { exit_code } => {
                let started_ns = match container.run {
                    Run::Running { started_ns, .. } | Run::Exited { started_ns, .. } => started_ns,
                };
                container.run = Run::Exited {
                    started_ns,
                    finished_ns: at_ns,
                    exit_code,
                };
                "die".to_owned()
            }
        };
        let mut attributes: BTreeMap<String, String> = container.labels.clone();
        attributes.insert("image".to_owned(), container.image.to_owned());
        attributes.insert("name".to_owned(), container.name.clone());
        if let Change::Die { exit_code } = change {
            attributes.insert("exitCode".to_owned(), exit_code.to_string());
        }
        Event {
            id: container.id.clone(),
            image: container.image,
            action,
            attributes,
            time_ns: at_ns,
        }
    }

    /// Whether container `index` carries every label of `selectors` (`KEY` or `KEY=VALUE`).
    pub fn has_labels(&self, index: usize, selectors: &[String]) -> bool {
        selectors
            .iter()
            .all(|selector| label_matches(&self.containers[index].labels, selector))
    }

    /// `GET /containers/json`: the running ones, or all with `all`, carrying every label of `labels`.
    pub fn list_json(&self, all: bool, labels: &[String]) -> Value {
        let entries = (0..self.containers.len())
            .filter(|&index| all || matches!(self.containers[index].run, Run::Running { .. }))
            .filter(|&index| self.has_labels(index, labels))
            .map(|index| self.list_entry(index))
            .collect();
        Value::Array(entries)
    }

    fn list_entry(&self, index: usize) -> Value {
        let container = &self.containers[index];
        let (state, status) = match container.run {
            Run::Running { .. } => ("running", "Up".to_owned()),
            Run::Exited { exit_code, .. } => ("exited", format!("Exited ({exit_code})")),
        };
        json!({
            "Id": container.id,
            "Names": [format!("/{}", container.name)],
            "Image": container.image,
            "ImageID": image_id(container.image),
            "Command": "/serve",
            "Created": self.created_ns / 1_000_000_000,
            "State": state,
            "Status": status,
            "Labels": container.labels,
            "Ports": [],
            "HostConfig": {"NetworkMode": "bridge"},
            "Mounts": [],
        })
    }

    /// `GET /containers/{id}/json`, in the shape Docker 20.10 (API 1.41) writes.
    pub fn inspect_json(&self, index: usize) -> Value {
        let container = &self.containers[index];
        let (running, started_ns, finished_ns, exit_code) = match container.run {
            Run::Running {
                started_ns,
                finished_ns,
            } => (true, Some(started_ns), finished_ns, 0),
            Run::Exited {
                started_ns,
                finished_ns,
                exit_code,
            } => (false, Some(started_ns), Some(finished_ns), exit_code),
        };
        let mut state = json!({
            "Status": if running { "running" } else { "exited" },
            "Running": running, "Paused": false, "Restarting": false, "OOMKilled": false, "Dead": false,
            "Pid": if running { 1000 + index } else { 0 },
            "ExitCode": exit_code, "Error": "",
            "StartedAt": engine_time(started_ns),
            "FinishedAt": engine_time(finished_ns),
        });
        let mut config = json!({
            "Hostname": &container.id[..12], "User": "65534", "Env": ["PATH=/bin"], "Cmd": ["/serve"],
            "Image": container.image, "Labels": container.labels, "WorkingDir": "", "Entrypoint": null,
        });
        if let Some(health) = container.health {
            state["Health"] = json!({"Status": health.as_str(), "FailingStreak": 0, "Log": []});
            config["Healthcheck"] =
                json!({"Test": ["CMD", "/serve", "-check"], "Interval": 1_000_000_000_i64});
        }
        json!({
            "Id": container.id,
            "Created": engine_time(Some(self.created_ns)),
            "Path": "/serve", "Args": [],
            "State": state,
            "Image": image_id(container.image),
            "Name": format!("/{}", container.name),
            "RestartCount": 0,
            "Driver": "overlay2", "Platform": "linux",
            "HostConfig": {
                "NetworkMode": "bridge", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                "IpcMode": "private", "PidMode": "", "Memory": 0, "PortBindings": {},
            },
            "Mounts": [],
            "Config": config,
            "NetworkSettings": {"Networks": {"bridge": {
                "IPAMConfig": null, "Aliases": null, "NetworkID": "b".repeat(64),
                "IPAddress": format!("172.17.{}.{}", (index / 250) % 250, index % 250 + 2),
            }}},
        })
    }
}

/// Whether `labels` satisfy one selector, `KEY` or `KEY=VALUE`, as the engine's `label` filter reads it.
pub fn label_matches(labels: &BTreeMap<String, String>, selector: &str) -> bool {
    match selector.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|have| have == value),
        None => labels.contains_key(selector),
    }
}

/// One container event, as the engine streams it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub image: &'static str,
    /// `start`, `die`, `health_status: healthy`.
    pub action: String,
    /// The container's labels, its name and image (and `exitCode` for `die`), as Docker sends them.
    pub attributes: BTreeMap<String, String>,
    pub time_ns: i64,
}

impl Event {
    /// The action's name without its detail: `health_status` for `health_status: healthy`.
    pub fn name(&self) -> &str {
        self.action.split(':').next().unwrap_or_default()
    }

    /// The engine's JSON line for it.
    pub fn to_json(&self) -> Value {
        json!({
            "status": self.action, "id": self.id, "from": self.image,
            "Type": "container", "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_ns / 1_000_000_000,
            "timeNano": self.time_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: (&str, &str) = ("dockstate.test", "t1");

    #[test]
    fn containers_are_named_labelled_and_found_by_id_or_name() {
        let fleet = Fleet::new(40, SCOPE, 1_000);
        assert_eq!(fleet.len(), 40);
        let at = fleet.find("syn-00010").expect("by name");
        assert_eq!(fleet.find(&fleet.get(at).id), Some(at));
        assert_eq!(fleet.find("/syn-00010"), Some(at));
        assert_eq!(fleet.find("nope"), None);
        assert!(fleet.has_labels(at, &["dockstate.test=t1".into(), PROBE_LABEL.into()]));
        assert!(!fleet.has_labels(at + 1, &[PROBE_LABEL.into()]));
        assert!(!fleet.has_labels(at, &["dockstate.test=t2".into()]));
        assert_eq!(fleet.get(at).id.len(), 64);
    }

    #[test]
    fn the_list_honours_all_and_labels() {
        let mut fleet = Fleet::new(20, SCOPE, 1_000);
        fleet.apply(3, Change::Die { exit_code: 1 }, 2_000);
        let ids = |value: Value| value.as_array().map_or(0, Vec::len);
        assert_eq!(ids(fleet.list_json(true, &[])), 20);
        assert_eq!(ids(fleet.list_json(false, &[])), 19);
        assert_eq!(ids(fleet.list_json(true, &[format!("{PROBE_LABEL}=1")])), 2);
        assert_eq!(
            ids(fleet.list_json(true, &["dockstate.test=other".into()])),
            0
        );
        let listed = fleet.list_json(true, &[]);
        assert_eq!(listed[3]["State"], "exited");
        assert_eq!(listed[3]["Status"], "Exited (1)");
    }

    #[test]
    fn each_change_follows_from_the_state_and_the_inspect_says_what_the_event_said() {
        let mut fleet = Fleet::new(8, SCOPE, 1_000);
        // Index 1 has a healthcheck: die, start (health starting), healthy, die again.
        assert_eq!(fleet.next_change(1), Change::Die { exit_code: 1 });
        let died = fleet.apply(1, Change::Die { exit_code: 1 }, 1_500_000_000_123);
        assert_eq!(died.name(), "die");
        assert_eq!(died.attributes["exitCode"], "1");
        let inspect = fleet.inspect_json(1);
        assert_eq!(inspect["State"]["Status"], "exited");
        assert_eq!(inspect["State"]["ExitCode"], 1);
        assert_eq!(
            inspect["State"]["FinishedAt"],
            "1970-01-01T00:25:00.000000123Z"
        );

        assert_eq!(fleet.next_change(1), Change::Start);
        let started = fleet.apply(1, Change::Start, 1_600_000_000_000);
        assert_eq!(started.to_json()["timeNano"], 1_600_000_000_000_i64);
        let inspect = fleet.inspect_json(1);
        assert_eq!(inspect["State"]["Running"], true);
        assert_eq!(inspect["State"]["Health"]["Status"], "starting");
        assert_eq!(
            inspect["State"]["StartedAt"],
            "1970-01-01T00:26:40.000000000Z"
        );
        // The exit before the start is still the last one the engine knows.
        assert_eq!(
            inspect["State"]["FinishedAt"],
            "1970-01-01T00:25:00.000000123Z"
        );

        assert_eq!(fleet.next_change(1), Change::Healthy);
        let healthy = fleet.apply(1, Change::Healthy, 1_700_000_000_000);
        assert_eq!(healthy.name(), "health_status");
        assert_eq!(healthy.to_json()["Action"], "health_status: healthy");
        assert_eq!(
            fleet.inspect_json(1)["State"]["Health"]["Status"],
            "healthy"
        );
        assert!(matches!(fleet.next_change(1), Change::Die { .. }));

        // Index 2 has none: die, start, die.
        fleet.apply(2, Change::Die { exit_code: 137 }, 2_000);
        fleet.apply(2, Change::Start, 3_000);
        assert!(fleet.inspect_json(2)["State"].get("Health").is_none());
        assert!(matches!(fleet.next_change(2), Change::Die { .. }));
    }

    #[test]
    fn the_event_json_is_what_docker_streams() {
        let mut fleet = Fleet::new(1, SCOPE, 1_000);
        let event = fleet
            .apply(0, Change::Die { exit_code: 137 }, 1_765_000_000_123_456_789)
            .to_json();
        assert_eq!(event["Type"], "container");
        assert_eq!(event["Action"], "die");
        assert_eq!(event["status"], "die");
        assert_eq!(event["time"], 1_765_000_000_i64);
        assert_eq!(event["Actor"]["Attributes"]["name"], "syn-00000");
        assert_eq!(event["Actor"]["Attributes"]["dockstate.test"], "t1");
        assert_eq!(event["Actor"]["ID"], event["id"]);
        // bollard's model reads it.
        let parsed: bollard::models::EventMessage =
            serde_json::from_value(event).expect("an event");
        assert_eq!(parsed.time_nano, Some(1_765_000_000_123_456_789));
    }

    #[test]
    fn the_inspect_reads_as_a_docker_inspect() {
        let fleet = Fleet::new(3, SCOPE, 1_765_000_000_000_000_000);
        let inspect: bollard::models::ContainerInspectResponse =
            serde_json::from_value(fleet.inspect_json(1)).expect("an inspect");
        assert_eq!(inspect.name.as_deref(), Some("/syn-00001"));
        assert_eq!(inspect.image, Some(image_id("synthetic/worker:1")));
        assert!(Fleet::knows_image("synthetic/worker:1"));
        assert!(!Fleet::knows_image("busybox"));
    }

    #[test]
    fn image_ids_are_stable_and_distinct() {
        assert_eq!(image_id("a:1"), image_id("a:1"));
        assert_ne!(image_id("a:1"), image_id("a:2"));
        assert_eq!(image_id("a:1").len(), "sha256:".len() + 64);
    }

    #[test]
    fn label_selectors_read_key_or_key_value() {
        let labels = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        assert!(label_matches(&labels, "a"));
        assert!(label_matches(&labels, "a=1"));
        assert!(!label_matches(&labels, "a=2"));
        assert!(!label_matches(&labels, "b"));
    }
}
