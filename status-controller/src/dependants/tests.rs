//! The dependants' rules, through the plan that applies them.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use shared::{
    ContainerState, ContainerStatus, DriftKind, Health, SharedNamespaces, SnapshotMember,
};

use crate::model::{ActionKind, Observed, Unexpected};
use crate::plan::{has_drift, plan, PlanSettings};

const VPN_ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NEW_VPN_ID: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("dockstate.test".to_owned(), "t1".to_owned())])
}

fn at(second: u32) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, second).single()
}

fn member(name: &str, network_owner: Option<&str>) -> SnapshotMember {
    SnapshotMember {
        name: name.into(),
        id: format!("{name}-snapshot-id"),
        image: "busybox:latest".into(),
        image_id: String::new(),
        labels: labels(),
        shares: SharedNamespaces {
            network: network_owner.map(str::to_owned),
            ..SharedNamespaces::default()
        },
    }
}

fn container(name: &str, id: &str, state: ContainerState, started: u32) -> ContainerStatus {
    ContainerStatus {
        id: id.into(),
        name: name.into(),
        image: "busybox:latest".into(),
        image_id: "sha256:1".into(),
        state,
        health: Health::None,
        exit_code: (state == ContainerState::Exited).then_some(137),
        restart_count: 0,
        created_at: None,
        started_at: at(started),
        finished_at: None,
        labels: labels(),
        ports: Vec::new(),
        in_snapshot: true,
        policy: Default::default(),
        shares: SharedNamespaces::default(),
        settling: false,
        restart_policy: None,
        exit_cause: None,
        spec_changes: Vec::new(),
        tag_image_id: None,
        spec: None,
    }
}

fn vpn(id: &str, state: ContainerState, started: u32) -> ContainerStatus {
    container("vpn", id, state, started)
}

/// `app` joined the network of the `vpn` whose id it holds.
fn app(state: ContainerState, joined: &str, started: u32) -> ContainerStatus {
    let mut app = container("app", &"a".repeat(64), state, started);
    app.shares.network = Some(joined.to_owned());
    app
}

fn settings(can_recreate: bool) -> PlanSettings {
    PlanSettings {
        unexpected: Unexpected::Stop,
        can_recreate,
        own_container_id: None,
        own_network_owner: None,
    }
}

fn planned(containers: Vec<ContainerStatus>, can_recreate: bool) -> Vec<(String, ActionKind)> {
    let snapshot = [member("app", Some("vpn")), member("vpn", None)];
    let observed = Observed {
        revision: 1,
        scope: Some("dockstate.test=t1".parse().expect("selector")),
        server_container_id: None,
        containers: containers.into_iter().map(std::sync::Arc::new).collect(),
    };
    plan(
        &snapshot,
        &observed,
        &settings(can_recreate),
        chrono::Utc::now(),
    )
    .into_iter()
    .map(|action| (action.container, action.kind))
    .collect()
}

fn kinds(pairs: &[(&str, ActionKind)]) -> Vec<(String, ActionKind)> {
    pairs
        .iter()
        .map(|(name, kind)| ((*name).to_owned(), *kind))
        .collect()
}

#[test]
fn an_owner_removed_is_recreated_first_while_its_dependant_waits() {
    let actions = planned(vec![app(ContainerState::Running, VPN_ID, 2)], true);
    assert_eq!(
        actions,
        kinds(&[("app", ActionKind::Wait), ("vpn", ActionKind::Recreate)])
    );
}

#[test]
fn a_dependant_of_a_recreated_owner_is_replaced_or_reported_without_the_token() {
    let seen = || {
        vec![
            app(ContainerState::Running, VPN_ID, 2),
            vpn(NEW_VPN_ID, ContainerState::Running, 5),
        ]
    };
    assert_eq!(
        planned(seen(), true),
        kinds(&[("app", ActionKind::Replace)])
    );
    assert_eq!(
        planned(seen(), false),
        kinds(&[("app", ActionKind::Report)])
    );
    // Stopped, it cannot be started: the engine holds the old id.
    let stopped = vec![
        app(ContainerState::Exited, VPN_ID, 2),
        vpn(NEW_VPN_ID, ContainerState::Running, 5),
    ];
    assert_eq!(
        planned(stopped, true),
        kinds(&[("app", ActionKind::Replace)])
    );
}

#[test]
fn a_dependant_of_an_owner_started_again_is_restarted_after_it() {
    // `docker kill vpn`: vpn is started, app waits for it.
    let killed = vec![
        app(ContainerState::Running, VPN_ID, 2),
        vpn(VPN_ID, ContainerState::Exited, 1),
    ];
    assert_eq!(
        planned(killed, true),
        kinds(&[("app", ActionKind::Wait), ("vpn", ActionKind::Start)])
    );
    // vpn runs again, started after app: app is restarted into its new namespace.
    let restarted = vec![
        app(ContainerState::Running, VPN_ID, 2),
        vpn(VPN_ID, ContainerState::Running, 5),
    ];
    assert_eq!(
        planned(restarted, true),
        kinds(&[("app", ActionKind::Restart)])
    );
    // Once app started after vpn: in sync.
    let in_order = vec![
        app(ContainerState::Running, VPN_ID, 6),
        vpn(VPN_ID, ContainerState::Running, 5),
    ];
    assert!(planned(in_order, true).is_empty());
}

#[test]
fn a_dependant_is_never_started_or_recreated_before_its_owner_runs() {
    let both_stopped = vec![
        app(ContainerState::Exited, VPN_ID, 2),
        vpn(VPN_ID, ContainerState::Exited, 1),
    ];
    assert_eq!(
        planned(both_stopped, true),
        kinds(&[("app", ActionKind::Wait), ("vpn", ActionKind::Start)])
    );
    assert_eq!(
        planned(vec![], true),
        kinds(&[("app", ActionKind::Wait), ("vpn", ActionKind::Recreate)])
    );
    // The owner back (under a new id): the removed dependant is recreated, joining it by name.
    assert_eq!(
        planned(vec![vpn(NEW_VPN_ID, ContainerState::Running, 5)], true),
        kinds(&[("app", ActionKind::Recreate)])
    );
}

#[test]
fn a_waiting_dependant_is_drift_with_its_reason() {
    let snapshot = [member("app", Some("vpn"))];
    let observed = Observed {
        revision: 1,
        scope: Some("dockstate.test=t1".parse().expect("selector")),
        server_container_id: None,
        containers: vec![
            app(ContainerState::Running, VPN_ID, 2).into(),
            vpn(VPN_ID, ContainerState::Exited, 1).into(),
        ],
    };
    let actions = plan(&snapshot, &observed, &settings(true), chrono::Utc::now());
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].kind, ActionKind::Wait);
    assert_eq!(actions[0].drift, Some(DriftKind::Orphaned));
    assert_eq!(actions[0].waits_for.as_deref(), Some("vpn"));
    assert!(
        actions[0].reason.contains("waits for vpn"),
        "{}",
        actions[0].reason
    );
    assert!(
        has_drift(&actions),
        "a dependant waiting for its owner is drift"
    );
}
