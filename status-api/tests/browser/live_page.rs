//! The live page at `/` in a real browser: three members run and are in sync; one is killed and the page, without
//! reloading, shows it exited and as `stopped` drift; a real status-controller heals it and the page shows it
//! running, healthy and in sync again. A member labelled with markup shows the label as text. No console error,
//! no request to any host but the server, no horizontal scroll on a phone. Last, status-api stops: the page
//! says it is disconnected and retries with backoff rather than in a tight loop.
//!
//! Screenshots (a desktop window and a 390 × 844 phone) go to `target/ci-artifacts/browser/live-page/`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use test_support::{
    docker, ensure_test_images, wait_until, StatusApiOptions, StatusApiServer,
    StatusControllerServer, TestScope, BUSYBOX_IMAGE, HEALTH_IMAGE,
};

use crate::driver::{Browser, Tools};
use crate::{artifacts_dir, open, page_faults, UI_TIMEOUT};

/// A label value that would run script if the page ever parsed values as markup.
const HOSTILE: &str = "<img src=x onerror=\"window.__dockstateXss=1\">";

/// How long a heal may take on a loaded two-core machine: the long poll makes it fast, the machine may not.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the page shows, read from its visible text.
#[derive(Debug, Deserialize)]
struct Shown {
    verdict: String,
    banner: Option<String>,
    containers: Vec<Row>,
    drift: Vec<Item>,
    /// A value the test left on `window` after the first render: gone if the page reloaded.
    marker: Option<String>,
    /// Set only if the hostile label ran as script.
    xss: Option<serde_json::Value>,
    /// `<img>` elements inside the page's main part: there are none unless a value became markup.
    images: usize,
    labels: Vec<String>,
    /// The document's width beyond the viewport's: a page that scrolls sideways.
    overflow: i64,
}

#[derive(Debug, Deserialize)]
struct Row {
    name: String,
    state: String,
    health: String,
    in_snapshot: String,
}

#[derive(Debug, Deserialize)]
struct Item {
    kind: String,
    name: String,
}

impl Shown {
    fn row(&self, name: &str) -> Option<&Row> {
        self.containers.iter().find(|row| row.name == name)
    }

    fn in_sync_with(&self, members: &[String]) -> bool {
        self.verdict == "in sync"
            && self.drift.is_empty()
            && members.iter().all(|name| {
                self.row(name).is_some_and(|row| {
                    row.state == "running" && row.in_snapshot == "yes" && row.health != "starting"
                })
            })
    }
}

/// The page's state, as a person would read it off the screen.
const READ_PAGE: &str = r##"
const text = (node) => (node ? node.textContent.trim() : "");
const banner = document.getElementById("banner");
return {
  verdict: text(document.getElementById("verdict")),
  banner: banner.hidden ? null : text(banner),
  containers: [...document.querySelectorAll("#containers tbody tr")].map((row) => ({
    name: text(row.querySelector("td.name > span")),
    state: text(row.children[1]),
    health: text(row.children[2]),
    in_snapshot: text(row.children[4]),
  })),
  drift: [...document.querySelectorAll("#drift li")].map((item) => ({
    kind: text(item.querySelector(".kind")),
    name: text(item.querySelector(".name")),
  })),
  marker: window.__dockstateMarker || null,
  xss: window.__dockstateXss || null,
  images: document.querySelectorAll("main img").length,
  labels: [...document.querySelectorAll("details.labels li")].map(text),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
};
"##;

async fn read(browser: &Browser) -> anyhow::Result<Shown> {
    let value = browser.client.execute(READ_PAGE, vec![]).await?;
    serde_json::from_value(value.clone()).with_context(|| format!("reading the page: {value}"))
}

/// Waits until `condition` holds for what the page shows; the last view in the error when it never does.
async fn until(
    browser: &Browser,
    what: &str,
    limit: Duration,
    condition: impl Fn(&Shown) -> bool,
) -> anyhow::Result<Shown> {
    let outcome = wait_until(what, limit, || async {
        Ok(condition(&read(browser).await?))
    })
    .await;
    let shown = read(browser).await?;
    match outcome {
        Ok(_) => Ok(shown),
        Err(e) => bail!("{e:#}; the page shows {shown:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_a_killed_member_as_drift_until_it_is_healed() -> anyhow::Result<()> {
    // Arrange: three members, one with a healthcheck and one with a label made of markup.
    let tools = Tools::find()?;
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("web", HEALTH_IMAGE, &[]).await?;
    let note = format!("note={HOSTILE}");
    scope.run("db", BUSYBOX_IMAGE, &["--label", &note]).await?;
    scope.run("cache", BUSYBOX_IMAGE, &[]).await?;
    let server = StatusApiServer::start(StatusApiOptions::scoped(scope.scope())).await?;

    let shots = artifacts_dir("live-page")?;
    let browser = Browser::start(&tools).await?;
    let outcome = watch(&browser, server, &scope, &shots).await;
    if outcome.is_err() {
        let _ = browser.screenshot(&shots.join("failed.png")).await;
    }
    let closed = browser.close().await;
    println!("screenshots: {}", shots.display());
    outcome?;
    closed
}

/// Act and assert: in sync, killed, healed, the same page on a phone, then status-api gone.
async fn watch(
    browser: &Browser,
    server: StatusApiServer,
    scope: &TestScope,
    shots: &Path,
) -> anyhow::Result<()> {
    let base = server.base();
    let members = ["web", "db", "cache"].map(|suffix| scope.name(suffix));
    let web = scope.name("web");
    browser.viewport(1280, 640, false).await?;
    open(browser, &format!("{base}/")).await?;

    let first = until(
        browser,
        "the page to show three members in sync",
        UI_TIMEOUT,
        |shown| shown.in_sync_with(&members),
    )
    .await?;
    anyhow::ensure!(
        first
            .labels
            .iter()
            .any(|label| label == &format!("note={HOSTILE}")),
        "db's label is shown as the text it is: {:?}",
        first.labels
    );
    anyhow::ensure!(
        first.xss.is_none() && first.images == 0,
        "a label became markup: {first:?}"
    );
    // Left on the page's window: a reload would lose it.
    browser
        .client
        .execute("window.__dockstateMarker = 'loaded once'", vec![])
        .await?;
    browser.screenshot(&shots.join("in-sync.png")).await?;

    // Act: kill a member. The page learns of it through the long poll.
    docker(&["kill", &web]).await?;
    let drifted = until(
        browser,
        "the page to show web stopped",
        UI_TIMEOUT,
        |shown| {
            shown.verdict == "1 drift"
                && shown
                    .drift
                    .iter()
                    .any(|item| item.kind == "stopped" && item.name == web)
                && shown.row(&web).is_some_and(|row| row.state == "exited")
        },
    )
    .await?;
    browser.screenshot(&shots.join("drift.png")).await?;
    anyhow::ensure!(
        drifted.marker.as_deref() == Some("loaded once"),
        "the page reloaded to show the drift"
    );

    // A real status-controller heals it; the page follows.
    let controller = StatusControllerServer::start(&server, &[]).await?;
    let healed = until(
        browser,
        "the page to show web running, healthy and in sync again",
        HEAL_TIMEOUT,
        |shown| {
            shown.in_sync_with(&members)
                && shown.row(&web).is_some_and(|row| row.health == "healthy")
        },
    )
    .await?;
    browser.screenshot(&shots.join("healed.png")).await?;
    controller.stop().await?;
    anyhow::ensure!(
        healed.marker.as_deref() == Some("loaded once"),
        "the page reloaded to show the heal"
    );
    anyhow::ensure!(healed.banner.is_none(), "{:?}", healed.banner);

    // The same page on a phone: nothing wider than the screen.
    browser.viewport(390, 844, true).await?;
    let phone = until(browser, "the page to fit a phone", UI_TIMEOUT, |shown| {
        shown.overflow <= 0
    })
    .await;
    browser.screenshot(&shots.join("phone.png")).await?;
    phone?;

    let faults = page_faults(browser, &base).await?;
    if !faults.is_empty() {
        bail!(
            "the live page at {base}/ (screenshots in {}):\n- {}",
            shots.display(),
            faults.join("\n- ")
        );
    }

    // status-api goes away: the page says so, and backs off (1 s, 2 s, 4 s, ...) instead of spinning.
    server.stop().await?;
    let gone = until(
        browser,
        "the page to say it is disconnected",
        UI_TIMEOUT,
        |shown| {
            shown
                .banner
                .as_deref()
                .is_some_and(|banner| banner.starts_with("Disconnected"))
                && shown.verdict == "disconnected"
        },
    )
    .await?;
    browser.screenshot(&shots.join("disconnected.png")).await?;
    anyhow::ensure!(
        gone.marker.as_deref() == Some("loaded once"),
        "the page reloaded"
    );
    browser.requested_urls().await?;
    let watched = Duration::from_secs(8);
    tokio::time::sleep(watched).await;
    let attempts = browser
        .requested_urls()
        .await?
        .into_iter()
        .filter(|url| url.starts_with(&format!("{base}/status")))
        .count();
    // Retries 1 + 2 + 4 s apart: at least one and at most 4 attempts in 8 s; a tight loop would make hundreds.
    anyhow::ensure!(
        (1..=4).contains(&attempts),
        "{attempts} requests for /status in {watched:?} while status-api was down"
    );
    Ok(())
}

/// What the page shows of a finished job: the badge, each drift line's kind and classes, and each
/// container's last exit.
const READ_COMPLETED: &str = r##"
const text = (node) => (node ? node.textContent.trim() : "");
return {
  verdict: text(document.getElementById("verdict")),
  drift: [...document.querySelectorAll("#drift li")].map((item) => ({
    kind: text(item.querySelector(".kind")),
    name: text(item.querySelector(".name")),
    classes: item.className,
  })),
  exits: [...document.querySelectorAll("#containers tbody tr")].map((row) => [
    text(row.querySelector("td.name > span")),
    text(row.querySelector("td.exit")),
  ]),
};
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_a_finished_job_as_completed_not_as_an_alarm() -> anyhow::Result<()> {
    let tools = Tools::find()?;
    ensure_test_images().await?;
    let scope = TestScope::new();
    let job = scope.name("job");
    // Runs when the baseline is taken, and ends (code 0) when the test says.
    let wait_then_exit = "until [ -f /tmp/done ]; do sleep 1; done; exit 0";
    scope
        .run_cmd("job", BUSYBOX_IMAGE, &[], &["sh", "-c", wait_then_exit])
        .await?;
    let server = StatusApiServer::start(StatusApiOptions::scoped(scope.scope())).await?;
    let shots = artifacts_dir("live-page-completed")?;
    let browser = Browser::start(&tools).await?;
    let outcome = async {
        open(&browser, &format!("{}/", server.base())).await?;
        until(
            &browser,
            "the page to show the job in sync",
            UI_TIMEOUT,
            |shown| shown.in_sync_with(std::slice::from_ref(&job)),
        )
        .await?;

        docker(&["exec", &job, "touch", "/tmp/done"]).await?;

        let read = || async {
            let value = browser.client.execute(READ_COMPLETED, vec![]).await?;
            anyhow::Ok(value)
        };
        let shown = std::sync::Mutex::new(serde_json::Value::Null);
        let waited = wait_until("the page to show the job completed", UI_TIMEOUT, || async {
            let value = read().await?;
            let done = value["verdict"] == "1 completed"
                && value["drift"][0]["kind"] == "completed"
                && value["drift"][0]["classes"]
                    .as_str()
                    .is_some_and(|classes| classes.contains("kind-completed"))
                && value["exits"][0][1] == "0, by itself";
            *shown.lock().expect("not poisoned") = value;
            Ok(done)
        })
        .await;
        browser.screenshot(&shots.join("completed.png")).await?;
        let shown = shown.into_inner()?;
        waited.with_context(|| format!("the page shows {shown:#}"))?;
        let faults = page_faults(&browser, &server.base()).await?;
        anyhow::ensure!(faults.is_empty(), "{faults:?}");
        anyhow::Ok(())
    }
    .await;
    let closed = browser.close().await;
    outcome?;
    closed?;
    server.stop().await
}
