//! A member in another member's network namespace (`--network container:X`): `/status` names the owner's
//! id, the snapshot its name, and `/drift` reports the dependant `orphaned` whenever it has lost the
//! namespace — its owner started again after it, removed, or recreated under its name.

use std::time::Duration;

use test_support::{
    docker, ensure_test_images, inspect_json, wait_until, TestScope, BUSYBOX_IMAGE,
};

use crate::helpers::{drift_kinds, find, spawn_api, Options};

/// Each step is one event and one inspect; generous, so a loaded machine does not fail the test.
const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_dependant_that_lost_its_owner_s_namespace_is_orphaned() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (owner, dependant) = (scope.name("vpn"), scope.name("app"));
    let owner_id = scope.run("vpn", BUSYBOX_IMAGE, &[]).await?;
    scope
        .run(
            "app",
            BUSYBOX_IMAGE,
            &["--network", &format!("container:{owner}")],
        )
        .await?;
    let api = spawn_api(&scope, Options::default()).await?;

    let status = api.get_ok("/status").await?;
    let shares = &find(&status, &dependant).expect("the dependant")["shares"];
    assert_eq!(shares["network"], owner_id.as_str(), "{status}");
    assert_eq!(shares["ipc"], serde_json::Value::Null, "{status}");
    let snapshot = api.get_ok("/snapshot").await?;
    let member = snapshot["containers"]
        .as_array()
        .and_then(|members| {
            members
                .iter()
                .find(|member| member["name"] == dependant.as_str())
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        member["shares"]["network"],
        owner.as_str(),
        "by name: {snapshot}"
    );
    assert_eq!(api.get_ok("/drift").await?["in_sync"], true);

    // Started again after the dependant: the dependant is still in the old namespace.
    docker(&["restart", "--time", "1", &owner]).await?;
    api.wait_for_drift(&dependant, "orphaned", DEADLINE).await?;
    let drift = api.get_ok("/drift").await?;
    let item = drift["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["name"] == dependant.as_str()))
        .cloned()
        .unwrap_or_default();
    assert!(
        item["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("started again"),
        "{item}"
    );
    // Restarted after its owner: in its owner's namespace again.
    docker(&["restart", "--time", "1", &dependant]).await?;
    wait_until("the dependant to be in sync again", DEADLINE, || async {
        Ok(api.get_ok("/drift").await?["in_sync"] == true)
    })
    .await?;

    // Removed: orphaned beside the owner's own `removed`.
    docker(&["rm", "-f", &owner]).await?;
    api.wait_for_drift(&dependant, "orphaned", DEADLINE).await?;
    let drift = api.get_ok("/drift").await?;
    assert_eq!(drift_kinds(&drift, &owner), vec!["removed"], "{drift}");

    // Recreated under its name: the dependant still holds the old id.
    let new_owner_id = scope.run("vpn", BUSYBOX_IMAGE, &[]).await?;
    wait_until("the new owner to be seen", DEADLINE, || async {
        let drift = api.get_ok("/drift").await?;
        Ok(drift_kinds(&drift, &owner).is_empty()
            && drift_kinds(&drift, &dependant) == vec!["orphaned".to_owned()])
    })
    .await?;
    let drift = api.get_ok("/drift").await?;
    assert!(
        drift.to_string().contains(shared::short_id(&new_owner_id)),
        "names the new owner: {drift}"
    );
    assert_eq!(
        inspect_json(&dependant).await?["HostConfig"]["NetworkMode"],
        format!("container:{owner_id}"),
        "the engine still holds the old owner's id"
    );
    api.stop().await
}
