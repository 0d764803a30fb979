//! What of a container's spec the `changed` drift compares, read from the engine's own inspect JSON
//! (`Config`, `HostConfig`, `NetworkSettings.Networks`, `Mounts`) into one flat map of fields, and the
//! [`SpecChange`] a difference is reported as. A leaf: it imports nothing of the crate, so the model can carry
//! its types.
//!
//! Secret-free by construction: an environment value, a command line, an entrypoint and a healthcheck's
//! command are kept only as a digest keyed per process, so a summary can sit in the live view, and in a
//! `Debug` line, without holding what they may hide. What the engine fills in by itself — a hostname that is
//! its own short id, the short-id network alias, a dynamically assigned host port, an anonymous volume's
//! name, the swap limit it derives from the memory limit — is left out, so a container recreated from its
//! spec compares equal to the one it replaces.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One field of a spec as compared: a value that may be shown, or only a digest of one that may not.
#[derive(Clone, PartialEq, Eq)]
pub enum FieldValue {
    Shown(String),
    /// A digest of an environment value or a command line, keyed per process: equal values compare equal
    /// within one status-api, and the digest tells nothing of the value.
    Hidden(u64),
}

impl fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shown(value) => write!(f, "{value:?}"),
            Self::Hidden(_) => f.write_str("<hidden>"),
        }
    }
}

impl FieldValue {
    /// The value for people, or `None` when it is never shown.
    pub fn shown(&self) -> Option<&str> {
        match self {
            Self::Shown(value) => Some(value),
            Self::Hidden(_) => None,
        }
    }
}

/// A field's name: its family (`env`, `memory`) and, for families of many, the key within it (`FOO`).
pub type FieldName = (&'static str, String);

/// A container's spec as the `changed` drift compares it. In memory only: never serialised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecSummary {
    fields: BTreeMap<FieldName, FieldValue>,
    /// Whether the engine's `Mounts` was known: snapshots written before dockstate recorded it have none,
    /// and their mounts are then not compared.
    mounts_known: bool,
}

impl SpecSummary {
    /// The summary of a container whose id is `id`, from the parts of its inspect JSON as the engine wrote
    /// them (or as the Docker client's models write them back: absent, null, empty and zero read alike).
    pub fn from_engine(
        id: &str,
        config: &Value,
        host_config: &Value,
        networks: &Value,
        mounts: &Value,
    ) -> Self {
        let own_short_id: String = id.chars().take(12).collect();
        let mut summary = Self {
            fields: BTreeMap::new(),
            mounts_known: mounts.is_array(),
        };
        summary.read_config(config, host_config, &own_short_id);
        summary.read_host_config(host_config);
        summary.read_limits(host_config);
        summary.read_networks(networks, &own_short_id);
        summary.read_mounts(mounts);
        summary
    }

    /// Every field with a value, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&FieldName, &FieldValue)> {
        self.fields.iter()
    }

    /// One field's value.
    pub fn get(&self, family: &'static str, key: &str) -> Option<&FieldValue> {
        self.fields.get(&(family, key.to_owned()))
    }

    pub fn mounts_known(&self) -> bool {
        self.mounts_known
    }

    fn show(&mut self, family: &'static str, key: &str, value: Option<String>) {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            self.fields
                .insert((family, key.to_owned()), FieldValue::Shown(value));
        }
    }

    fn hide(&mut self, family: &'static str, key: &str, value: Option<String>) {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            self.fields
                .insert((family, key.to_owned()), FieldValue::Hidden(digest(&value)));
        }
    }

    fn read_config(&mut self, config: &Value, host_config: &Value, own_short_id: &str) {
        self.hide("command", "", words(&config["Cmd"]));
        self.hide("entrypoint", "", words(&config["Entrypoint"]));
        self.show("user", "", text(&config["User"]));
        self.show("working_dir", "", text(&config["WorkingDir"]));
        // Under `--network container:X` the hostname is X's; otherwise the engine's default is the short id.
        let joins_another = network_mode(host_config) == "container";
        if !joins_another {
            self.show(
                "hostname",
                "",
                text(&config["Hostname"]).filter(|name| name != own_short_id),
            );
        }
        for entry in strings(&config["Env"]) {
            let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            // An image made with `docker commit` can carry the old container's host name; a recreate drops it.
            if name == "HOSTNAME" && is_short_id(value) {
                continue;
            }
            self.fields
                .insert(("env", name.to_owned()), FieldValue::Hidden(digest(value)));
        }
        if let Some(labels) = config["Labels"].as_object() {
            for (key, value) in labels {
                let value = value.as_str().unwrap_or_default().to_owned();
                self.fields
                    .insert(("label", key.clone()), FieldValue::Shown(value));
            }
        }
        let health = &config["Healthcheck"];
        self.hide("healthcheck_test", "", words(&health["Test"]));
        for (family, key) in [
            ("healthcheck_interval", "Interval"),
            ("healthcheck_timeout", "Timeout"),
            ("healthcheck_start_period", "StartPeriod"),
        ] {
            self.show(family, "", positive(&health[key]).map(seconds));
        }
        self.show(
            "healthcheck_retries",
            "",
            positive(&health["Retries"]).map(|n| n.to_string()),
        );
    }

    fn read_host_config(&mut self, host: &Value) {
        let mode = network_mode(host);
        self.show("network_mode", "", Some(mode.to_owned()));
        if let Some(bindings) = host["PortBindings"].as_object() {
            for (port, hosts) in bindings {
                let mut published: Vec<String> = hosts
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|binding| {
                        let ip = binding["HostIp"].as_str().unwrap_or_default();
                        match binding["HostPort"].as_str().unwrap_or_default() {
                            "" | "0" => format!("{ip}:(any)"),
                            port => format!("{ip}:{port}"),
                        }
                    })
                    .collect();
                published.sort();
                self.show("port", port, Some(published.join(", ")));
            }
        }
        self.show("publish_all_ports", "", flag(&host["PublishAllPorts"]));
        let restart = &host["RestartPolicy"];
        let restart = match restart["Name"].as_str().unwrap_or_default() {
            "" | "no" => "no".to_owned(),
            "on-failure" => match restart["MaximumRetryCount"].as_i64().unwrap_or(0) {
                0 => "on-failure".to_owned(),
                retries => format!("on-failure:{retries}"),
            },
            other => other.to_owned(),
        };
        self.show("restart_policy", "", Some(restart));
        self.show("privileged", "", flag(&host["Privileged"]));
        self.show("read_only_rootfs", "", flag(&host["ReadonlyRootfs"]));
        for (family, key) in [
            ("cap_add", "CapAdd"),
            ("cap_drop", "CapDrop"),
            ("security_opt", "SecurityOpt"),
        ] {
            let mut values = strings(&host[key]);
            values.sort();
            self.show(family, "", Some(values.join(", ")));
        }
        for device in host["Devices"].as_array().into_iter().flatten() {
            let inside = text(&device["PathInContainer"]).unwrap_or_default();
            let outside = text(&device["PathOnHost"]).unwrap_or_default();
            let permissions = text(&device["CgroupPermissions"]).unwrap_or_default();
            self.show("device", &inside, Some(format!("{outside} {permissions}")));
        }
        if let Some(tmpfs) = host["Tmpfs"].as_object() {
            for (path, options) in tmpfs {
                let options = options.as_str().unwrap_or_default();
                self.show(
                    "tmpfs",
                    path,
                    Some(format!("tmpfs {options}").trim().to_owned()),
                );
            }
        }
    }

    fn read_limits(&mut self, host: &Value) {
        let memory = positive(&host["Memory"]);
        self.show("memory", "", memory.map(bytes));
        // The engine sets the swap limit to twice the memory limit when none was asked for.
        let swap = host["MemorySwap"].as_i64().unwrap_or(0);
        let swap = match (swap, memory) {
            (0, _) => None,
            (-1, _) => Some("unlimited".to_owned()),
            (swap, Some(memory)) if swap == memory * 2 => None,
            (swap, _) => Some(bytes(swap)),
        };
        self.show("memory_swap", "", swap);
        self.show(
            "memory_reservation",
            "",
            positive(&host["MemoryReservation"]).map(bytes),
        );
        self.show(
            "cpus",
            "",
            positive(&host["NanoCpus"]).map(|nanos| format!("{}", nanos as f64 / 1e9)),
        );
        for (family, key) in [
            ("cpu_shares", "CpuShares"),
            ("cpu_quota", "CpuQuota"),
            ("cpu_period", "CpuPeriod"),
            ("pids_limit", "PidsLimit"),
        ] {
            self.show(family, "", positive(&host[key]).map(|n| n.to_string()));
        }
        self.show("cpuset_cpus", "", text(&host["CpusetCpus"]));
    }

    fn read_networks(&mut self, networks: &Value, own_short_id: &str) {
        let Some(networks) = networks.as_object() else {
            return;
        };
        for (name, endpoint) in networks {
            self.show("network", name, Some("attached".to_owned()));
            let mut aliases: Vec<String> = strings(&endpoint["Aliases"])
                .into_iter()
                .filter(|alias| alias != own_short_id)
                .collect();
            aliases.sort();
            aliases.dedup();
            self.show("network_aliases", name, Some(aliases.join(", ")));
            let ipam = &endpoint["IPAMConfig"];
            self.show("network_ipv4_address", name, text(&ipam["IPv4Address"]));
            self.show("network_ipv6_address", name, text(&ipam["IPv6Address"]));
        }
    }

    /// `--tmpfs` mounts are not in `Mounts`: they are read from `HostConfig.Tmpfs` with the host config.
    fn read_mounts(&mut self, mounts: &Value) {
        for mount in mounts.as_array().into_iter().flatten() {
            let Some(destination) = text(&mount["Destination"]) else {
                continue;
            };
            let kind = text(&mount["Type"]).unwrap_or_else(|| "volume".to_owned());
            let what = match kind.as_str() {
                "bind" => format!("bind {}", text(&mount["Source"]).unwrap_or_default()),
                "volume" => match text(&mount["Name"]) {
                    // An anonymous volume's name is the engine's; a recreate re-attaches it by name anyway.
                    Some(name) if !is_anonymous_volume(&name) => format!("volume {name}"),
                    _ => "anonymous volume".to_owned(),
                },
                other => other.to_owned(),
            };
            let access = if mount["RW"].as_bool().unwrap_or(true) {
                ""
            } else {
                " (read-only)"
            };
            self.show("mount", &destination, Some(format!("{what}{access}")));
        }
    }
}

/// The network mode, normalised: the engine's `default` is the bridge, and the container whose namespace is
/// joined is the `orphaned` drift's business (the snapshot names it, the engine holds its id).
fn network_mode(host: &Value) -> &str {
    match host["NetworkMode"].as_str().unwrap_or_default() {
        "" | "default" => "bridge",
        mode if mode.starts_with("container:") => "container",
        mode => mode,
    }
}

/// A process-wide key, so a digest compares values within this process and tells nothing outside it.
fn digest(value: &str) -> u64 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new).hash_one(value)
}

fn text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(ToOwned::to_owned)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(ToOwned::to_owned))
        .collect()
}

/// A command line (an array, or a string in old answers), as one text: only its digest is kept.
fn words(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(_) => Some(strings(value).join("\u{0}")).filter(|words| !words.is_empty()),
        _ => None,
    }
}

fn positive(value: &Value) -> Option<i64> {
    value.as_i64().filter(|n| *n > 0)
}

fn flag(value: &Value) -> Option<String> {
    value.as_bool().filter(|on| *on).map(|_| "true".to_owned())
}

/// Nanoseconds as seconds, as `docker run --health-interval` takes them: `5s`, `0.5s`.
fn seconds(nanos: i64) -> String {
    format!("{}s", nanos as f64 / 1e9)
}

/// A size as `docker run --memory` takes it, exactly: `64MiB`, `1GiB`, else bytes.
fn bytes(n: i64) -> String {
    const UNITS: [(i64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    UNITS.iter().find(|(unit, _)| n % unit == 0).map_or_else(
        || format!("{n}B"),
        |(unit, name)| format!("{}{name}", n / unit),
    )
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_short_id(text: &str) -> bool {
    is_hex(text, 12)
}

fn is_anonymous_volume(name: &str) -> bool {
    is_hex(name, 64)
}

/// How a field differs from the snapshot's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The snapshot's spec did not have it (or had the engine's default).
    Added,
    /// The snapshot's spec had it; the container's does not.
    Removed,
    /// Both have it, with other values.
    Changed,
}

/// One field in which a member's container differs from its snapshot spec. Never an environment value, a
/// command line, an entrypoint or a healthcheck's command: for those only that they changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct SpecChange {
    /// The field: `image`, `command`, `entrypoint`, `env`, `label`, `port`, `mount`, `tmpfs`, `network`,
    /// `network_aliases`, `network_ipv4_address`, `network_ipv6_address`, `network_mode`, `restart_policy`,
    /// `healthcheck_test`, `healthcheck_interval`, `healthcheck_timeout`, `healthcheck_start_period`,
    /// `healthcheck_retries`, `user`, `working_dir`, `hostname`, `privileged`, `read_only_rootfs`,
    /// `cap_add`, `cap_drop`, `security_opt`, `device`, `publish_all_ports`, `memory`, `memory_swap`,
    /// `memory_reservation`, `cpus`, `cpu_shares`, `cpu_quota`, `cpu_period`, `cpuset_cpus`, `pids_limit`.
    pub field: String,
    /// Which one of a field of many: the variable's or label's name, the container port (`80/tcp`), the
    /// mount's or device's path in the container, the network's name; null for a field of one.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub key: Option<String>,
    /// `added`, `removed` or `changed`.
    pub change: ChangeKind,
    /// The snapshot's value; null when it had none, and always for a value never shown (environment,
    /// command, entrypoint, healthcheck command).
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub snapshot: Option<String>,
    /// The container's value now; null when it has none, and always for a value never shown.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub current: Option<String>,
}

impl SpecChange {
    /// The change in a few words: `env FOO changed`, `memory 64MiB → 128MiB`, `label team added (b)`.
    pub fn describe(&self) -> String {
        let name = match &self.key {
            Some(key) => format!("{} {key}", self.field),
            None => self.field.clone(),
        };
        match (self.change, &self.snapshot, &self.current) {
            (ChangeKind::Changed, Some(before), Some(after)) => {
                format!("{name} {before} → {after}")
            }
            (ChangeKind::Added, _, Some(after)) => format!("{name} added ({after})"),
            (ChangeKind::Removed, Some(before), _) => format!("{name} removed (was {before})"),
            (ChangeKind::Added, _, _) => format!("{name} added"),
            (ChangeKind::Removed, _, _) => format!("{name} removed"),
            (ChangeKind::Changed, _, _) => format!("{name} changed"),
        }
    }
}
