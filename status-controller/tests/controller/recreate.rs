//! What a recreate brings back, against the real engine: an anonymous volume's data, the image by its id when
//! the tag is gone (and a plain failure when both are), a recreate cut short finished before it starts, and
//! image references compared normalised.
//!
//! Tests that must arrange a state first (a volume removed, a half-made container) run the pair with
//! `--dry-run`, so that nothing acts meanwhile, then start the controller that acts.

use anyhow::Context;
use test_support::{
    container_state, docker, ensure_test_images, inspect_json, wait_until, TestScope,
    BUSYBOX_IMAGE, VOLUME_IMAGE,
};

use crate::helpers::{
    assert_mentions, volume_at, wait_for_state, Controller, Options, Pair, Volumes, PATIENCE,
};

/// A pair that only plans (`--dry-run`, with the token), for a test to arrange a state undisturbed.
pub async fn watching_pair(scope: &TestScope) -> anyhow::Result<Pair> {
    Pair::start(
        scope,
        Options {
            token: true,
            flags: vec!["--dry-run"],
            ..Options::default()
        },
    )
    .await
}

/// The controller that acts, beside `pair`'s: same status-api, same token.
pub async fn acting_controller(pair: &Pair) -> anyhow::Result<Controller> {
    let token = pair.token_file().context("the pair has a token")?;
    let token = token.to_str().context("a UTF-8 path")?;
    let api = pair.api.as_ref().context("status-api runs")?.address;
    let controller = Controller::start(api, &["--token-file", token], None).await?;
    controller.wait_ready().await?;
    Ok(controller)
}

/// Waits until a container named `name` runs under another id than `old_id`.
async fn wait_recreated(name: &str, old_id: &str) -> anyhow::Result<serde_json::Value> {
    wait_until(&format!("{name} to be recreated"), PATIENCE, || async {
        let after = inspect_json(name).await;
        Ok(after.is_ok_and(|after| {
            after["Id"] != old_id.trim() && after["State"]["Status"] == "running"
        }))
    })
    .await?;
    inspect_json(name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_volume_comes_back_with_its_data() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let volumes = Volumes::default();
    let scope = TestScope::new();
    let name = scope.name("db");
    let old_id = scope.run("db", VOLUME_IMAGE, &[]).await?;
    wait_for_state(&name, "running").await?;
    let volume = volume_at(&name, "/data").await?;
    volumes.keep(&volume);
    docker(&[
        "exec",
        &name,
        "/bin/busybox",
        "sh",
        "-c",
        "echo rows > /data/table",
    ])
    .await?;
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    // Without -v: the volume stays, as it does when a container is removed by mistake.
    docker(&["rm", "-f", &name]).await?;
    wait_recreated(&name, &old_id).await?;

    assert_eq!(volume_at(&name, "/data").await?, volume, "the same volume");
    let read = docker(&["exec", &name, "/bin/busybox", "cat", "/data/table"]).await?;
    assert_eq!(read.trim(), "rows", "the data survived");
    pair.controller
        .wait_for_record(&name, "recreate", "ok")
        .await?;
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_anonymous_volume_is_made_afresh_and_actions_say_so() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let name = scope.name("db");
    let old_id = scope.run("db", VOLUME_IMAGE, &[]).await?;
    wait_for_state(&name, "running").await?;
    let volume = volume_at(&name, "/data").await?;
    let pair = watching_pair(&scope).await?;

    docker(&["rm", "-f", &name]).await?;
    docker(&["volume", "rm", &volume]).await?;
    let controller = acting_controller(&pair).await?;
    wait_recreated(&name, &old_id).await?;

    let fresh = volume_at(&name, "/data").await?;
    assert_ne!(fresh, volume, "a new volume in its place");
    let record = controller.wait_for_record(&name, "recreate", "ok").await?;
    assert_mentions(&record, "/detail", &format!("its volume {}", &volume[..12]));
    assert_mentions(
        &record,
        "/detail",
        "was gone: the engine made a fresh, empty one",
    );
    controller.stop().await?;
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreate_whose_tag_is_gone_uses_the_image_id() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    // A tag of the test's own on the shared image: removing it takes nothing from anyone else.
    let image = format!("dockstate-test/untagged-{}:latest", scope.id());
    docker(&["tag", BUSYBOX_IMAGE, &image]).await?;
    let name = scope.name("app");
    let run = scope.run("app", &image, &[]).await;
    let old_id = match run {
        Ok(id) => id,
        Err(err) => {
            let _ = docker(&["rmi", &image]).await;
            return Err(err);
        }
    };
    wait_for_state(&name, "running").await?;
    let before = inspect_json(&name).await?;
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    docker(&["rmi", &image]).await?;
    docker(&["rm", "-f", &name]).await?;
    let after = wait_recreated(&name, &old_id).await?;

    assert_eq!(after["Image"], before["Image"], "the same image, by its id");
    assert_eq!(after["Config"]["Image"], before["Image"]);
    let record = pair
        .controller
        .wait_for_record(&name, "recreate", "ok")
        .await?;
    assert_mentions(
        &record,
        "/detail",
        &format!("image {image} is no longer on this host: created from the image it ran"),
    );
    // Made from the id it ran, it is not `changed`: the drift settles in sync and healing goes on.
    let api = pair.api.as_ref().context("status-api runs")?;
    wait_until("/drift to be in sync", PATIENCE, || async {
        let drift: serde_json::Value = reqwest::get(format!("{}/drift", api.base()))
            .await?
            .json()
            .await?;
        Ok(drift["in_sync"] == true)
    })
    .await?;
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_tagged_reference_is_used_and_actions_say_it_moved() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let image = format!("dockstate-test/moved-{}:latest", scope.id());
    docker(&["tag", BUSYBOX_IMAGE, &image]).await?;
    let untag = || async { docker(&["rmi", &image]).await };
    let name = scope.name("app");
    let old_id = match scope.run("app", &image, &[]).await {
        Ok(id) => id,
        Err(err) => {
            let _ = untag().await;
            return Err(err);
        }
    };
    let checked = async {
        wait_for_state(&name, "running").await?;
        let ran = inspect_json(&name).await?["Image"].clone();
        let pair = Pair::start(
            &scope,
            Options {
                token: true,
                ..Options::default()
            },
        )
        .await?;
        // The tag now names other bits; the recreate follows the reference, as `docker run` would.
        docker(&["tag", VOLUME_IMAGE, &image]).await?;
        let moved_to = docker(&["image", "inspect", "--format", "{{.Id}}", &image]).await?;
        docker(&["rm", "-f", &name]).await?;
        let after = wait_recreated(&name, &old_id).await?;
        assert_eq!(after["Image"], moved_to.trim());
        assert_eq!(after["Config"]["Image"], image.as_str());
        let record = pair
            .controller
            .wait_for_record(&name, "recreate", "ok")
            .await?;
        assert_mentions(
            &record,
            "/detail",
            &format!(
                "image {image} names another image now ({}) than the member ran ({})",
                moved_to.trim(),
                ran.as_str().unwrap_or("?")
            ),
        );
        pair.stop().await
    }
    .await;
    let _ = docker(&["rm", "-f", "-v", &name]).await;
    let _ = untag().await;
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreate_whose_image_and_id_are_gone_fails_plainly() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    // An image of the test's own (its own id, through a label), so removing it removes it entirely.
    let image = format!("dockstate-test/gone-{}:latest", scope.id());
    let seed = scope.create("seed", BUSYBOX_IMAGE, &[]).await?;
    docker(&["commit", seed.trim(), &image]).await?;
    let image_id = docker(&["image", "inspect", "--format", "{{.Id}}", &image]).await?;
    let name = scope.name("app");
    let run = scope.run("app", &image, &[]).await;
    if let Err(err) = run {
        let _ = docker(&["rmi", &image]).await;
        return Err(err);
    }
    wait_for_state(&name, "running").await?;
    let pair = watching_pair(&scope).await?;

    docker(&["rm", "-f", &name]).await?;
    docker(&["rmi", &image]).await?;
    let controller = acting_controller(&pair).await?;

    let record = controller
        .wait_for_record(&name, "recreate", "failed")
        .await?;
    assert_mentions(
        &record,
        "/detail",
        &format!(
            "neither image {image} nor the image it ran ({}) is on this host",
            image_id.trim()
        ),
    );
    assert_mentions(&record, "/detail", "never pulls");
    assert_eq!(container_state(&name).await?, None, "nothing was made");
    controller.stop().await?;
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreate_cut_short_is_finished_before_it_starts() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let labels = scope.labels_args();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let (front, back) = (scope.name("front"), scope.name("back"));
    docker(&[&["network", "create"], &labels[..], &[&front]].concat()).await?;
    docker(&[&["network", "create"], &labels[..], &[&back]].concat()).await?;
    let name = scope.name("api");
    let member_args = ["--network", front.as_str(), "--network-alias", "api"];
    scope.run("api", BUSYBOX_IMAGE, &member_args).await?;
    docker(&[
        "network",
        "connect",
        "--alias",
        "api-internal",
        &back,
        &name,
    ])
    .await?;
    wait_for_state(&name, "running").await?;
    let pair = watching_pair(&scope).await?;

    // What a recreate cut between create and start leaves: the container made with its first network only.
    docker(&["rm", "-f", &name]).await?;
    let half_made = scope.create("api", BUSYBOX_IMAGE, &member_args).await?;
    let controller = acting_controller(&pair).await?;

    wait_for_state(&name, "running").await?;
    let after = inspect_json(&name).await?;
    assert_eq!(after["Id"], half_made.trim(), "finished, not replaced");
    let networks: Vec<String> = after["NetworkSettings"]["Networks"]
        .as_object()
        .map(|networks| networks.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(networks, vec![back.clone(), front.clone()]);
    let aliases = after["NetworkSettings"]["Networks"][&back]["Aliases"].to_string();
    assert!(aliases.contains("api-internal"), "{aliases}");
    let record = controller.wait_for_record(&name, "start", "ok").await?;
    assert_mentions(&record, "/detail", &format!("connected {back} first"));
    controller.stop().await?;
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_references_are_compared_normalised() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let short = format!("dockstate-test/norm-{}", scope.id());
    docker(&["tag", BUSYBOX_IMAGE, &short]).await?;
    let untag = || async { docker(&["rmi", &short]).await };
    let name = scope.name("web");
    if let Err(err) = scope.run("web", &short, &[]).await {
        let _ = untag().await;
        return Err(err);
    }
    let checked = async {
        wait_for_state(&name, "running").await?;
        let pair = watching_pair(&scope).await?;
        // The same member, run again under the image's full name.
        docker(&["rm", "-f", &name]).await?;
        let full = format!("docker.io/{short}:latest");
        scope.run("web", &full, &[]).await?;
        wait_for_state(&name, "running").await?;
        let api = pair.api.as_ref().context("status-api runs")?;
        wait_until("/drift to be in sync", PATIENCE, || async {
            let drift: serde_json::Value = reqwest::get(format!("{}/drift", api.base()))
                .await?
                .json()
                .await?;
            Ok(drift["in_sync"] == true)
        })
        .await?;
        pair.stop().await
    }
    .await;
    let _ = docker(&["rm", "-f", "-v", &name]).await;
    let _ = untag().await;
    checked
}
