//! How a removed container is made again: its snapshot spec (the engine's own `Config`, `HostConfig` and
//! networks from inspect) turned into a create request. Pure, so every rule is unit-tested.
//!
//! What carries over: name, image, command, entrypoint, environment, labels, user, working directory,
//! healthcheck, exposed ports, and the whole `HostConfig` (binds, mounts, port bindings, restart policy,
//! network mode, limits). What does not: anything the engine assigned at run time — the endpoint's id,
//! address, gateway and MAC, the alias and hostname it derived from the old id — so the new container gets
//! its own. A container that joins another's network (`container:<owner>`, the owner by name in the
//! snapshot) takes the owner's hostname and ports, so it is created without any of its own.

use std::collections::HashMap;

use bollard::models::{
    ContainerConfig, ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig,
};
use shared::ContainerSpec;

/// A network by name, and the endpoint to make on it.
pub type Network = (String, EndpointSettings);

/// What to send to the engine to recreate one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Recreation {
    pub name: String,
    pub image: String,
    /// The create body: configuration, host configuration, and at most one network (API 1.41 takes only one
    /// at create).
    pub body: ContainerCreateBody,
    /// The other networks, to connect after create, in name order.
    pub extra_networks: Vec<Network>,
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
    let config: ContainerConfig =
        serde_json::from_value(spec.config.clone()).map_err(parse_error("Config"))?;
    let host_config: HostConfig =
        serde_json::from_value(spec.host_config.clone()).map_err(parse_error("HostConfig"))?;
    let networks: Option<HashMap<String, EndpointSettings>> =
        serde_json::from_value(spec.networks.clone()).map_err(parse_error("Networks"))?;
    let networks = networks.unwrap_or_default();

    let short_id: String = spec.id.chars().take(12).collect();
    let joins_network = joins_another_network(host_config.network_mode.as_deref());
    let (primary, extra_networks) =
        split_networks(host_config.network_mode.as_deref(), networks, &short_id);
    let image = config.image.clone().unwrap_or_else(|| spec.image.clone());
    let body = ContainerCreateBody {
        // The engine names a container's host after its id unless told otherwise: a new container gets a new one.
        hostname: config.hostname.filter(|hostname| *hostname != short_id),
        domainname: config.domainname,
        user: config.user,
        attach_stdin: config.attach_stdin,
        attach_stdout: config.attach_stdout,
        attach_stderr: config.attach_stderr,
        exposed_ports: config.exposed_ports,
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: config.env,
        cmd: config.cmd,
        healthcheck: config.healthcheck,
        args_escaped: config.args_escaped,
        image: Some(image.clone()),
        volumes: config.volumes,
        working_dir: config.working_dir,
        entrypoint: config.entrypoint,
        network_disabled: config.network_disabled,
        on_build: config.on_build,
        labels: config.labels,
        stop_signal: config.stop_signal,
        stop_timeout: config.stop_timeout,
        shell: config.shell,
        host_config: Some(host_config),
        networking_config: primary.map(|(name, endpoint)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(name, endpoint)])),
        }),
    };
    let body = if joins_network {
        without_own_network_settings(body)
    } else {
        body
    };
    Ok(Recreation {
        name: spec.name.clone(),
        image,
        body,
        extra_networks,
    })
}

/// Whether the container joins another container's network namespace (`container:<name or id>`; the
/// snapshot holds the owner's name, which the engine resolves to the owner's id of the day at create).
fn joins_another_network(network_mode: Option<&str>) -> bool {
    network_mode.is_some_and(|mode| mode.starts_with("container:"))
}

/// A container in another's network namespace has that container's hostname and ports: inspect shows the
/// owner's (an id-derived hostname of the old owner, its exposed ports), and the engine refuses a create
/// that sets them beside `container:` ("conflicting options").
fn without_own_network_settings(body: ContainerCreateBody) -> ContainerCreateBody {
    ContainerCreateBody {
        hostname: None,
        domainname: None,
        exposed_ports: None,
        ..body
    }
}

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
    let wanted = if mode == "default" { "bridge" } else { mode };
    let primary_at = networks
        .iter()
        .position(|(name, _)| name == wanted)
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

    fn spec(
        config: serde_json::Value,
        host_config: serde_json::Value,
        networks: serde_json::Value,
    ) -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            id: OLD_ID.into(),
            image: "busybox:latest".into(),
            image_id: "sha256:1".into(),
            config,
            host_config,
            networks,
        }
    }

    fn engine_endpoint(network_id: &str, aliases: serde_json::Value) -> serde_json::Value {
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
        let body = &recreation.body;
        assert_eq!(recreation.name, "web");
        assert_eq!(recreation.image, "busybox:latest");
        assert_eq!(body.hostname, None, "the id-derived hostname is dropped");
        assert_eq!(body.image.as_deref(), Some("busybox:latest"));
        assert_eq!(body.user.as_deref(), Some("1000"));
        assert_eq!(body.env, Some(vec!["A=1".into(), "SECRET=x".into()]));
        assert_eq!(
            body.cmd,
            Some(vec!["sh".into(), "-c".into(), "sleep 1".into()])
        );
        assert_eq!(body.entrypoint, Some(vec!["/init".into()]));
        assert_eq!(body.working_dir.as_deref(), Some("/srv"));
        assert_eq!(body.labels.as_ref().map(HashMap::len), Some(2));
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".into()]));
        assert_eq!(body.volumes, Some(vec!["/data".into()]));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        assert!(body.healthcheck.is_some());
        let host = body.host_config.as_ref().expect("host config");
        assert_eq!(host.binds, Some(vec!["vol:/data".into()]));
        let restart = host.restart_policy.as_ref().expect("restart policy");
        assert_eq!(restart.maximum_retry_count, Some(3));
        assert!(host
            .port_bindings
            .as_ref()
            .is_some_and(|ports| ports.contains_key("80/tcp")));

        let endpoints = body
            .networking_config
            .as_ref()
            .and_then(|networking| networking.endpoints_config.as_ref())
            .expect("one network");
        let bridge = endpoints.get("bridge").expect("the bridge");
        assert_eq!(
            bridge,
            &EndpointSettings::default(),
            "runtime fields are dropped"
        );
        assert!(recreation.extra_networks.is_empty());
    }

    #[test]
    fn a_hostname_someone_chose_is_kept() {
        let recreation = recreation(&spec(
            json!({"Hostname": "db-primary", "Image": "busybox:latest"}),
            json!({}),
            json!({}),
        ))
        .expect("valid spec");
        assert_eq!(recreation.body.hostname.as_deref(), Some("db-primary"));
        assert!(recreation.body.networking_config.is_none());
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
        let endpoints = recreation
            .body
            .networking_config
            .and_then(|networking| networking.endpoints_config)
            .expect("one network");
        assert_eq!(endpoints.len(), 1);
        assert_eq!(
            endpoints.get("front").and_then(|e| e.aliases.clone()),
            Some(vec!["web".to_owned()]),
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
            assert!(recreation.body.networking_config.is_none(), "{mode}");
            assert!(recreation.extra_networks.is_empty(), "{mode}");
            assert_eq!(
                recreation
                    .body
                    .host_config
                    .and_then(|host| host.network_mode)
                    .as_deref(),
                Some(mode)
            );
        }
    }

    #[test]
    fn a_dependant_joins_its_owner_by_name_without_a_hostname_or_ports_of_its_own() {
        let recreation = recreation(&spec(
            json!({"Hostname": "847b603c36ca", "Image": "busybox:latest", "ExposedPorts": {"80/tcp": {}}}),
            json!({"NetworkMode": "container:vpn", "IpcMode": "container:vpn", "PidMode": "container:vpn"}),
            json!({}),
        ))
        .expect("valid spec");
        let body = &recreation.body;
        assert_eq!(body.hostname, None, "the old owner's hostname is dropped");
        assert_eq!(body.exposed_ports, None);
        let host = body.host_config.as_ref().expect("host config");
        assert_eq!(host.network_mode.as_deref(), Some("container:vpn"));
        assert_eq!(host.ipc_mode.as_deref(), Some("container:vpn"));
        assert_eq!(host.pid_mode.as_deref(), Some("container:vpn"));
    }

    #[test]
    fn a_malformed_spec_names_its_part() {
        let err = recreation(&spec(json!({"Env": "not a list"}), json!({}), json!({})))
            .expect_err("malformed");
        assert!(err.to_string().contains("Config of web"), "{err}");
        let err =
            recreation(&spec(json!({}), json!({"Binds": 3}), json!({}))).expect_err("malformed");
        assert!(err.to_string().contains("HostConfig of web"), "{err}");
    }

    #[test]
    fn the_image_comes_from_the_spec_when_the_config_has_none() {
        let recreation = recreation(&spec(json!({}), json!({}), json!(null))).expect("valid spec");
        assert_eq!(recreation.image, "busybox:latest");
        assert_eq!(recreation.body.image.as_deref(), Some("busybox:latest"));
    }
}
