//! The namespace modes of a Docker `HostConfig`: which containers' network, IPC and PID namespaces a
//! container joined (`container:<id or name>`). The vocabulary of [`namespaces`](crate::namespaces) and of the
//! API types in [`model`](crate::model), which hold it; imports nothing of the crate, so neither depends on
//! the other through it.

use serde::{Deserialize, Serialize};

/// The namespaces a container joined from another container, one field per kind: the other container.
/// In `/status` it is the id the engine holds (`HostConfig.NetworkMode` `container:<id>`); in the snapshot
/// it is the owner's name, which a recreated owner keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(example))]
pub struct SharedNamespaces {
    /// The container whose network namespace it joined (`--network container:X`); null when none.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub network: Option<String>,
    /// The container whose IPC namespace it joined (`--ipc container:X`); null when none.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub ipc: Option<String>,
    /// The container whose PID namespace it joined (`--pid container:X`); null when none.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub pid: Option<String>,
}

/// A kind of namespace one container can join from another.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::Display,
)]
pub enum Namespace {
    #[strum(serialize = "network")]
    Network,
    #[strum(serialize = "IPC")]
    Ipc,
    #[strum(serialize = "PID")]
    Pid,
}

impl Namespace {
    pub const ALL: [Namespace; 3] = [Self::Network, Self::Ipc, Self::Pid];

    /// The `HostConfig` field that holds it.
    pub fn host_config_field(self) -> &'static str {
        match self {
            Self::Network => "NetworkMode",
            Self::Ipc => "IpcMode",
            Self::Pid => "PidMode",
        }
    }
}

/// The prefix of a mode that joins another container's namespace.
pub(crate) const CONTAINER_MODE: &str = "container:";

impl SharedNamespaces {
    /// The owners named in a Docker `HostConfig` object (`NetworkMode`, `IpcMode`, `PidMode` of the form
    /// `container:<id or name>`).
    pub fn from_host_config(host_config: &serde_json::Value) -> Self {
        let mode = |namespace: Namespace| {
            host_config
                .get(namespace.host_config_field())
                .and_then(|mode| mode.as_str())
        };
        Self::from_modes(
            mode(Namespace::Network),
            mode(Namespace::Ipc),
            mode(Namespace::Pid),
        )
    }

    /// The owners named in the three modes, as the engine writes them (`container:<id>`, `bridge`, …).
    pub fn from_modes(network: Option<&str>, ipc: Option<&str>, pid: Option<&str>) -> Self {
        let owner = |mode: Option<&str>| {
            mode.and_then(|mode| mode.strip_prefix(CONTAINER_MODE))
                .filter(|owner| !owner.is_empty())
                .map(str::to_owned)
        };
        Self {
            network: owner(network),
            ipc: owner(ipc),
            pid: owner(pid),
        }
    }

    /// The owner of one namespace, if it was joined from another container.
    pub fn get(&self, namespace: Namespace) -> Option<&str> {
        match namespace {
            Namespace::Network => self.network.as_deref(),
            Namespace::Ipc => self.ipc.as_deref(),
            Namespace::Pid => self.pid.as_deref(),
        }
    }

    /// Every namespace joined, with its owner, in the order network, IPC, PID.
    pub fn iter(&self) -> impl Iterator<Item = (Namespace, &str)> {
        Namespace::ALL
            .into_iter()
            .filter_map(|namespace| Some((namespace, self.get(namespace)?)))
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}
