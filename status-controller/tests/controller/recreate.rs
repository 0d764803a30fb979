//! What a recreate brings back, against the real engine: an anonymous volume's data — declared (`VOLUME`),
//! mounted without a source (`--mount type=volume,dst=…`) or a docker-compose 1.29 service's — the image by
//! its id when the tag is gone (and a plain failure when both are), a recreate cut short finished before it
//! starts (and a `created` container the controller did not make started as it is), and image references
//! compared normalised.
//!
//! Tests that must arrange a state first (a volume removed, a half-made container) run the pair with
//! `--dry-run`, so that nothing acts meanwhile, then start the controller that acts.

use std::path::PathBuf;

use anyhow::{bail, Context};
use shared::backoff::BackoffPolicy;
use status_controller::backoff::HealLimits;
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
    acting_controller_with(pair, None).await
}

/// [`acting_controller`] with other heal limits.
async fn acting_controller_with(
    pair: &Pair,
    limits: Option<HealLimits>,
) -> anyhow::Result<Controller> {
    let token = pair.token_file().context("the pair has a token")?;
    let token = token.to_str().context("a UTF-8 path")?;
    let api = pair.api.as_ref().context("status-api runs")?.address;
    let controller = Controller::start(api, &["--token-file", token], limits).await?;
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

/// An anonymous volume given as a mount without a source: the engine names it at random, and would make a
/// fresh, empty one at every create from the recorded `HostConfig.Mounts`.
const SOURCELESS_MOUNT: [&str; 2] = ["--mount", "type=volume,dst=/data"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_mounted_without_a_source_comes_back_with_its_data() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let volumes = Volumes::default();
    let scope = TestScope::new();
    let name = scope.name("db");
    let old_id = scope.run("db", BUSYBOX_IMAGE, &SOURCELESS_MOUNT).await?;
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

    docker(&["rm", "-f", &name]).await?;
    let after = wait_recreated(&name, &old_id).await?;

    assert_eq!(volume_at(&name, "/data").await?, volume, "the same volume");
    let read = docker(&["exec", &name, "/bin/busybox", "cat", "/data/table"]).await?;
    assert_eq!(read.trim(), "rows", "the data survived");
    assert_eq!(
        after["HostConfig"]["Mounts"],
        serde_json::json!([{"Type": "volume", "Source": volume, "Target": "/data"}]),
        "the recorded mount, with the volume's name filled in"
    );
    pair.controller
        .wait_for_record(&name, "recreate", "ok")
        .await?;
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_volume_is_made_afresh_and_actions_say_so() -> anyhow::Result<()> {
    ensure_test_images().await?;
    // The engine makes the named one again without the scope's label.
    let volumes = Volumes::default();
    let scope = TestScope::new();
    let named = scope.name("named");
    volumes.keep(&named);
    let named_mount = format!("{named}:/data");
    // Declared by the image, mounted without a source, and named.
    let members = [
        ("db", VOLUME_IMAGE, vec![]),
        ("mounted", BUSYBOX_IMAGE, SOURCELESS_MOUNT.to_vec()),
        (
            "keeper",
            BUSYBOX_IMAGE,
            vec!["--volume", named_mount.as_str()],
        ),
    ];
    let mut before = Vec::new();
    for (suffix, image, args) in &members {
        let name = scope.name(suffix);
        let old_id = scope.run(suffix, image, args).await?;
        wait_for_state(&name, "running").await?;
        let volume = volume_at(&name, "/data").await?;
        before.push((name, old_id, volume));
    }
    let pair = watching_pair(&scope).await?;

    for (name, _, volume) in &before {
        docker(&["rm", "-f", name]).await?;
        docker(&["volume", "rm", volume]).await?;
    }
    let controller = acting_controller(&pair).await?;

    for (name, old_id, volume) in &before {
        wait_recreated(name, old_id).await?;
        let fresh = volume_at(name, "/data").await?;
        if volume == &named {
            assert_eq!(&fresh, volume, "made again under its name");
        } else {
            assert_ne!(&fresh, volume, "a new volume in its place");
        }
        let shown = if volume == &named {
            volume.as_str()
        } else {
            &volume[..12]
        };
        let record = controller.wait_for_record(name, "recreate", "ok").await?;
        assert_mentions(&record, "/detail", &format!("its volume {shown} at /data"));
        assert_mentions(
            &record,
            "/detail",
            "was gone: the engine made a fresh, empty one",
        );
    }
    controller.stop().await?;
    pair.stop().await
}

/// A docker-compose 1.29 project of one service, `db`, in a directory of its own; `docker-compose down -v`
/// when dropped, however the test ends.
struct ComposeProject {
    project: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl ComposeProject {
    async fn up(scope: &TestScope, service: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(&file, service)?;
        let project = Self {
            project: scope.id().to_owned(),
            file,
            _dir: dir,
        };
        project.compose(&["up", "--detach", "--no-build"]).await?;
        Ok(project)
    }

    /// The service's one container.
    fn container(&self) -> String {
        format!("{}_db_1", self.project)
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> anyhow::Result<Vec<&'a str>> {
        let file = self.file.to_str().context("a UTF-8 path")?;
        Ok([
            &["--project-name", self.project.as_str(), "--file", file],
            args,
        ]
        .concat())
    }

    async fn compose(&self, args: &[&str]) -> anyhow::Result<()> {
        let output = tokio::process::Command::new("docker-compose")
            .args(self.args(args)?)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("could not run docker-compose: is docker-compose 1.29 installed?")?;
        if !output.status.success() {
            bail!(
                "docker-compose {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        if let Ok(args) = self.args(&["down", "--volumes", "--timeout", "1"]) {
            let _ = std::process::Command::new("docker-compose")
                .args(args)
                .stdin(std::process::Stdio::null())
                .output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_services_anonymous_volumes_come_back_with_their_data() -> anyhow::Result<()> {
    ensure_test_images().await?;
    // Dropped last: `down --volumes` leaves the volumes the recreated container mounts by name.
    let volumes = Volumes::default();
    let scope = TestScope::new();
    let id = scope.id();
    // compose 1.29 gives `/data` as a declared volume (`Config.Volumes`, like `-v /data`) and `/cache`, in
    // the long syntax, as a mount without a source (like `--mount type=volume,dst=/cache`).
    let service = [
        "version: \"3.7\"".to_owned(),
        "services:".to_owned(),
        "  db:".to_owned(),
        format!("    image: {BUSYBOX_IMAGE}"),
        format!("    labels: {{dockstate.test: {id}}}"),
        "    volumes:".to_owned(),
        "      - /data".to_owned(),
        "      - {type: volume, target: /cache}".to_owned(),
        "networks:".to_owned(),
        format!("  default: {{labels: {{dockstate.test: {id}}}}}"),
    ]
    .join("\n");
    let project = ComposeProject::up(&scope, &service).await?;
    let name = project.container();
    wait_for_state(&name, "running").await?;
    let old_id = inspect_json(&name).await?["Id"]
        .as_str()
        .context("an id")?
        .to_owned();
    let mut kept = Vec::new();
    for destination in ["/data", "/cache"] {
        let volume = volume_at(&name, destination).await?;
        volumes.keep(&volume);
        let write = format!("echo rows > {destination}/table");
        docker(&["exec", &name, "/bin/busybox", "sh", "-c", &write]).await?;
        kept.push((destination, volume));
    }
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    // The one container, as a mistake would remove it: not `docker-compose down`, and not `-v`.
    docker(&["rm", "-f", &name]).await?;
    wait_recreated(&name, &old_id).await?;

    for (destination, volume) in &kept {
        assert_eq!(
            &volume_at(&name, destination).await?,
            volume,
            "the same volume at {destination}"
        );
        let table = format!("{destination}/table");
        let read = docker(&["exec", &name, "/bin/busybox", "cat", &table]).await?;
        assert_eq!(read.trim(), "rows", "the data at {destination} survived");
    }
    pair.controller
        .wait_for_record(&name, "recreate", "ok")
        .await?;
    pair.stop().await?;
    drop(project);
    Ok(())
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
    // A /24 of its own in 198.19.0.0/16 (inside 198.18.0.0/15, the only range tests may take), from the
    // scope's random id, so parallel runs rarely meet.
    let octet = u8::from_str_radix(&scope.id()[1..3], 16)?;
    let subnet = format!("198.19.{octet}.0/24");
    let address = format!("198.19.{octet}.10");
    let (front, back) = (scope.name("front"), scope.name("back"));
    let back_as_made = [
        &["network", "create", "--subnet", &subnet],
        &labels[..],
        &[&back],
    ]
    .concat();
    docker(&[&["network", "create"], &labels[..], &[&front]].concat()).await?;
    docker(&back_as_made).await?;
    let name = scope.name("api");
    let member_args = ["--network", front.as_str(), "--network-alias", "api"];
    let old_id = scope.run("api", BUSYBOX_IMAGE, &member_args).await?;
    docker(&[
        "network",
        "connect",
        "--alias",
        "api-internal",
        "--ip",
        &address,
        &back,
        &name,
    ])
    .await?;
    wait_for_state(&name, "running").await?;
    let pair = watching_pair(&scope).await?;

    // `back` made again without a subnet: the engine refuses the member's static address there, so the
    // controller's own recreate stops between create and start, the container on `front` only.
    docker(&["rm", "-f", &name]).await?;
    docker(&["network", "rm", &back]).await?;
    docker(&[&["network", "create"], &labels[..], &[&back]].concat()).await?;
    // The next attempt waits 2 to 4 s, time enough to put `back` right in between.
    let limits = HealLimits {
        backoff: BackoffPolicy {
            initial: std::time::Duration::from_secs(4),
            ..BackoffPolicy::default()
        },
        ..HealLimits::default()
    };
    let controller = acting_controller_with(&pair, Some(limits)).await?;
    let record = controller
        .wait_for_record(&name, "recreate", "failed")
        .await?;
    docker(&["network", "rm", &back]).await?;
    docker(&back_as_made).await?;
    assert_mentions(&record, "/detail", "left created as");
    let half_made = inspect_json(&name).await?;
    assert_ne!(half_made["Id"], old_id.trim());

    wait_for_state(&name, "running").await?;
    let after = inspect_json(&name).await?;
    assert_eq!(after["Id"], half_made["Id"], "finished, not replaced");
    let networks: Vec<String> = after["NetworkSettings"]["Networks"]
        .as_object()
        .map(|networks| networks.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(networks, vec![back.clone(), front.clone()]);
    let endpoint = &after["NetworkSettings"]["Networks"][&back];
    assert!(
        endpoint["Aliases"].to_string().contains("api-internal"),
        "{endpoint}"
    );
    assert_eq!(endpoint["IPAddress"], address.as_str(), "{endpoint}");
    let record = controller.wait_for_record(&name, "start", "ok").await?;
    assert_mentions(&record, "/detail", &format!("connected {back} first"));
    controller.stop().await?;
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_container_the_controller_did_not_make_is_started_as_it_is() -> anyhow::Result<()>
{
    ensure_test_images().await?;
    let scope = TestScope::new();
    let labels = scope.labels_args();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let apps = scope.name("apps");
    docker(&[&["network", "create"], &labels[..], &[&apps]].concat()).await?;
    let name = scope.name("api");
    scope
        .run(
            "api",
            BUSYBOX_IMAGE,
            &["--network", &apps, "--network-alias", "api"],
        )
        .await?;
    wait_for_state(&name, "running").await?;
    let pair = watching_pair(&scope).await?;

    // Someone makes a container of that name by hand, on the default network.
    docker(&["rm", "-f", &name]).await?;
    let impostor = scope.create("api", BUSYBOX_IMAGE, &[]).await?;
    let controller = acting_controller(&pair).await?;

    wait_for_state(&name, "running").await?;
    let after = inspect_json(&name).await?;
    assert_eq!(after["Id"], impostor.trim(), "started, not replaced");
    let networks = &after["NetworkSettings"]["Networks"];
    let attached: Vec<&String> = networks
        .as_object()
        .map(|networks| networks.keys().collect())
        .unwrap_or_default();
    assert_eq!(attached, vec!["bridge"], "as it was made: {networks}");
    assert!(
        !networks.to_string().contains("\"api\""),
        "none of the member's aliases: {networks}"
    );
    let connected = docker(&[
        "network",
        "inspect",
        "--format",
        "{{len .Containers}}",
        &apps,
    ])
    .await?;
    assert_eq!(connected.trim(), "0", "nothing joined {apps}");
    let record = controller.wait_for_record(&name, "start", "ok").await?;
    assert_mentions(
        &record,
        "/detail",
        &format!("started as it is, without the snapshot's networks {apps}"),
    );
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
