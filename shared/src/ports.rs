//! A container's ports as `docker ps` shows them, read from the engine's `NetworkSettings.Ports`.

use serde::{Deserialize, Serialize};

/// One port of a running container, as `docker ps` lists it (`0.0.0.0:8080->80/tcp` is
/// `{"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80, "protocol": "tcp"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct PortMapping {
    /// The host address it is published on (`0.0.0.0`, `::`, `127.0.0.1`); absent for a port that is only
    /// exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub host_ip: Option<String>,
    /// The host port it is published on; absent for a port that is only exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub host_port: Option<u16>,
    /// The port inside the container.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

impl PortMapping {
    /// The ports of an engine's `NetworkSettings.Ports` (`"80/tcp"` → its bindings, null when only exposed),
    /// sorted as `/status` shows them. A key or a host port that is not a port number is left out.
    pub fn from_engine<'a>(
        ports: impl IntoIterator<Item = (&'a str, Option<Vec<(Option<&'a str>, Option<&'a str>)>>)>,
    ) -> Vec<Self> {
        let mut mapped = Vec::new();
        for (key, bindings) in ports {
            let (port, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
            let Ok(container_port) = port.parse::<u16>() else {
                continue;
            };
            let exposed = Self {
                host_ip: None,
                host_port: None,
                container_port,
                protocol: protocol.to_owned(),
            };
            let bindings = bindings.unwrap_or_default();
            if bindings.is_empty() {
                mapped.push(exposed);
                continue;
            }
            for (host_ip, host_port) in bindings {
                let Some(host_port) = host_port.and_then(|port| port.parse::<u16>().ok()) else {
                    continue;
                };
                // An empty address (Podman's, for one published on every address) is every address.
                let host_ip = host_ip.filter(|ip| !ip.is_empty()).unwrap_or("0.0.0.0");
                mapped.push(Self {
                    host_ip: Some(host_ip.to_owned()),
                    host_port: Some(host_port),
                    ..exposed.clone()
                });
            }
        }
        mapped.sort_by(|a, b| {
            (a.container_port, &a.protocol, &a.host_ip, a.host_port).cmp(&(
                b.container_port,
                &b.protocol,
                &b.host_ip,
                b.host_port,
            ))
        });
        mapped.dedup();
        mapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_as_docker_ps_lists_them_sorted() {
        let published = |ip: &'static str, port: &'static str| (Some(ip), Some(port));
        let ports = PortMapping::from_engine([
            ("9000/tcp", None),
            (
                "80/tcp",
                Some(vec![published("::", "8080"), published("0.0.0.0", "8080")]),
            ),
            ("53/udp", Some(vec![published("", "32768")])),
            ("80/udp", Some(vec![])),
            ("x/tcp", None),
            ("81/tcp", Some(vec![published("0.0.0.0", "")])),
        ]);
        let json = serde_json::to_value(&ports).expect("json");
        assert_eq!(
            json,
            serde_json::json!([
                {"host_ip": "0.0.0.0", "host_port": 32768, "container_port": 53, "protocol": "udp"},
                {"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80, "protocol": "tcp"},
                {"host_ip": "::", "host_port": 8080, "container_port": 80, "protocol": "tcp"},
                {"container_port": 80, "protocol": "udp"},
                {"container_port": 9000, "protocol": "tcp"},
            ])
        );
        let back: Vec<PortMapping> = serde_json::from_value(json).expect("parses back");
        assert_eq!(back, ports);
    }
}
