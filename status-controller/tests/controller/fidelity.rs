//! Recreate fidelity, judged by the engine's own view: containers made with the options people use are
//! `docker rm -f`'d and recreated by the controller, and `docker inspect` before and after is compared field
//! by field. Only what must differ is left out — the id and what is named after it, times and state, dynamic
//! addresses — each rule below with its reason. The test prints every field it compared.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use serde_json::Value;
use test_support::{
    docker, ensure_test_images, inspect_json, wait_until, TestScope, BUSYBOX_IMAGE, VOLUME_IMAGE,
};

use crate::helpers::{volume_at, wait_for_state, Options, Pair, Volumes, PATIENCE};

/// Sleeps until stopped; exits at once on SIGTERM and SIGINT (the `full` member's stop signal).
const SLEEP: &str = "trap 'exit 0' TERM INT; sleep 3600 & wait";

/// Top-level inspect fields that belong to the container instance, not to its configuration.
const INSTANCE_FIELDS: [(&str, &str); 8] = [
    ("Id", "the new container's id"),
    ("Created", "when it was made"),
    ("State", "it has just started"),
    ("ResolvConfPath", "a path named after the id"),
    ("HostnamePath", "a path named after the id"),
    ("HostsPath", "a path named after the id"),
    ("LogPath", "a path named after the id"),
    ("GraphDriver", "its own writable layer"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_container_inspects_as_the_one_removed() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let volumes = Volumes::default();
    let scope = TestScope::new();
    let labels = scope.labels_args();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    // A /24 of its own in 198.19.0.0/16 (inside 198.18.0.0/15, the only range tests may take), from the
    // scope's random id, so parallel runs rarely meet.
    let octet = u8::from_str_radix(&scope.id()[1..3], 16)?;
    let subnet = format!("198.19.{octet}.0/24");
    let (front, back, named) = (scope.name("front"), scope.name("back"), scope.name("named"));
    docker(
        &[
            &["network", "create", "--subnet", &subnet],
            &labels[..],
            &[&front],
        ]
        .concat(),
    )
    .await?;
    docker(&[&["network", "create"], &labels[..], &[&back]].concat()).await?;
    docker(&[&["volume", "create"], &labels[..], &[&named]].concat()).await?;
    let bound = tempfile::tempdir()?;
    let bound_path = bound.path().to_str().context("a UTF-8 path")?;

    let static_ip = format!("198.19.{octet}.10");
    let named_mount = format!("{named}:/named");
    let bind_mount = format!("{bound_path}:/bound:ro");
    // Flag and value on one line, the way people write them.
    #[rustfmt::skip]
    let full_args = [
        "--network", &front, "--network-alias", "full-a", "--ip", &static_ip,
        "--publish", "127.0.0.1::8080",
        "--env", "MODE=primary", "--env", "PASSWORD=hunter2",
        "--label", "tier=db",
        "--entrypoint", "/bin/busybox",
        "--user", "1000:1000", "--workdir", "/tmp",
        "--health-cmd", "/bin/busybox true", "--health-interval", "30s",
        "--restart", "on-failure:3",
        "--log-driver", "json-file", "--log-opt", "max-size=1m", "--log-opt", "max-file=2",
        "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN",
        "--ulimit", "nofile=1024:2048",
        "--init",
        "--memory", "64m", "--cpus", "0.5",
        "--read-only",
        "--stop-signal", "SIGINT", "--stop-timeout", "7",
        "--hostname", "full-host",
        "--add-host", "db.local:10.0.0.5",
        "--dns-option", "ndots:2",
        "--volume", &named_mount, "--volume", &bind_mount, "--volume", "/opt",
        "--mount", "type=volume,dst=/cache",
        "--tmpfs", "/run:size=1m",
    ];
    let full = scope.name("full");
    scope
        .run_cmd("full", VOLUME_IMAGE, &full_args, &["sh", "-c", SLEEP])
        .await?;
    docker(&["network", "connect", "--alias", "full-b", &back, &full]).await?;

    let owner = scope.name("owner");
    scope.run("owner", BUSYBOX_IMAGE, &[]).await?;
    let shares = format!("container:{owner}");
    let dependant = scope.name("netdep");
    scope
        .run("netdep", BUSYBOX_IMAGE, &["--network", &shares])
        .await?;

    let mac = scope.name("mac");
    create_with_mac(&scope, &mac, &front, "02:42:0a:d5:00:99").await?;
    docker(&["start", &mac]).await?;

    let members = [full.clone(), dependant.clone(), mac.clone()];
    let mut before = BTreeMap::new();
    for name in &members {
        wait_for_state(name, "running").await?;
        before.insert(name.clone(), inspect_json(name).await?);
    }
    for destination in ["/data", "/opt", "/cache"] {
        volumes.keep(&volume_at(&full, destination).await?);
    }
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    for name in &members {
        docker(&["rm", "-f", name]).await?;
    }
    let mut after = BTreeMap::new();
    for name in &members {
        let old_id = before[name]["Id"].clone();
        let recreated = wait_until(&format!("{name} to be recreated"), PATIENCE, || async {
            let now = inspect_json(name).await;
            Ok(now.is_ok_and(|now| now["Id"] != old_id && now["State"]["Status"] == "running"))
        })
        .await;
        if let Err(err) = recreated {
            let actions = pair.controller.actions_for(name).await?;
            bail!("{err}; its actions: {actions:#?}");
        }
        after.insert(name.clone(), inspect_json(name).await?);
    }

    let mut table = Vec::new();
    let mut differences = Vec::new();
    for name in &members {
        let (old, new) = (&before[name], &after[name]);
        let old_view = comparable(old, old).await?;
        let new_view = comparable(new, old).await?;
        let paths: BTreeSet<&String> = old_view.keys().chain(new_view.keys()).collect();
        for path in paths {
            let (was, now) = (old_view.get(path), new_view.get(path));
            let same = was == now;
            table.push(format!(
                "{:<8} {:<58} {:<5} {}",
                name.rsplit('-').next().unwrap_or(name),
                path,
                if same { "same" } else { "DIFF" },
                shown(was)
            ));
            if !same {
                differences.push(format!("{name} {path}: {} → {}", shown(was), shown(now)));
            }
        }
    }
    println!(
        "member   field                                                      result value before"
    );
    for row in &table {
        println!("{row}");
    }
    println!("left out (must differ):");
    for (field, why) in INSTANCE_FIELDS {
        println!("  {field}: {why}");
    }
    for rule in LEFT_OUT_RULES {
        println!("  {rule}");
    }
    println!(
        "{} fields compared, {} differences",
        table.len(),
        differences.len()
    );
    if !differences.is_empty() {
        bail!(
            "the recreated containers differ:\n{}",
            differences.join("\n")
        );
    }
    pair.stop().await
}

/// The rules [`comparable`] applies besides [`INSTANCE_FIELDS`], for the printed table.
const LEFT_OUT_RULES: [&str; 7] = [
    "NetworkSettings outside Networks: the sandbox, its key and the dynamic host ports (HostConfig.PortBindings is compared)",
    "Networks.*.EndpointID: a new endpoint",
    "Networks.*.IPAddress, GlobalIPv6Address and MacAddress: dynamic, unless the address was static (IPAMConfig) or the MAC configured (Config.MacAddress)",
    "Networks.*.Aliases: the alias the engine makes of the container's own short id",
    "Config.Hostname: when it was the engine's default, the old short id",
    "HostConfig.Mounts: the re-attachment, by name, of the old container's anonymous volumes — a mount added for a declared one, the source filled in for a volume mount that had none (Mounts[] is compared)",
    "Mounts[].Mode of a re-attached anonymous volume: the engine's default mode for a volume given by name",
];

/// `inspect` as `path → value`, without what must differ between a container and its recreation; `old` is
/// the container before, which says what was configured (a static address, a chosen hostname) and which
/// volumes were anonymous.
async fn comparable(inspect: &Value, old: &Value) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut view = inspect.clone();
    let object = view.as_object_mut().context("an inspect object")?;
    for (field, _) in INSTANCE_FIELDS {
        object.remove(field);
    }
    let short_id: String = inspect["Id"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    let old_short_id: String = old["Id"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    if old["Config"]["Hostname"] == old_short_id.as_str() {
        view["Config"]["Hostname"] = Value::Null;
    }
    let mac_configured = old["Config"]["MacAddress"]
        .as_str()
        .is_some_and(|mac| !mac.is_empty());
    let networks = view["NetworkSettings"]["Networks"].take();
    view["NetworkSettings"] = serde_json::json!({ "Networks": networks });
    if let Some(networks) = view["NetworkSettings"]["Networks"].as_object_mut() {
        for endpoint in networks.values_mut() {
            endpoint["EndpointID"] = Value::Null;
            let static_address = ["IPv4Address", "IPv6Address"].iter().any(|family| {
                endpoint["IPAMConfig"][family]
                    .as_str()
                    .is_some_and(|address| !address.is_empty())
            });
            if !static_address {
                endpoint["IPAddress"] = Value::Null;
                endpoint["GlobalIPv6Address"] = Value::Null;
            }
            if !mac_configured {
                endpoint["MacAddress"] = Value::Null;
            }
            if let Some(aliases) = endpoint["Aliases"].as_array() {
                let mut kept: Vec<Value> = aliases
                    .iter()
                    .filter(|alias| **alias != short_id.as_str())
                    .cloned()
                    .collect();
                kept.sort_by_key(ToString::to_string);
                endpoint["Aliases"] = Value::Array(kept);
            }
        }
    }
    let anonymous: BTreeSet<String> = anonymous_volumes(old);
    // Targets of the old container's volume mounts without a source (`--mount type=volume,dst=…`).
    let sourceless: BTreeSet<String> = old["HostConfig"]["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|mount| mount["Type"] == "volume" && mount.get("Source").is_none())
        .filter_map(|mount| mount["Target"].as_str().map(str::to_owned))
        .collect();
    if let Some(mounts) = view["HostConfig"]["Mounts"].as_array_mut() {
        let reattached = |mount: &Value| {
            mount["Type"] == "volume"
                && mount["Source"]
                    .as_str()
                    .is_some_and(|source| anonymous.contains(source))
        };
        for mount in mounts.iter_mut() {
            let target = mount["Target"].as_str().unwrap_or_default();
            if reattached(mount) && sourceless.contains(target) {
                if let Some(mount) = mount.as_object_mut() {
                    mount.remove("Source");
                }
            }
        }
        mounts.retain(|mount| !reattached(mount));
    }
    if view["HostConfig"]["Mounts"]
        .as_array()
        .is_some_and(Vec::is_empty)
    {
        view["HostConfig"]["Mounts"] = Value::Null;
    }
    if let Some(mounts) = view["Mounts"].as_array_mut() {
        for mount in mounts.iter_mut() {
            if mount["Name"]
                .as_str()
                .is_some_and(|name| anonymous.contains(name))
            {
                mount["Mode"] = Value::Null;
            }
        }
        mounts.sort_by_key(|mount| mount["Destination"].to_string());
    }
    // `container:<id>`: the id of the container whose namespace it joins is compared by that one's name.
    if let Some(target) = view["HostConfig"]["NetworkMode"]
        .as_str()
        .and_then(|mode| mode.strip_prefix("container:"))
        .map(str::to_owned)
    {
        let resolved = inspect_json(&target).await?;
        view["HostConfig"]["NetworkMode"] = Value::String(format!(
            "container:{}",
            resolved["Name"]
                .as_str()
                .unwrap_or(&target)
                .trim_start_matches('/')
        ));
    }
    let mut flat = BTreeMap::new();
    flatten("", &view, &mut flat);
    Ok(flat)
}

/// The names of the volumes the engine made up for `inspect`'s declared volumes (no bind or mount names
/// them).
fn anonymous_volumes(inspect: &Value) -> BTreeSet<String> {
    let named: BTreeSet<&str> = inspect["HostConfig"]["Binds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|bind| bind.split(':').next())
        .collect();
    inspect["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|mount| mount["Type"] == "volume")
        .filter_map(|mount| mount["Name"].as_str())
        .filter(|name| !named.contains(name) && name.len() == 64)
        .map(str::to_owned)
        .collect()
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(object) if !object.is_empty() => {
            for (key, inner) in object {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, inner, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, inner) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{index}]"), inner, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

fn shown(value: Option<&Value>) -> String {
    let text = value.map_or_else(|| "(absent)".to_owned(), ToString::to_string);
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

/// Creates `name` on `network` with a MAC address of its own, through the engine's API: at API 1.41 it lives
/// in `Config.MacAddress`, which the newer CLI will not send to an engine that old.
async fn create_with_mac(
    scope: &TestScope,
    name: &str,
    network: &str,
    mac: &str,
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "Image": BUSYBOX_IMAGE,
        "MacAddress": mac,
        "Labels": { test_support::TEST_LABEL_KEY: scope.id() },
        "HostConfig": { "NetworkMode": network },
        "NetworkingConfig": { "EndpointsConfig": { network: { "Aliases": ["macy"] } } },
    });
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
    let output = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail-with-body",
            "--unix-socket",
            &socket,
            "--header",
            "Content-Type: application/json",
            "--data",
            &body.to_string(),
            &format!("http://localhost/v1.41/containers/create?name={name}"),
        ])
        .output()
        .await?;
    if !output.status.success() {
        bail!(
            "creating {name} through the API failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
