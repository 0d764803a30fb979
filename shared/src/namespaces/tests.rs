use std::collections::BTreeMap;

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::model::{Health, LabelSelector};

const OWNER_ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NEW_OWNER_ID: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("scope".to_owned(), "in".to_owned())])
}

fn at(second: u32) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, second).single()
}

fn container(name: &str, id: &str, state: ContainerState, started: u32) -> ContainerStatus {
    ContainerStatus {
        id: id.into(),
        name: name.into(),
        image: "busybox:latest".into(),
        image_id: "sha256:1".into(),
        state,
        health: Health::None,
        exit_code: None,
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

/// `vpn` owns the network; `app` joined it (by the id the engine holds) and started after it.
fn dependant(state: ContainerState, joined: &str, started: u32) -> ContainerStatus {
    let mut app = container("app", &"a".repeat(64), state, started);
    app.shares.network = Some(joined.to_owned());
    app
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

fn snapshot() -> Vec<SnapshotMember> {
    vec![member("app", Some("vpn")), member("vpn", None)]
}

fn fate(observed: &[ContainerStatus]) -> Option<Fate> {
    let snapshot = snapshot();
    Owners::new(&snapshot, observed, &None)
        .fate("app")
        .map(|orphaning| orphaning.fate)
}

#[test]
fn modes_are_read_from_the_host_config() {
    let shares = SharedNamespaces::from_host_config(&json!({
        "NetworkMode": format!("container:{OWNER_ID}"), "IpcMode": "container:vpn", "PidMode": "host"
    }));
    assert_eq!(shares.network.as_deref(), Some(OWNER_ID));
    assert_eq!(shares.ipc.as_deref(), Some("vpn"));
    assert_eq!(shares.pid, None);
    assert_eq!(
        shares
            .iter()
            .map(|(namespace, _)| namespace)
            .collect::<Vec<_>>(),
        [Namespace::Network, Namespace::Ipc]
    );
    for plain in [
        json!({}),
        json!({"NetworkMode": "bridge", "IpcMode": "shareable"}),
    ] {
        assert!(SharedNamespaces::from_host_config(&plain).is_empty());
    }
}

#[test]
fn the_snapshot_names_owners_by_name_and_keeps_ids_it_cannot_name() {
    let spec = |name: &str, id: &str, host_config: serde_json::Value| ContainerSpec {
        name: name.into(),
        id: id.into(),
        image: "busybox:latest".into(),
        image_id: "sha256:1".into(),
        config: json!({}),
        host_config,
        networks: json!({}),
        mounts: serde_json::Value::Null,
    };
    let outsider = "3".repeat(64);
    let unknown = "4".repeat(64);
    let mut specs = vec![
        spec(
            "app",
            &"a".repeat(64),
            json!({
                "NetworkMode": format!("container:{OWNER_ID}"),
                "IpcMode": format!("container:{}", &OWNER_ID[..12]),
                "PidMode": format!("container:{outsider}"),
            }),
        ),
        spec("vpn", OWNER_ID, json!({"NetworkMode": "bridge"})),
        spec(
            "lost",
            &"5".repeat(64),
            json!({"NetworkMode": format!("container:{unknown}")}),
        ),
    ];
    assert_eq!(unnamed_owners(&specs), [outsider.clone(), unknown.clone()]);

    let names = HashMap::from([(outsider, "sidecar".to_owned())]);
    name_owners(&mut specs, &names);
    let app = specs[0].member();
    assert_eq!(app.shares.network.as_deref(), Some("vpn"));
    assert_eq!(
        app.shares.ipc.as_deref(),
        Some("vpn"),
        "a short id is named too"
    );
    assert_eq!(app.shares.pid.as_deref(), Some("sidecar"));
    assert_eq!(specs[0].host_config["NetworkMode"], "container:vpn");
    assert_eq!(specs[1].host_config["NetworkMode"], "bridge");
    assert_eq!(
        specs[2].member().shares.network.as_deref(),
        Some(unknown.as_str()),
        "an owner nobody can name keeps its id"
    );

    let named = specs.clone();
    name_owners(&mut specs, &HashMap::new());
    assert_eq!(specs, named, "naming is idempotent");
}

#[test]
fn a_dependant_that_started_after_its_running_owner_is_in_order() {
    let observed = [
        container("vpn", OWNER_ID, ContainerState::Running, 1),
        dependant(ContainerState::Running, OWNER_ID, 2),
    ];
    assert_eq!(fate(&observed), None);
}

#[test]
fn an_owner_started_again_after_the_dependant_leaves_it_behind() {
    let observed = [
        container("vpn", OWNER_ID, ContainerState::Running, 5),
        dependant(ContainerState::Running, OWNER_ID, 2),
    ];
    assert_eq!(fate(&observed), Some(Fate::Restarted));
    // A stopped dependant joins the owner's namespace of the day when it starts: nothing to say.
    let observed = [
        container("vpn", OWNER_ID, ContainerState::Running, 5),
        dependant(ContainerState::Exited, OWNER_ID, 2),
    ];
    assert_eq!(fate(&observed), None);
}

#[test]
fn an_owner_that_does_not_run_or_is_gone_is_down() {
    for state in [
        ContainerState::Exited,
        ContainerState::Paused,
        ContainerState::Restarting,
    ] {
        let observed = [
            container("vpn", OWNER_ID, state, 1),
            dependant(ContainerState::Running, OWNER_ID, 2),
        ];
        assert_eq!(fate(&observed), Some(Fate::Down { state: Some(state) }));
    }
    let gone = [dependant(ContainerState::Running, OWNER_ID, 2)];
    assert_eq!(fate(&gone), Some(Fate::Down { state: None }));
    let snapshot = snapshot();
    let orphaning = Owners::new(&snapshot, &gone, &None)
        .fate("app")
        .expect("orphaned");
    assert_eq!(orphaning.owner, "vpn");
    assert!(
        orphaning
            .detail()
            .contains("network namespace of vpn, which no longer exists"),
        "{}",
        orphaning.detail()
    );
}

#[test]
fn an_owner_recreated_under_its_name_is_replaced() {
    let observed = [
        container("vpn", NEW_OWNER_ID, ContainerState::Running, 5),
        dependant(ContainerState::Running, OWNER_ID, 2),
    ];
    assert_eq!(
        fate(&observed),
        Some(Fate::Replaced {
            id: NEW_OWNER_ID.into()
        })
    );
    // A stopped dependant of a replaced owner cannot start either: the engine holds the old id.
    let observed = [
        container("vpn", NEW_OWNER_ID, ContainerState::Running, 5),
        dependant(ContainerState::Exited, OWNER_ID, 2),
    ];
    assert!(matches!(fate(&observed), Some(Fate::Replaced { .. })));
    // Recreated but not running yet: down, so the dependant waits for it.
    let observed = [
        container("vpn", NEW_OWNER_ID, ContainerState::Created, 0),
        dependant(ContainerState::Running, OWNER_ID, 2),
    ];
    assert!(matches!(fate(&observed), Some(Fate::Down { .. })));
}

#[test]
fn a_removed_dependant_waits_for_its_owner_by_name() {
    assert_eq!(fate(&[]), Some(Fate::Down { state: None }));
    let running_owner = [container("vpn", NEW_OWNER_ID, ContainerState::Running, 5)];
    assert_eq!(fate(&running_owner), None);
}

#[test]
fn the_most_pressing_fate_comes_first() {
    let ipc_owner = container("shm", &"6".repeat(64), ContainerState::Exited, 1);
    let mut app = dependant(ContainerState::Running, OWNER_ID, 2);
    app.shares.ipc = Some(ipc_owner.id.clone());
    let observed = [
        container("vpn", OWNER_ID, ContainerState::Running, 5),
        ipc_owner,
        app,
    ];
    let snapshot = snapshot();
    let orphaning = Owners::new(&snapshot, &observed, &None)
        .fate("app")
        .expect("orphaned");
    assert_eq!(orphaning.namespace, Namespace::Ipc);
    assert_eq!(orphaning.owner, "shm");
    assert!(matches!(orphaning.fate, Fate::Down { .. }));
}

#[test]
fn an_owner_out_of_sight_is_not_judged() {
    // The owner is outside the scope and not a member: nothing can be said about it.
    let scope: Scope = Some("scope=in".parse::<LabelSelector>().expect("parses"));
    let mut outsider = container("vpn", OWNER_ID, ContainerState::Exited, 1);
    outsider.labels.clear();
    let observed = [outsider, dependant(ContainerState::Running, OWNER_ID, 2)];
    let snapshot = vec![member("app", Some("vpn"))];
    assert_eq!(Owners::new(&snapshot, &observed, &scope).fate("app"), None);
    // A member that joined nothing has no owner to lose.
    let snapshot = vec![member("app", None)];
    let observed = [container(
        "app",
        &"a".repeat(64),
        ContainerState::Running,
        1,
    )];
    assert_eq!(Owners::new(&snapshot, &observed, &None).fate("app"), None);
}

/// The shortcut for a host where nothing shares a namespace: it holds nothing, and is taken only when
/// neither side shares. A member whose container joined a namespace the snapshot does not record (a snapshot
/// taken before dockstate read namespaces), and a removed member whose snapshot does record one, are judged.
#[test]
fn owners_hold_nothing_only_when_nothing_in_scope_shares_a_namespace() {
    let plain = vec![member("app", None), member("vpn", None)];
    let running = [
        container("vpn", OWNER_ID, ContainerState::Running, 1),
        container("app", &"a".repeat(64), ContainerState::Running, 2),
    ];
    let owners = Owners::new(&plain, &running, &None);
    assert!(owners.by_id.is_empty() && owners.by_name.is_empty() && owners.members.is_empty());
    assert_eq!(owners.fate("app"), None);

    // Only the container shares: its owner is down.
    let observed = [
        container("vpn", OWNER_ID, ContainerState::Exited, 1),
        dependant(ContainerState::Running, OWNER_ID, 2),
    ];
    let fate = Owners::new(&plain, &observed, &None)
        .fate("app")
        .map(|orphaning| orphaning.fate);
    assert_eq!(
        fate,
        Some(Fate::Down {
            state: Some(ContainerState::Exited)
        })
    );

    // Only the snapshot shares: the removed member waits for its owner.
    let snapshot = snapshot();
    let fate = Owners::new(&snapshot, &[] as &[ContainerStatus], &None)
        .fate("app")
        .map(|orphaning| orphaning.fate);
    assert_eq!(fate, Some(Fate::Down { state: None }));

    // Sharing outside the scope does not count: nothing in it can be judged against it.
    let scope: Scope = Some("scope=in".parse::<LabelSelector>().expect("parses"));
    let mut outsider = dependant(ContainerState::Running, OWNER_ID, 2);
    outsider.labels.clear();
    let outside = [outsider];
    let owners = Owners::new(&plain, &outside, &scope);
    assert!(owners.by_id.is_empty(), "{owners:?}");
}
