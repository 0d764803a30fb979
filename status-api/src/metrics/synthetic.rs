//! A made-up host for the metrics' tests: containers and a snapshot put straight into a store through its public
//! constructors, so a scrape can be rendered at any size without an engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use poem_openapi::types::Example;
use shared::{ContainerSpec, ContainerState, ContainerStatus};
use tokio::sync::watch;

use crate::baseline::Baseline;
use crate::snapshot::{Member, Snapshot, FORMAT};
use crate::store::{Store, Writer};

/// A container on the made-up host.
pub(super) struct Made {
    pub name: String,
    pub state: ContainerState,
    /// Its `dockstate.policy` label, if any.
    pub policy: Option<&'static str>,
}

impl Made {
    pub fn new(name: impl Into<String>, state: ContainerState) -> Self {
        Self {
            name: name.into(),
            state,
            policy: None,
        }
    }
}

/// The host: `members` make up the snapshot (whole host, no scope), `containers` are what runs now. Keep
/// the writer to change the host later.
pub(super) struct Host {
    pub writer: Writer,
    /// Keeps the baseline's channel open.
    _baselines: watch::Sender<Option<Arc<Baseline>>>,
}

impl Host {
    pub fn new(members: &[&str], containers: &[Made]) -> Self {
        let snapshot = Snapshot {
            format: FORMAT,
            taken_at: Utc::now(),
            scope: None,
            containers: members
                .iter()
                .map(|name| {
                    Member::new(&ContainerSpec {
                        name: (*name).to_owned(),
                        id: id_of(name),
                        image: "busybox:latest".to_owned(),
                        image_id: String::new(),
                        config: serde_json::json!({"Labels": {}}),
                        host_config: serde_json::json!({}),
                        networks: serde_json::json!({}),
                        mounts: serde_json::Value::Null,
                    })
                })
                .collect(),
        };
        let (baselines, receiver) = watch::channel(Some(Arc::new(Baseline::new(snapshot))));
        let writer = Writer::new(None, Duration::from_secs(30), receiver);
        writer.set_events_live(true);
        let host = Self {
            writer,
            _baselines: baselines,
        };
        host.run(containers);
        host
    }

    /// What runs now, in place of what ran.
    pub fn run(&self, containers: &[Made]) {
        self.writer.replace_all(
            containers
                .iter()
                .map(|made| (id_of(&made.name), status(made)))
                .collect::<HashMap<_, _>>(),
        );
    }

    pub fn store(&self) -> Store {
        self.writer.store()
    }
}

fn status(made: &Made) -> ContainerStatus {
    let example = ContainerStatus::example();
    let labels = made
        .policy
        .map(|policy| ("dockstate.policy".to_owned(), policy.to_owned()))
        .into_iter()
        .collect();
    ContainerStatus {
        id: id_of(&made.name),
        name: made.name.clone(),
        image: "busybox:latest".to_owned(),
        state: made.state,
        exit_code: (made.state == ContainerState::Exited).then_some(1),
        policy: shared::Policy::from_labels(&labels),
        labels,
        health: shared::Health::None,
        ..example
    }
}

/// A 64-hex id made from the name.
fn id_of(name: &str) -> String {
    let mut hex: String = name.bytes().map(|byte| format!("{byte:02x}")).collect();
    hex.truncate(64);
    format!("{hex:0<64}")
}
