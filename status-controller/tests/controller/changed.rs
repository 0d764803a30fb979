//! A `changed` member is reported and left alone, unless its snapshot spec is labelled
//! `dockstate.changed=recreate`: then the controller puts it back — stops and removes the container made by
//! hand and creates the member again from its snapshot spec (the `replace` path) — and the drift clears.

use test_support::{docker, ensure_test_images, wait_until, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{stays, Options, Pair, PATIENCE};

/// `docker inspect --format FORMAT NAME`, trimmed.
async fn inspect(name: &str, format: &str) -> anyhow::Result<String> {
    Ok(docker(&["inspect", "--format", format, name])
        .await?
        .trim()
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_member_is_put_back_only_when_labelled_so() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (opted, plain) = (scope.name("opted"), scope.name("plain"));
    let member = ["--env", "FOO=one", "--memory", "64m"];
    scope
        .run(
            "opted",
            BUSYBOX_IMAGE,
            &[&member[..], &["--label", "dockstate.changed=recreate"]].concat(),
        )
        .await?;
    scope.run("plain", BUSYBOX_IMAGE, &member).await?;
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    // Both replaced by hand with another value and limit, under a maintenance hold, as an operator would:
    // else the controller recreates a member the moment it is removed.
    let token = std::fs::read_to_string(pair.token_file().expect("a token file"))?;
    let client = reqwest::Client::new();
    let held = client
        .post(pair.controller.url("/hold?for=2m&reason=replacing"))
        .bearer_auth(token.trim())
        .send()
        .await?;
    assert!(held.status().is_success(), "{}", held.status());
    let by_hand = ["--env", "FOO=two", "--memory", "128m"];
    docker(&["rm", "-f", &opted, &plain]).await?;
    let hand_made = scope
        .run(
            "opted",
            BUSYBOX_IMAGE,
            &[&by_hand[..], &["--label", "dockstate.changed=recreate"]].concat(),
        )
        .await?;
    let plain_id = scope.run("plain", BUSYBOX_IMAGE, &by_hand).await?;
    let ended = client
        .delete(pair.controller.url("/hold"))
        .bearer_auth(token.trim())
        .send()
        .await?;
    assert!(ended.status().is_success(), "{}", ended.status());

    // Labelled: put back to the snapshot's spec.
    let record = pair
        .controller
        .wait_for_record(&opted, "replace", "ok")
        .await?;
    assert_eq!(record["drift"], "changed", "{record}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("env FOO changed"), "{reason}");
    assert!(
        !reason.contains("FOO=") && !reason.contains("two"),
        "{reason}"
    );
    wait_until("the member to run again", PATIENCE, || async {
        Ok(inspect(&opted, "{{.State.Running}}").await? == "true")
    })
    .await?;
    assert_ne!(inspect(&opted, "{{.Id}}").await?, hand_made.trim());
    assert!(inspect(&opted, "{{json .Config.Env}}")
        .await?
        .contains("\"FOO=one\""));
    assert_eq!(inspect(&opted, "{{.HostConfig.Memory}}").await?, "67108864");
    let api = pair.api.as_ref().expect("status-api runs").base();
    wait_until("the put-back member to be in sync", PATIENCE, || async {
        let drift: serde_json::Value = reqwest::get(format!("{api}/drift")).await?.json().await?;
        Ok(!drift["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|item| item["name"] == opted.as_str()))
    })
    .await?;

    // Not labelled: reported, and left as it is.
    let record = pair
        .controller
        .wait_for_record(&plain, "report", "reported")
        .await?;
    assert_eq!(record["drift"], "changed", "{record}");
    stays(
        "the unlabelled member to be left as it was made",
        std::time::Duration::from_secs(2),
        async || Ok(inspect(&plain, "{{.Id}}").await? == plain_id.trim()),
    )
    .await?;
    pair.stop().await
}
