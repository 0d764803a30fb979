//! A member forgotten through status-api (`DELETE /snapshot/containers/{name}`, "stopped on purpose") is, from
//! then on, a container that is not in the baseline: still running, it is stopped as unexpected; stopped, it
//! is left down — while the other members are still healed. The controller follows the edit within its long
//! poll.

use test_support::{container_state, docker, ensure_test_images, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{stays, wait_for_state, Options, Pair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_member_is_left_down_and_the_rest_still_healed() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (kept, retired) = (scope.name("kept"), scope.name("retired"));
    scope.run("kept", BUSYBOX_IMAGE, &[]).await?;
    scope.run("retired", BUSYBOX_IMAGE, &[]).await?;
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;
    let api = pair.api.as_ref().expect("status-api runs").base();
    let token = std::fs::read_to_string(pair.token_file().expect("a token file"))?;

    let forgotten = reqwest::Client::new()
        .delete(format!("{api}/snapshot/containers/{retired}"))
        .bearer_auth(token.trim())
        .send()
        .await?;
    assert_eq!(forgotten.status(), reqwest::StatusCode::OK);

    // Still running when forgotten: unexpected from then on, so the controller stops it (`--unexpected
    // stop`, the default).
    let record = pair
        .controller
        .wait_for_record(&retired, "stop", "ok")
        .await?;
    assert_eq!(record["drift"], "unexpected", "{record}");
    wait_for_state(&retired, "exited").await?;

    // The member it still keeps is healed; the forgotten one stays down.
    docker(&["stop", &kept]).await?;
    wait_for_state(&kept, "running").await?;
    stays(
        "the forgotten member to stay down",
        std::time::Duration::from_secs(2),
        async || Ok(container_state(&retired).await?.as_deref() == Some("exited")),
    )
    .await?;
    let actions = pair.controller.actions_for(&retired).await?;
    assert_eq!(actions.len(), 1, "one stop, nothing else: {actions:?}");
    pair.stop().await
}
