//! The request half of a recreate: how a removed container is made again, its snapshot spec (the engine's own
//! `Config`, `HostConfig`, networks and mounts from inspect) turned into a create request. Pure, so every rule
//! is unit-tested. The engine half — the spec read from status-api, the image and volumes looked up, create,
//! connect, start — is the executor's, in `executor/recreate.rs`.
//!
//! The body is the stored JSON itself, not a round trip through the client library's typed models: a field
//! those models do not know (`Config.MacAddress` on API 1.41, say) is sent as it was recorded. What carries
//! over: everything in `Config` and `HostConfig`, the networks with their aliases, static addresses and
//! driver options, and the anonymous volumes — declared ones (`-v /path`, an image's `VOLUME`, compose's
//! `volumes: ["/path"]`) and volume mounts without a source (`--mount type=volume,dst=/path`, compose's long
//! syntax) — re-attached by name so that their data comes back. What does
//! not: what the engine assigned to the old container at run time — the endpoint's id, dynamic address,
//! gateway and MAC, and the alias, hostname and `HOSTNAME` variable it derived from the old id — so the new
//! container gets its own. A container that joins another's network (`container:<owner>`, the owner by name
//! in the snapshot, which the engine resolves to the owner's id of the day) takes the owner's hostname,
//! domain name, ports and MAC, so it is created without any of its own.
//! [`docs/recreate.md`](../../docs/recreate.md) has the field-by-field table.

use std::collections::{BTreeSet, HashMap};

use bollard::models::EndpointSettings;
use serde_json::{json, Map, Value};
use shared::ContainerSpec;

/// A network by name, and the endpoint to make on it.
pub type Network = (String, EndpointSettings);

/// A volume the old container had mounted, which the new one mounts again by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its name: the one the engine gave an anonymous volume (64 hex digits), or the one it was given.
    pub name: String,
    /// Where it is mounted.
    pub destination: String,
    pub read_only: bool,
    /// How the request names it.
    pub attach: Attach,
}

/// How a recreate names a volume, by how the old container was given it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Anonymous, declared by `Config.Volumes` (`-v /path`, an image's `VOLUME`, compose's `volumes:
    /// ["/path"]`) and named by nothing in `HostConfig`: a volume mount naming it is added to
    /// `HostConfig.Mounts`.
    AddMount,
    /// Anonymous, a volume in `HostConfig.Mounts` without a source (`--mount type=volume,dst=/path`,
    /// compose's long syntax): that entry's source is filled in, the rest of it kept as recorded.
    FillSource,
    /// Named by the spec itself (`HostConfig.Binds`, or a `HostConfig.Mounts` source — as compose names a
    /// service's anonymous volume once it has recreated the service): sent as recorded. Were it gone, the
    /// engine would make a fresh, empty one under that name.
    AsRecorded,
}

impl Volume {
    /// Whether the engine made it up for the old container: re-attaching it is the recreate's doing.
    pub fn anonymous(&self) -> bool {
        self.attach != Attach::AsRecorded
    }

    /// Its name as `/actions` shows it: an engine-made name by its first 12 digits, as `docker` shows ids.
    pub fn short_name(&self) -> &str {
        let engine_made =
            self.name.len() == 64 && self.name.bytes().all(|byte| byte.is_ascii_hexdigit());
        if engine_made {
            &self.name[..12]
        } else {
            &self.name
        }
    }
}

/// What to send to the engine to recreate one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Recreation {
    pub name: String,
    /// The image reference the snapshot names.
    pub image: String,
    /// The image id the member ran: what it is created from when the reference no longer resolves here.
    pub image_id: String,
    /// The create body in the engine's own field names: `Config`'s fields, `HostConfig`, and at most one
    /// network in `NetworkingConfig` (API 1.41 takes only one at create).
    pub body: Value,
    /// The network it is created with (also in the body's `NetworkingConfig`).
    pub primary_network: Option<Network>,
    /// The other networks, to connect after create, in name order.
    pub extra_networks: Vec<Network>,
    /// The volumes it mounts by name, in destination order: the anonymous ones, which the recreate names
    /// in `HostConfig.Mounts` when the body is sent, and those the spec names itself.
    pub volumes: Vec<Volume>,
}

impl Recreation {
    /// Creates from `image` (the reference, or the recorded id when the reference is gone).
    pub fn use_image(&mut self, image: &str) {
        self.body["Image"] = Value::String(image.to_owned());
    }

    /// Every network it is attached to, the one it is created with first.
    pub fn all_networks(&self) -> Vec<Network> {
        self.primary_network
            .iter()
            .chain(&self.extra_networks)
            .cloned()
            .collect()
    }

    /// The image the body creates from.
    pub fn body_image(&self) -> &str {
        self.body["Image"].as_str().unwrap_or(&self.image)
    }

    /// Leaves out a volume that no longer exists. An anonymous one is then not re-attached, and the engine
    /// makes a fresh, empty one at that path, as it does for any declared volume or volume mount without a
    /// source; one the spec names, the engine makes afresh under that name.
    pub fn forget_volume(&mut self, name: &str) {
        self.volumes.retain(|volume| volume.name != name);
    }

    /// The body to send: [`body`](Self::body) with the anonymous volumes named in `HostConfig.Mounts` —
    /// a source filled in where the recorded mount had none, a mount added for a declared one.
    pub fn request_body(&self) -> Value {
        let mut body = self.body.clone();
        if !self.volumes.iter().any(Volume::anonymous) {
            return body;
        }
        let host_config = &mut body["HostConfig"];
        if !host_config["Mounts"].is_array() {
            host_config["Mounts"] = Value::Array(Vec::new());
        }
        let Some(mounts) = host_config["Mounts"].as_array_mut() else {
            return body;
        };
        for volume in &self.volumes {
            match volume.attach {
                Attach::FillSource => {
                    if let Some(mount) = mounts
                        .iter_mut()
                        .find(|mount| is_sourceless_volume_at(mount, &volume.destination))
                    {
                        mount["Source"] = Value::String(volume.name.clone());
                    }
                }
                Attach::AddMount => mounts.push(json!({
                    "Type": "volume",
                    "Source": volume.name,
                    "Target": volume.destination,
                    "ReadOnly": volume.read_only,
                })),
                Attach::AsRecorded => {}
            }
        }
        body
    }
}

/// Whether `mount` (an entry of `HostConfig.Mounts`) is a volume at `destination` that names no volume: the
/// engine makes a new one for it at every create.
fn is_sourceless_volume_at(mount: &Value, destination: &str) -> bool {
    mount["Type"] == "volume"
        && mount["Target"].as_str() == Some(destination)
        && mount["Source"].as_str().unwrap_or_default().is_empty()
}

#[derive(Debug, thiserror::Error)]
#[error("the snapshot's {part} of {name} is not a Docker {part} object: {source}")]
pub struct SpecError {
    name: String,
    part: &'static str,
    #[source]
    source: serde_json::Error,
}

/// The create request that brings `spec` back.
pub fn recreation(spec: &ContainerSpec) -> Result<Recreation, SpecError> {
    let parse_error = |part| {
        let name = spec.name.clone();
        move |source| SpecError { name, part, source }
    };
    let mut config: Map<String, Value> =
        object_or_empty(&spec.config, "Config").map_err(parse_error("Config"))?;
    let mut host_config: Map<String, Value> =
        object_or_empty(&spec.host_config, "HostConfig").map_err(parse_error("HostConfig"))?;
    normalize_ulimit_names(&mut host_config);
    drop_derived_cpu_quota(&mut host_config);
    let networks: Option<HashMap<String, EndpointSettings>> =
        serde_json::from_value(spec.networks.clone()).map_err(parse_error("Networks"))?;
    let networks = networks.unwrap_or_default();

    let short_id: String = spec.id.chars().take(12).collect();
    // The engine names a container's host after its id unless told otherwise: a new container gets a new one.
    if config.get("Hostname").and_then(Value::as_str) == Some(short_id.as_str()) {
        config.remove("Hostname");
    }
    // An image made with `docker commit` can carry the old container's HOSTNAME in its environment.
    let stale_hostname = format!("HOSTNAME={short_id}");
    if let Some(env) = config.get_mut("Env").and_then(Value::as_array_mut) {
        env.retain(|entry| entry.as_str() != Some(stale_hostname.as_str()));
    }
    let image = config
        .get("Image")
        .and_then(Value::as_str)
        .filter(|image| !image.is_empty())
        .unwrap_or(&spec.image)
        .to_owned();
    config.insert("Image".to_owned(), Value::String(image.clone()));

    let volumes = volumes(&spec.mounts, &config, &host_config);

    let network_mode = host_config
        .get("NetworkMode")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if network_mode
        .as_deref()
        .is_some_and(|mode| mode.starts_with("container:"))
    {
        // Inherited from the container whose network it joins (inspect shows the old owner's), or from the
        // image: the engine fills them in again from the owner of the day, and refuses a hostname, exposed
        // ports or a MAC sent with this network mode ("conflicting options").
        for inherited in ["Hostname", "Domainname", "ExposedPorts", "MacAddress"] {
            config.remove(inherited);
        }
    }
    let (primary, extra_networks) = split_networks(network_mode.as_deref(), networks, &short_id);
    let mut body = config;
    body.insert("HostConfig".to_owned(), Value::Object(host_config));
    if let Some((name, endpoint)) = &primary {
        let endpoint = serde_json::to_value(endpoint).unwrap_or_else(|_| json!({}));
        body.insert(
            "NetworkingConfig".to_owned(),
            json!({ "EndpointsConfig": { name: endpoint } }),
        );
    }
    Ok(Recreation {
        name: spec.name.clone(),
        image,
        image_id: spec.image_id.clone(),
        body: Value::Object(body),
        primary_network: primary,
        extra_networks,
        volumes,
    })
}

/// Ulimit names as every engine's create takes them: Podman's inspect writes `RLIMIT_NOFILE` where Docker
/// writes `nofile`, and Podman's own create refuses its own spelling ("invalid ulimit type").
fn normalize_ulimit_names(host_config: &mut Map<String, Value>) {
    let Some(ulimits) = host_config.get_mut("Ulimits").and_then(Value::as_array_mut) else {
        return;
    };
    for ulimit in ulimits {
        if let Some(name) = ulimit.get_mut("Name") {
            if let Some(spelled) = name.as_str() {
                let lower = spelled.to_ascii_lowercase();
                *name = Value::String(lower.strip_prefix("rlimit_").unwrap_or(&lower).to_owned());
            }
        }
    }
}

/// `--cpus` alone: Podman's inspect writes `NanoCpus` and the period and quota it derived from them, and its
/// own create refuses the three together ("NanoCpus conflicts with CpuPeriod and CpuQuota"), as Docker's does.
/// Docker's inspect writes 0 for the two, which means "not set" to every engine.
fn drop_derived_cpu_quota(host_config: &mut Map<String, Value>) {
    let nano_cpus = host_config
        .get("NanoCpus")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if nano_cpus > 0 {
        host_config.remove("CpuPeriod");
        host_config.remove("CpuQuota");
    }
}

/// `value` as a JSON object; null is an empty one.
fn object_or_empty(value: &Value, part: &str) -> Result<Map<String, Value>, serde_json::Error> {
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(object) => Ok(object.clone()),
        other => Err(serde::de::Error::custom(format!(
            "expected a {part} object, found {other}"
        ))),
    }
}

/// The volumes of the old container (its `Mounts` of type volume) and how to name each in the request
/// ([`Attach`]). A volume at a path that neither `Config.Volumes` declares nor `HostConfig` mounts came
/// with `--volumes-from`: it is the other container's, left to `HostConfig.VolumesFrom`.
fn volumes(
    mounts: &Value,
    config: &Map<String, Value>,
    host_config: &Map<String, Value>,
) -> Vec<Volume> {
    let declared: BTreeSet<&str> = config
        .get("Volumes")
        .and_then(Value::as_object)
        .map(|volumes| volumes.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let host_mounts: Vec<&Value> = host_config
        .get("Mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    // `source:destination[:options]`; the source of a volume is its name, of a bind a path.
    let binds: Vec<(&str, &str)> = host_config
        .get("Binds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|bind| {
            let mut parts = bind.split(':');
            Some((parts.next()?, parts.next()?))
        })
        .collect();
    let named_at = |name: &str, destination: &str| {
        binds.contains(&(name, destination))
            || host_mounts.iter().any(|mount| {
                mount["Type"] == "volume"
                    && mount["Source"] == name
                    && mount["Target"] == destination
            })
    };
    let mut configured: BTreeSet<&str> =
        binds.iter().map(|(_, destination)| *destination).collect();
    configured.extend(
        host_mounts
            .iter()
            .filter_map(|mount| mount["Target"].as_str()),
    );
    if let Some(tmpfs) = host_config.get("Tmpfs").and_then(Value::as_object) {
        configured.extend(tmpfs.keys().map(String::as_str));
    }
    let mut volumes: Vec<Volume> = mounts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|mount| mount["Type"] == "volume")
        .filter_map(|mount| {
            let name = mount["Name"].as_str().filter(|name| !name.is_empty())?;
            let destination = mount["Destination"].as_str()?;
            let attach = if host_mounts
                .iter()
                .any(|mount| is_sourceless_volume_at(mount, destination))
            {
                Attach::FillSource
            } else if named_at(name, destination) {
                Attach::AsRecorded
            } else if declared.contains(destination) && !configured.contains(destination) {
                Attach::AddMount
            } else {
                return None;
            };
            Some(Volume {
                name: name.to_owned(),
                destination: destination.to_owned(),
                read_only: mount["RW"] == false,
                attach,
            })
        })
        .collect();
    volumes.sort_by(|a, b| a.destination.cmp(&b.destination));
    volumes
}

/// Podman's default network: what Docker calls `bridge`.
const DEFAULT_PODMAN_NETWORK: &str = "podman";

/// The network to create with, and the others to connect afterwards. None at all when the network mode
/// shares another namespace (`host`, `none`, `container:<id>`): there are no endpoints to make.
fn split_networks(
    network_mode: Option<&str>,
    networks: HashMap<String, EndpointSettings>,
    short_id: &str,
) -> (Option<Network>, Vec<Network>) {
    let mode = network_mode.unwrap_or("default");
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return (None, Vec::new());
    }
    let mut networks: Vec<Network> = networks
        .into_iter()
        .map(|(name, endpoint)| {
            let endpoint = configured_endpoint(&name, endpoint, short_id);
            (name, endpoint)
        })
        .collect();
    networks.sort_by(|a, b| a.0.cmp(&b.0));
    // Docker names the default network `bridge` and writes a user network's name as the mode. Podman writes
    // `bridge` as the mode of every bridge network, its default network included, which it names `podman`.
    let wanted: &[&str] = match mode {
        "default" | "bridge" => &["bridge", DEFAULT_PODMAN_NETWORK],
        named => &[named],
    };
    let primary_at = wanted
        .iter()
        .find_map(|wanted| networks.iter().position(|(name, _)| name == wanted))
        .unwrap_or(0);
    if networks.is_empty() {
        return (None, networks);
    }
    let primary = networks.remove(primary_at);
    (Some(primary), networks)
}

/// What the user configured on an endpoint, without what the engine assigned at run time.
fn configured_endpoint(
    network: &str,
    endpoint: EndpointSettings,
    short_id: &str,
) -> EndpointSettings {
    // The default bridge refuses aliases; elsewhere the engine adds the short id itself.
    let aliases = endpoint
        .aliases
        .map(|aliases| {
            aliases
                .into_iter()
                .filter(|alias| alias != short_id)
                .collect::<Vec<_>>()
        })
        .filter(|aliases| !aliases.is_empty() && network != "bridge");
    EndpointSettings {
        ipam_config: endpoint.ipam_config,
        links: endpoint.links,
        aliases,
        driver_opts: endpoint.driver_opts,
        gw_priority: endpoint.gw_priority,
        ..EndpointSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const OLD_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn spec(config: Value, host_config: Value, networks: Value) -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            id: OLD_ID.into(),
            image: "busybox:latest".into(),
            image_id: "sha256:1".into(),
            config,
            host_config,
            networks,
            mounts: Value::Null,
        }
    }

    fn engine_endpoint(network_id: &str, aliases: Value) -> Value {
        json!({
            "IPAMConfig": null, "Links": null, "Aliases": aliases, "NetworkID": network_id,
            "EndpointID": "e1", "Gateway": "172.18.0.1", "IPAddress": "172.18.0.2", "IPPrefixLen": 16,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": "02:42:ac:12:00:02", "DriverOpts": null
        })
    }

    #[test]
    fn the_configuration_carries_over() {
        let recreation = recreation(&spec(
            json!({
                "Hostname": "0123456789ab", "Image": "busybox:latest", "User": "1000",
                "Env": ["A=1", "SECRET=x"], "Cmd": ["sh", "-c", "sleep 1"], "Entrypoint": ["/init"],
                "Labels": {"team": "a", "dockstate.test": "t1"}, "WorkingDir": "/srv",
                "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}, "StopSignal": "SIGINT",
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}
            }),
            json!({
                "Binds": ["vol:/data"], "NetworkMode": "default",
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}
            }),
            json!({"bridge": engine_endpoint("n0", json!(null))}),
        ))
        .expect("valid spec");
        let body = recreation.request_body();
        assert_eq!(recreation.name, "web");
        assert_eq!(recreation.image, "busybox:latest");
        assert_eq!(
            body.get("Hostname"),
            None,
            "the id-derived hostname is dropped"
        );
        assert_eq!(body["Image"], "busybox:latest");
        assert_eq!(body["User"], "1000");
        assert_eq!(body["Env"], json!(["A=1", "SECRET=x"]));
        assert_eq!(body["Cmd"], json!(["sh", "-c", "sleep 1"]));
        assert_eq!(body["Entrypoint"], json!(["/init"]));
        assert_eq!(body["WorkingDir"], "/srv");
        assert_eq!(body["Labels"].as_object().map(Map::len), Some(2));
        assert_eq!(body["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(body["Volumes"], json!({"/data": {}}));
        assert_eq!(body["StopSignal"], "SIGINT");
        assert_eq!(body["Healthcheck"]["Test"], json!(["CMD", "true"]));
        let host = &body["HostConfig"];
        assert_eq!(host["Binds"], json!(["vol:/data"]));
        assert_eq!(host["RestartPolicy"]["MaximumRetryCount"], 3);
        assert!(host["PortBindings"].get("80/tcp").is_some());
        assert_eq!(
            body["NetworkingConfig"]["EndpointsConfig"]["bridge"],
            json!({}),
            "runtime fields are dropped"
        );
        assert!(recreation.extra_networks.is_empty());
        assert!(
            recreation.volumes.is_empty(),
            "no volume is mounted in this spec"
        );
    }

    #[test]
    fn fields_the_client_models_do_not_know_are_sent_as_recorded() {
        let recreation = recreation(&spec(
            json!({"Image": "busybox:latest", "MacAddress": "02:42:0a:00:00:99", "SomeDay": {"x": 1}}),
            json!({"NetworkMode": "front", "KernelMemoryTCP": 0, "Init": true}),
            json!({"front": engine_endpoint("n1", json!(null))}),
        ))
        .expect("valid spec");
        let body = recreation.request_body();
        assert_eq!(body["MacAddress"], "02:42:0a:00:00:99");
        assert_eq!(body["SomeDay"], json!({"x": 1}));
        assert_eq!(body["HostConfig"]["KernelMemoryTCP"], 0);
        assert_eq!(body["HostConfig"]["Init"], true);
    }

    #[test]
    fn a_stale_hostname_variable_is_dropped_and_a_chosen_one_kept() {
        let recreation = recreation(&spec(
            json!({"Image": "busybox:latest", "Env": ["HOSTNAME=0123456789ab", "A=1", "HOSTNAME2=0123456789ab"]}),
            json!({}),
            json!({}),
        ))
        .expect("valid spec");
        assert_eq!(
            recreation.body["Env"],
            json!(["A=1", "HOSTNAME2=0123456789ab"])
        );
        let chosen = recreation_of_env(json!(["HOSTNAME=db-primary"]));
        assert_eq!(chosen.body["Env"], json!(["HOSTNAME=db-primary"]));
    }

    #[test]
    fn ulimit_names_are_spelled_as_every_engine_takes_them() {
        let spec = spec(
            json!({"Image": "busybox:latest"}),
            json!({"Ulimits": [
                {"Name": "RLIMIT_NOFILE", "Soft": 1024, "Hard": 2048},
                {"Name": "nproc", "Soft": 64, "Hard": 64},
                {"Name": "RLIMIT_CORE", "Soft": 0, "Hard": 0}
            ]}),
            json!({}),
        );
        let recreation = recreation(&spec).expect("valid spec");
        let names: Vec<&str> = recreation.body["HostConfig"]["Ulimits"]
            .as_array()
            .expect("ulimits")
            .iter()
            .filter_map(|ulimit| ulimit["Name"].as_str())
            .collect();
        assert_eq!(names, vec!["nofile", "nproc", "core"]);
        assert_eq!(recreation.body["HostConfig"]["Ulimits"][0]["Hard"], 2048);
    }

    #[test]
    fn cpus_are_sent_once_not_also_as_the_period_and_quota_derived_from_them() {
        let podman = recreation(&spec(
            json!({"Image": "busybox:latest"}),
            json!({"NanoCpus": 500_000_000, "CpuPeriod": 100_000, "CpuQuota": 50_000}),
            json!({}),
        ))
        .expect("valid spec");
        let host_config = &podman.body["HostConfig"];
        assert_eq!(host_config["NanoCpus"], 500_000_000);
        assert_eq!(host_config.get("CpuPeriod"), None, "{host_config}");
        assert_eq!(host_config.get("CpuQuota"), None, "{host_config}");

        let quota_only = recreation(&spec(
            json!({"Image": "busybox:latest"}),
            json!({"NanoCpus": 0, "CpuPeriod": 100_000, "CpuQuota": 25_000}),
            json!({}),
        ))
        .expect("valid spec");
        assert_eq!(
            quota_only.body["HostConfig"]["CpuQuota"], 25_000,
            "a quota set by itself is kept"
        );
    }

    fn recreation_of_env(env: Value) -> Recreation {
        recreation(&spec(
            json!({"Image": "busybox:latest", "Env": env}),
            json!({}),
            json!({}),
        ))
        .expect("valid spec")
    }

    #[test]
    fn a_hostname_someone_chose_is_kept() {
        let recreation = recreation(&spec(
            json!({"Hostname": "db-primary", "Image": "busybox:latest"}),
            json!({}),
            json!({}),
        ))
        .expect("valid spec");
        assert_eq!(recreation.body["Hostname"], "db-primary");
        assert_eq!(recreation.body.get("NetworkingConfig"), None);
    }

    /// `(destination, how)` of each volume, in order.
    fn attached(recreation: &Recreation) -> Vec<(&str, Attach)> {
        recreation
            .volumes
            .iter()
            .map(|volume| (volume.destination.as_str(), volume.attach))
            .collect()
    }

    #[test]
    fn declared_anonymous_volumes_are_reattached_by_name() {
        let mut with_mounts = spec(
            json!({"Image": "db", "Volumes": {"/var/lib/db": {}, "/named": {}, "/run": {}, "/ro": {}}}),
            json!({"Binds": ["keep:/named:ro", "/srv:/srv"], "Tmpfs": {"/run": ""}}),
            json!({}),
        );
        with_mounts.mounts = json!([
            {"Type": "volume", "Name": "a".repeat(64), "Destination": "/var/lib/db", "RW": true, "Driver": "local"},
            {"Type": "volume", "Name": "keep", "Destination": "/named", "RW": false},
            {"Type": "bind", "Source": "/srv", "Destination": "/srv", "RW": true},
            {"Type": "volume", "Name": "b".repeat(64), "Destination": "/ro", "RW": false},
            {"Type": "volume", "Name": "c".repeat(64), "Destination": "/from-another", "RW": true},
        ]);
        let mut recreation = recreation(&with_mounts).expect("valid spec");
        assert_eq!(
            attached(&recreation),
            vec![
                ("/named", Attach::AsRecorded),
                ("/ro", Attach::AddMount),
                ("/var/lib/db", Attach::AddMount)
            ],
            "not the bound, tmpfs or --volumes-from ones"
        );
        let body = recreation.request_body();
        assert_eq!(
            body["HostConfig"]["Mounts"],
            json!([
                {"Type": "volume", "Source": "b".repeat(64), "Target": "/ro", "ReadOnly": true},
                {"Type": "volume", "Source": "a".repeat(64), "Target": "/var/lib/db", "ReadOnly": false},
            ])
        );
        assert_eq!(
            body["HostConfig"]["Binds"],
            json!(["keep:/named:ro", "/srv:/srv"])
        );
        assert_eq!(body["Volumes"].as_object().map(Map::len), Some(4));

        recreation.forget_volume(&"a".repeat(64));
        let body = recreation.request_body();
        assert_eq!(
            body["HostConfig"]["Mounts"].as_array().map(Vec::len),
            Some(1),
            "a gone volume is left to the engine to make afresh"
        );
    }

    #[test]
    fn a_volume_mounted_without_a_source_gets_its_name_filled_in() {
        // `--mount type=volume,dst=/data,readonly` and compose's `{type: volume, target: /cache}` beside
        // a named volume mount: inspect keeps the sourceless ones as they were asked for.
        let mut mounted = spec(
            json!({"Image": "db"}),
            json!({"Mounts": [
                {"Type": "volume", "Target": "/data", "ReadOnly": true,
                 "VolumeOptions": {"Labels": {"team": "a"}}},
                {"Type": "volume", "Source": "keep", "Target": "/named"},
                {"Type": "volume", "Target": "/cache"},
            ]}),
            json!({}),
        );
        mounted.mounts = json!([
            {"Type": "volume", "Name": "a".repeat(64), "Destination": "/data", "RW": false, "Mode": "z"},
            {"Type": "volume", "Name": "keep", "Destination": "/named", "RW": true, "Mode": "z"},
            {"Type": "volume", "Name": "b".repeat(64), "Destination": "/cache", "RW": true, "Mode": "z"},
        ]);
        let mut recreation = recreation(&mounted).expect("valid spec");
        assert_eq!(
            attached(&recreation),
            vec![
                ("/cache", Attach::FillSource),
                ("/data", Attach::FillSource),
                ("/named", Attach::AsRecorded)
            ]
        );
        assert_eq!(
            recreation.request_body()["HostConfig"]["Mounts"],
            json!([
                {"Type": "volume", "Source": "a".repeat(64), "Target": "/data", "ReadOnly": true,
                 "VolumeOptions": {"Labels": {"team": "a"}}},
                {"Type": "volume", "Source": "keep", "Target": "/named"},
                {"Type": "volume", "Source": "b".repeat(64), "Target": "/cache"},
            ]),
            "each in its place, with what else was asked for"
        );

        recreation.forget_volume(&"a".repeat(64));
        assert_eq!(
            recreation.request_body()["HostConfig"]["Mounts"][0],
            json!({"Type": "volume", "Target": "/data", "ReadOnly": true,
                   "VolumeOptions": {"Labels": {"team": "a"}}}),
            "a gone volume is left to the engine to make afresh"
        );
    }

    #[test]
    fn an_anonymous_volume_compose_names_in_its_binds_is_sent_as_recorded() {
        // What `docker-compose up` leaves once it has recreated a service with `volumes: ["/data"]`.
        let bind = format!("{}:/data:rw", "a".repeat(64));
        let mut composed = spec(
            json!({"Image": "db", "Volumes": {"/data": {}}}),
            json!({"Binds": [bind]}),
            json!({}),
        );
        composed.mounts = json!([
            {"Type": "volume", "Name": "a".repeat(64), "Destination": "/data", "RW": true, "Mode": "rw"},
        ]);
        let recreation = recreation(&composed).expect("valid spec");
        assert_eq!(attached(&recreation), vec![("/data", Attach::AsRecorded)]);
        assert_eq!(recreation.volumes[0].short_name(), "aaaaaaaaaaaa");
        let body = recreation.request_body();
        assert_eq!(body["HostConfig"]["Binds"], json!([bind]));
        assert_eq!(body["HostConfig"].get("Mounts"), None, "nothing added");
    }

    #[test]
    fn one_network_at_create_and_the_rest_connected_after() {
        let recreation = recreation(&spec(
            json!({"Image": "busybox:latest"}),
            json!({"NetworkMode": "front"}),
            json!({
                "back": engine_endpoint("n2", json!(["0123456789ab", "db"])),
                "front": engine_endpoint("n1", json!(["web", "0123456789ab"])),
                "audit": engine_endpoint("n3", json!(["0123456789ab"])),
            }),
        ))
        .expect("valid spec");
        let endpoints = recreation.body["NetworkingConfig"]["EndpointsConfig"]
            .as_object()
            .expect("one network");
        assert_eq!(endpoints.len(), 1);
        assert_eq!(
            endpoints["front"]["Aliases"],
            json!(["web"]),
            "the short-id alias is dropped, the chosen one kept"
        );
        let extra: Vec<(&str, Option<Vec<String>>)> = recreation
            .extra_networks
            .iter()
            .map(|(name, endpoint)| (name.as_str(), endpoint.aliases.clone()))
            .collect();
        assert_eq!(
            extra,
            vec![("audit", None), ("back", Some(vec!["db".to_owned()]))]
        );
        let all: Vec<String> = recreation
            .all_networks()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(all, vec!["front", "audit", "back"]);
    }

    #[test]
    fn podmans_default_network_is_created_with_and_a_user_network_connected_after() {
        // Podman writes `bridge` as the mode of every bridge network; its default one is named `podman`.
        let recreation = recreation(&spec(
            json!({"Image": "busybox:latest"}),
            json!({"NetworkMode": "bridge"}),
            json!({
                "podman": engine_endpoint("podman", json!(["0123456789ab"])),
                "apps": engine_endpoint("apps", json!(["web", "0123456789ab"])),
            }),
        ))
        .expect("valid spec");
        let endpoints = recreation.body["NetworkingConfig"]["EndpointsConfig"]
            .as_object()
            .expect("one network");
        assert_eq!(
            endpoints.keys().collect::<Vec<_>>(),
            vec!["podman"],
            "the default network first, as the engine made it"
        );
        assert_eq!(endpoints["podman"].get("Aliases"), None);
        assert_eq!(recreation.extra_networks.len(), 1);
        assert_eq!(recreation.extra_networks[0].0, "apps");
        assert_eq!(
            recreation.extra_networks[0].1.aliases,
            Some(vec!["web".to_owned()])
        );
    }

    #[test]
    fn a_static_address_is_kept() {
        let mut endpoint = engine_endpoint("n1", json!(null));
        endpoint["IPAMConfig"] = json!({"IPv4Address": "10.1.0.9"});
        let recreation = recreation(&spec(
            json!({"Image": "busybox:latest"}),
            json!({"NetworkMode": "front"}),
            json!({"front": endpoint}),
        ))
        .expect("valid spec");
        assert_eq!(
            recreation.body["NetworkingConfig"]["EndpointsConfig"]["front"]["IPAMConfig"]
                ["IPv4Address"],
            "10.1.0.9"
        );
    }

    #[test]
    fn shared_namespaces_get_no_endpoints() {
        for mode in ["host", "none", "container:abc"] {
            let recreation = recreation(&spec(
                json!({"Image": "busybox:latest"}),
                json!({"NetworkMode": mode}),
                json!({"host": engine_endpoint("n", json!(null))}),
            ))
            .expect("valid spec");
            assert_eq!(recreation.body.get("NetworkingConfig"), None, "{mode}");
            assert!(recreation.extra_networks.is_empty(), "{mode}");
            assert_eq!(recreation.body["HostConfig"]["NetworkMode"], mode);
        }
    }

    #[test]
    fn what_a_joined_network_namespace_lends_is_not_sent() {
        let recreation = recreation(&spec(
            json!({"Image": "busybox:latest", "Hostname": "ffffffffffff", "ExposedPorts": {"80/tcp": {}},
                   "Env": ["A=1"]}),
            json!({"NetworkMode": "container:ffffffffffff"}),
            json!({}),
        ))
        .expect("valid spec");
        let body = recreation.request_body();
        assert_eq!(
            body.get("Hostname"),
            None,
            "the engine refuses a hostname here"
        );
        assert_eq!(body.get("ExposedPorts"), None, "and exposed ports");
        assert_eq!(body["Env"], json!(["A=1"]));
    }

    #[test]
    fn a_dependant_joins_its_owner_by_name_without_a_hostname_or_ports_of_its_own() {
        let recreation = recreation(&spec(
            json!({"Hostname": "847b603c36ca", "Domainname": "vpn.lan", "Image": "busybox:latest",
                   "ExposedPorts": {"80/tcp": {}}}),
            json!({"NetworkMode": "container:vpn", "IpcMode": "container:vpn", "PidMode": "container:vpn"}),
            json!({}),
        ))
        .expect("valid spec");
        let body = recreation.request_body();
        assert_eq!(
            body.get("Hostname"),
            None,
            "the old owner's hostname is dropped"
        );
        assert_eq!(body.get("Domainname"), None, "and its domain name");
        assert_eq!(body.get("ExposedPorts"), None);
        let host = &body["HostConfig"];
        assert_eq!(host["NetworkMode"], "container:vpn");
        assert_eq!(host["IpcMode"], "container:vpn");
        assert_eq!(host["PidMode"], "container:vpn");
    }

    #[test]
    fn a_malformed_spec_names_its_part() {
        let err =
            recreation(&spec(json!("not an object"), json!({}), json!({}))).expect_err("malformed");
        assert!(err.to_string().contains("Config of web"), "{err}");
        let err = recreation(&spec(json!({}), json!(3), json!({}))).expect_err("malformed");
        assert!(err.to_string().contains("HostConfig of web"), "{err}");
        let err = recreation(&spec(json!({}), json!({}), json!({"n": 3}))).expect_err("malformed");
        assert!(err.to_string().contains("Networks of web"), "{err}");
    }

    #[test]
    fn the_image_comes_from_the_spec_when_the_config_has_none() {
        let mut recreation =
            recreation(&spec(json!({}), json!({}), json!(null))).expect("valid spec");
        assert_eq!(recreation.image, "busybox:latest");
        assert_eq!(recreation.body["Image"], "busybox:latest");
        assert_eq!(recreation.image_id, "sha256:1");
        recreation.use_image("sha256:1");
        assert_eq!(recreation.body_image(), "sha256:1");
    }
}
