//! The example of every answer type in `/openapi.json`, so `/docs` shows what a real answer looks like and a
//! generated client's documentation has one too. One small, consistent host: `web` running and in the
//! snapshot, `worker` exited and in it, `migrate` a job in it that finished, `api` in it but replaced by hand
//! with another environment variable and memory limit, `adhoc` running outside it.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use poem_openapi::types::Example;
use serde_json::json;

use crate::model::{
    ContainerSpec, ContainerState, ContainerStatus, DriftItem, DriftKind, DriftResponse, Engine,
    EngineKind, ErrorBody, Health, Policy, RestartPolicy, SnapshotMember, SnapshotSummary,
    StatusResponse,
};
use crate::namespaces::SharedNamespaces;
use crate::ports::PortMapping;
use crate::spec_summary::{ChangeKind, SpecChange};

const WEB_ID: &str = "4f1c2a9be3d7c6a5b4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1";
const WORKER_ID: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";
const IMAGE_ID: &str = "sha256:1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a";

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, hour, minute, 0)
        .single()
        .expect("a valid time")
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("team".to_owned(), "web".to_owned())])
}

impl Example for ContainerStatus {
    fn example() -> Self {
        Self {
            id: WEB_ID.to_owned(),
            name: "web".to_owned(),
            image: "nginx:1.27".to_owned(),
            image_id: IMAGE_ID.to_owned(),
            state: ContainerState::Running,
            health: Health::Healthy,
            exit_code: None,
            restart_count: 0,
            created_at: Some(at(9, 0)),
            started_at: Some(at(9, 1)),
            finished_at: None,
            labels: labels(),
            ports: vec![PortMapping::example()],
            in_snapshot: true,
            policy: Policy::Heal,
            settling: false,
            restart_policy: Some(RestartPolicy::UnlessStopped),
            exit_cause: None,
            shares: SharedNamespaces::default(),
            spec_changes: Vec::new(),
            tag_image_id: Some(IMAGE_ID.to_owned()),
            spec: None,
        }
    }
}

impl Example for PortMapping {
    fn example() -> Self {
        Self {
            host_ip: Some("0.0.0.0".to_owned()),
            host_port: Some(8080),
            container_port: 80,
            protocol: "tcp".to_owned(),
        }
    }
}

impl Example for Engine {
    fn example() -> Self {
        Self {
            kind: EngineKind::Docker,
            version: "27.3.1".to_owned(),
            api_version: "1.47".to_owned(),
        }
    }
}

impl Example for StatusResponse {
    fn example() -> Self {
        Self {
            revision: 42,
            observed_at: at(10, 0),
            snapshot_taken_at: Some(at(9, 5)),
            scope: Some("team=web".to_owned()),
            events_live: true,
            engine: Some(Engine::example()),
            resync_interval_seconds: 30,
            server_container_id: None,
            engine_reachable: true,
            ready: true,
            not_ready_reason: None,
            event_backlog: 0,
            event_lag_seconds: 0.0,
            containers: vec![ContainerStatus::example()],
        }
    }
}

impl Example for SnapshotMember {
    fn example() -> Self {
        Self {
            name: "web".to_owned(),
            id: WEB_ID.to_owned(),
            image: "nginx:1.27".to_owned(),
            image_id: IMAGE_ID.to_owned(),
            labels: labels(),
            shares: SharedNamespaces::default(),
        }
    }
}

impl Example for SnapshotSummary {
    fn example() -> Self {
        Self {
            taken_at: at(9, 5),
            scope: Some("team=web".to_owned()),
            containers: vec![SnapshotMember::example()],
        }
    }
}

impl Example for ContainerSpec {
    fn example() -> Self {
        Self {
            name: "web".to_owned(),
            id: WEB_ID.to_owned(),
            image: "nginx:1.27".to_owned(),
            image_id: IMAGE_ID.to_owned(),
            config: json!({
                "Image": "nginx:1.27",
                "Env": ["NGINX_PORT=80"],
                "Labels": {"team": "web"},
                "ExposedPorts": {"80/tcp": {}}
            }),
            host_config: json!({
                "NetworkMode": "bridge",
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8081"}]},
                "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}
            }),
            networks: json!({"bridge": {"Aliases": null}}),
            mounts: json!([{
                "Type": "volume", "Name": "web-cache", "Source": "/var/lib/docker/volumes/web-cache/_data",
                "Destination": "/var/cache/nginx", "Driver": "local", "Mode": "z", "RW": true,
                "Propagation": ""
            }]),
        }
    }
}

impl Example for DriftItem {
    fn example() -> Self {
        Self {
            kind: DriftKind::Stopped,
            name: "worker".to_owned(),
            id: WORKER_ID.to_owned(),
            state: Some(ContainerState::Exited),
            policy: Policy::Heal,
            detail: "in the snapshot but exited (exit code 137)".to_owned(),
            changes: Vec::new(),
            since: Some(at(9, 41)),
        }
    }
}

impl Example for DriftResponse {
    fn example() -> Self {
        Self {
            revision: 42,
            in_sync: false,
            items: vec![
                DriftItem::example(),
                DriftItem {
                    kind: DriftKind::Unexpected,
                    name: "adhoc".to_owned(),
                    id: WEB_ID.chars().rev().collect(),
                    state: Some(ContainerState::Running),
                    policy: Policy::Heal,
                    detail: "running from busybox:latest but not in the snapshot".to_owned(),
                    changes: Vec::new(),
                    since: None,
                },
                changed_api(),
                DriftItem {
                    kind: DriftKind::Completed,
                    name: "migrate".to_owned(),
                    id: WORKER_ID.chars().rev().collect(),
                    state: Some(ContainerState::Exited),
                    policy: Policy::Heal,
                    detail: "exited with code 0 by itself and its restart policy `no` would not restart \
                             it: a job that finished, reported and never started again; if it is meant to \
                             run, start it with `docker start migrate`"
                        .to_owned(),
                    changes: Vec::new(),
                    since: None,
                },
            ],
        }
    }
}

impl Example for SpecChange {
    fn example() -> Self {
        SpecChange {
            field: "memory".to_owned(),
            key: None,
            change: ChangeKind::Changed,
            snapshot: Some("256MiB".to_owned()),
            current: Some("512MiB".to_owned()),
        }
    }
}

/// `api`, replaced by hand with another value of `DB_PASSWORD` (never shown) and memory limit.
fn changed_api() -> DriftItem {
    let changes = vec![
        SpecChange {
            field: "env".to_owned(),
            key: Some("DB_PASSWORD".to_owned()),
            change: ChangeKind::Changed,
            snapshot: None,
            current: None,
        },
        SpecChange::example(),
    ];
    DriftItem {
        kind: DriftKind::Changed,
        name: "api".to_owned(),
        id: IMAGE_ID.trim_start_matches("sha256:").chars().rev().collect(),
        state: Some(ContainerState::Running),
        policy: Policy::Heal,
        detail: "its spec differs from the snapshot's in 2 fields: env DB_PASSWORD changed, memory 256MiB → 512MiB"
            .to_owned(),
        changes,
        since: None,
    }
}

impl Example for SharedNamespaces {
    /// A VPN sidecar's dependant: it joined the network namespace of `vpn`.
    fn example() -> Self {
        Self {
            network: Some("vpn".to_owned()),
            ipc: None,
            pid: None,
        }
    }
}

impl Example for ErrorBody {
    fn example() -> Self {
        Self {
            error: "bad_request".to_owned(),
            message: "query parameter `wait` is `99`: use a whole number of seconds from 0 to 60"
                .to_owned(),
        }
    }
}
