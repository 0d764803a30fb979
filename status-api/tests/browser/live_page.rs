//! The live page at `/` in a real browser, as an operator's console. Three members run and are in sync; the page
//! filters them by name and by chip, and keeps that view in its URL. A real status-controller runs beside it
//! (status-api's `--controller-url`, the controller's `--cors-origin`), held for maintenance: the page shows
//! the hold. One member is killed and the page, without reloading, shows it exited ("exited … ago", never
//! "started"), as `stopped` drift with its age, under the "actionable" chip. The hold ends, the controller heals
//! the member, and the page shows it running and in sync again, and the controller's `start` of it (`ok`, with
//! its reason, linked to the member's row) among the latest actions. A member labelled with markup shows the
//! label as text. No console error, no request to any host but the server and the controller, and on a phone
//! (390 px) no sideways scroll and a usable filter. Last, status-api stops: the page says it is disconnected,
//! counts down to its next try and retries with backoff rather than in a tight loop.
//!
//! Screenshots (a desktop window and a 390 × 844 phone) go to `target/ci-artifacts/browser/live-page/`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use fantoccini::Locator;
use serde::Deserialize;
use test_support::{
    docker, ensure_test_images, wait_until, StatusApiOptions, StatusApiServer,
    StatusControllerServer, TestScope, BUSYBOX_IMAGE, HEALTH_IMAGE,
};

use crate::driver::{free_port, Browser, Tools};
use crate::{artifacts_dir, open, page_faults, UI_TIMEOUT};

/// A label value that would run script if the page ever parsed values as markup.
const HOSTILE: &str = "<img src=x onerror=\"window.__dockstateXss=1\">";

/// How long a heal may take on a loaded two-core machine: the long poll makes it fast, the machine may not.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);

/// The token both servers read.
const TOKEN: &str = "browser-test-token";

/// What the page shows, read from its visible text.
#[derive(Debug, Deserialize)]
struct Shown {
    verdict: String,
    banner: Option<String>,
    containers: Vec<Row>,
    drift: Vec<Item>,
    /// What the controller panel says of itself (where it reads from, or why it cannot).
    controller_note: String,
    /// The hold box's text; empty while the panel is hidden.
    hold: String,
    actions: Vec<Action>,
    /// The page's query string: the view kept in the URL.
    search: String,
    /// The chip pressed.
    chip: String,
    /// A value the test left on `window` after the first render: gone if the page reloaded.
    marker: Option<String>,
    /// Set only if the hostile label ran as script.
    xss: Option<serde_json::Value>,
    /// `<img>` elements inside the page's main part: there are none unless a value became markup.
    images: usize,
    labels: Vec<String>,
    /// The document's width beyond the viewport's: a page that scrolls sideways.
    overflow: i64,
    /// The filter box's right edge and the viewport's width: on a phone the box must be on screen.
    filter_right: f64,
    viewport: f64,
}

#[derive(Debug, Deserialize)]
struct Row {
    name: String,
    state: String,
    health: String,
    in_snapshot: String,
    drift: String,
    since: String,
}

#[derive(Debug, Deserialize)]
struct Item {
    kind: String,
    name: String,
    actionable: String,
}

#[derive(Debug, Deserialize)]
struct Action {
    container: String,
    action: String,
    result: String,
    reason: String,
    /// The row the container's link points at.
    link: String,
}

impl Shown {
    fn row(&self, name: &str) -> Option<&Row> {
        self.containers.iter().find(|row| row.name == name)
    }

    fn names(&self) -> Vec<&str> {
        self.containers
            .iter()
            .map(|row| row.name.as_str())
            .collect()
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
const text = (node) => (node ? node.textContent.trim().replace(/\s+/g, " ") : "");
const banner = document.getElementById("banner");
const body = document.getElementById("controller-body");
const filter = document.getElementById("filter").getBoundingClientRect();
const pressed = document.querySelector('#chips .chip[aria-pressed="true"]');
return {
  verdict: text(document.getElementById("verdict")),
  banner: banner.hidden ? null : text(document.getElementById("banner-text")),
  containers: [...document.querySelectorAll("#containers tbody tr")].map((row) => ({
    name: text(row.querySelector("td.name > span")),
    state: text(row.querySelector("td.state")),
    health: text(row.querySelector("td.health")),
    in_snapshot: text(row.querySelector("td.member")),
    drift: text(row.querySelector("td.drift-cell")),
    since: text(row.querySelector("td.since-cell")),
  })),
  drift: [...document.querySelectorAll("#drift li")].map((item) => ({
    kind: text(item.querySelector(".kind")),
    name: text(item.querySelector(".name")),
    actionable: item.dataset.actionable || "",
  })),
  controller_note: text(document.getElementById("controller-note")),
  hold: body.hidden ? "" : text(document.getElementById("hold")),
  actions: body.hidden ? [] : [...document.querySelectorAll("#actions li")].map((item) => ({
    container: item.dataset.container,
    action: item.dataset.action,
    result: item.dataset.result,
    reason: text(item.querySelector(".reason")),
    link: (item.querySelector("a.name") || {}).hash || "",
  })),
  search: window.location.search,
  chip: pressed ? pressed.dataset.show : "",
  marker: window.__dockstateMarker || null,
  xss: window.__dockstateXss || null,
  images: document.querySelectorAll("main img").length,
  labels: [...document.querySelectorAll("details.labels li")].map(text),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  filter_right: filter.right,
  viewport: window.innerWidth,
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

/// Clicks the element `css` of the page.
async fn click(browser: &Browser, css: &str) -> anyhow::Result<()> {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .with_context(|| format!("finding {css}"))?
        .click()
        .await
        .with_context(|| format!("clicking {css}"))?;
    Ok(())
}

/// Types `text` into the filter box, in place of what it held.
async fn filter(browser: &Browser, text: &str) -> anyhow::Result<()> {
    let input = browser.client.find(Locator::Css("#filter")).await?;
    input.clear().await?;
    // `clear` fires no input event: the page hears the typing.
    if text.is_empty() {
        browser
            .client
            .execute(
                "const f = document.getElementById('filter'); f.dispatchEvent(new Event('input'));",
                vec![],
            )
            .await?;
    } else {
        input.send_keys(text).await?;
    }
    Ok(())
}

/// `POST /hold` or `DELETE /hold` on the controller, with the token.
async fn hold(controller: &StatusControllerServer, set: bool) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let request = if set {
        client.post(controller.url("/hold?for=10m&reason=browser+test&by=the-test"))
    } else {
        client.delete(controller.url("/hold?by=the-test"))
    };
    let answer = request.bearer_auth(TOKEN).send().await?;
    anyhow::ensure!(
        answer.status().is_success(),
        "{} /hold answered {}",
        if set { "POST" } else { "DELETE" },
        answer.status()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_a_killed_member_as_drift_until_it_is_healed() -> anyhow::Result<()> {
    // Arrange: three members, one with a healthcheck and one with a label made of markup; status-api told
    // where the controller will listen, and a controller there that lets the page's origin read it.
    let tools = Tools::find()?;
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("web", HEALTH_IMAGE, &[]).await?;
    let note = format!("note={HOSTILE}");
    scope.run("db", BUSYBOX_IMAGE, &["--label", &note]).await?;
    scope.run("cache", BUSYBOX_IMAGE, &[]).await?;
    let controller_listen = format!("127.0.0.1:{}", free_port()?);
    let controller_url = format!("http://{controller_listen}");
    let server = StatusApiServer::start(StatusApiOptions {
        token: Some(TOKEN.to_owned()),
        controller_url: Some(controller_url.clone()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let base = server.base();
    let controller = StatusControllerServer::start(
        &server,
        &["--listen", &controller_listen, "--cors-origin", &base],
    )
    .await?;
    hold(&controller, true).await?;

    let shots = artifacts_dir("live-page")?;
    let browser = Browser::start(&tools).await?;
    let outcome = watch(&browser, server, &controller, &scope, &shots).await;
    if outcome.is_err() {
        let _ = browser.screenshot(&shots.join("failed.png")).await;
    }
    let closed = browser.close().await;
    let stopped = controller.stop().await;
    println!("screenshots: {}", shots.display());
    outcome?;
    closed?;
    stopped
}

/// Act and assert: in sync and filtered, held, killed, healed, the same page on a phone, then status-api gone.
async fn watch(
    browser: &Browser,
    server: StatusApiServer,
    controller: &StatusControllerServer,
    scope: &TestScope,
    shots: &Path,
) -> anyhow::Result<()> {
    let base = server.base();
    let controller_url = controller.url("");
    let members = ["web", "db", "cache"].map(|suffix| scope.name(suffix));
    let web = scope.name("web");
    browser.viewport(1280, 1100, false).await?;
    open(browser, &format!("{base}/")).await?;

    let first = until(
        browser,
        "the page to show three members in sync, and the controller's hold",
        UI_TIMEOUT,
        |shown| {
            shown.in_sync_with(&members) && shown.hold.contains("Held for maintenance by the-test")
        },
    )
    .await?;
    anyhow::ensure!(
        first.hold.contains("browser test") && first.controller_note.contains(&controller_url),
        "the hold's reason and where it was read: {first:#?}"
    );
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

    filter_and_chips(browser, &web, &members).await?;

    // Act: kill a member while the controller is held. The page learns of it through the long poll.
    docker(&["kill", &web]).await?;
    let drifted = until(
        browser,
        "the page to show web stopped, exited and actionable",
        UI_TIMEOUT,
        |shown| {
            shown.verdict == "1 drift"
                && shown.drift.iter().any(|item| {
                    item.kind == "stopped" && item.name == web && item.actionable == "true"
                })
                && shown.row(&web).is_some_and(|row| {
                    row.state == "exited"
                        && row.since.starts_with("exited ")
                        && row.drift.starts_with("stopped")
                })
        },
    )
    .await?;
    browser.screenshot(&shots.join("drift.png")).await?;
    browser
        .client
        .execute(
            "document.getElementById('containers-title').scrollIntoView()",
            vec![],
        )
        .await?;
    browser.screenshot(&shots.join("drift-table.png")).await?;
    anyhow::ensure!(
        drifted.marker.as_deref() == Some("loaded once"),
        "the page reloaded to show the drift"
    );
    click(browser, r#"#chips .chip[data-show="actionable"]"#).await?;
    until(
        browser,
        "the actionable chip to show web alone",
        UI_TIMEOUT,
        |shown| shown.names() == [web.as_str()] && shown.search.contains("show=actionable"),
    )
    .await?;
    click(browser, r#"#chips .chip[data-show="all"]"#).await?;

    // The hold ends; the real controller heals web; the page shows it, and what the controller did.
    hold(controller, false).await?;
    let healed = until(
        browser,
        "the page to show web healthy in sync, the hold gone and the controller's start of web",
        HEAL_TIMEOUT,
        |shown| {
            shown.in_sync_with(&members)
                && shown.row(&web).is_some_and(|row| row.health == "healthy")
                && shown.hold.starts_with("No maintenance hold")
                && shown.actions.iter().any(|action| {
                    action.container == web && action.action == "start" && action.result == "ok"
                })
        },
    )
    .await?;
    browser.screenshot(&shots.join("healed.png")).await?;
    let start = healed
        .actions
        .iter()
        .find(|action| action.container == web && action.action == "start")
        .context("the start")?;
    anyhow::ensure!(
        !start.reason.is_empty() && start.link == format!("#member-{web}"),
        "the action's reason and its link to web's row: {start:?}"
    );
    anyhow::ensure!(
        healed.marker.as_deref() == Some("loaded once"),
        "the page reloaded to show the heal"
    );
    anyhow::ensure!(healed.banner.is_none(), "{:?}", healed.banner);

    on_a_phone(browser, &web, shots).await?;

    let faults = page_faults(browser, &base, &[&controller_url]).await?;
    if !faults.is_empty() {
        bail!(
            "the live page at {base}/ (screenshots in {}):\n- {}",
            shots.display(),
            faults.join("\n- ")
        );
    }
    disconnected(browser, server, shots).await
}

/// The filter by name and by label, the chips, and the view kept in the URL across a reload.
async fn filter_and_chips(browser: &Browser, web: &str, members: &[String]) -> anyhow::Result<()> {
    let suffix = web.rsplit('-').next().unwrap_or(web);
    filter(browser, suffix).await?;
    let filtered = until(
        browser,
        "the filter to leave web alone",
        UI_TIMEOUT,
        |shown| shown.names() == [web],
    )
    .await?;
    anyhow::ensure!(
        filtered.search.contains(&format!("q={suffix}")),
        "the filter is in the URL: {}",
        filtered.search
    );
    // A label's text finds its container too: db's `note=<img …` label.
    filter(browser, "onerror").await?;
    until(
        browser,
        "the label filter to leave db alone",
        UI_TIMEOUT,
        |shown| shown.names() == [members[1].as_str()],
    )
    .await?;
    click(browser, r#"#chips .chip[data-show="problems"]"#).await?;
    filter(browser, "").await?;
    let problems = until(browser, "no problem while in sync", UI_TIMEOUT, |shown| {
        shown.containers.is_empty() && shown.chip == "problems"
    })
    .await?;
    anyhow::ensure!(
        problems.search.contains("show=problems"),
        "{}",
        problems.search
    );
    // Sorted by name (already so, ascending): its header turns it descending; the view survives a reload.
    click(browser, r#"#containers th[data-sort="name"] button"#).await?;
    let url = browser.client.current_url().await?;
    anyhow::ensure!(url.as_str().contains("sort=-name"), "{url}");
    browser.client.goto(url.as_str()).await?;
    until(
        browser,
        "the reloaded page to keep the problems chip",
        UI_TIMEOUT,
        |shown| shown.chip == "problems" && shown.verdict == "in sync",
    )
    .await?;
    click(browser, r#"#chips .chip[data-show="all"]"#).await?;
    let sorted = until(
        browser,
        "all three, sorted by name descending",
        UI_TIMEOUT,
        |shown| shown.containers.len() == 3,
    )
    .await?;
    let mut expected: Vec<&str> = members.iter().map(String::as_str).collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    anyhow::ensure!(sorted.names() == expected, "{:?}", sorted.names());
    browser
        .client
        .execute("window.__dockstateMarker = 'loaded once'", vec![])
        .await?;
    Ok(())
}

/// The same page on a phone: nothing wider than the screen, and the filter on screen and working.
async fn on_a_phone(browser: &Browser, web: &str, shots: &Path) -> anyhow::Result<()> {
    browser.viewport(390, 844, true).await?;
    let phone = until(browser, "the page to fit a phone", UI_TIMEOUT, |shown| {
        shown.overflow <= 0 && shown.viewport <= 390.0 && shown.filter_right <= shown.viewport
    })
    .await;
    browser.screenshot(&shots.join("phone.png")).await?;
    phone?;
    filter(browser, web).await?;
    until(
        browser,
        "the filter to work on a phone",
        UI_TIMEOUT,
        |shown| shown.names() == [web] && shown.overflow <= 0,
    )
    .await?;
    browser
        .screenshot(&shots.join("phone-filtered.png"))
        .await?;
    filter(browser, "").await
}

/// status-api goes away: the page says so, counts down, and backs off (1 s, 2 s, 4 s, ...) instead of spinning.
async fn disconnected(
    browser: &Browser,
    server: StatusApiServer,
    shots: &Path,
) -> anyhow::Result<()> {
    let base = server.base();
    server.stop().await?;
    let gone = until(
        browser,
        "the page to say it is disconnected and when it retries",
        UI_TIMEOUT,
        |shown| {
            shown.banner.as_deref().is_some_and(|banner| {
                banner.starts_with("Disconnected") && banner.contains("retrying in")
            }) && shown.verdict == "disconnected"
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
    // "Retry now" tries at once.
    click(browser, "#retry-now").await?;
    wait_until(
        "Retry now to try at once",
        Duration::from_secs(3),
        || async {
            Ok(browser
                .requested_urls()
                .await?
                .iter()
                .any(|url| url.starts_with(&format!("{base}/status"))))
        },
    )
    .await?;
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
        let faults = page_faults(&browser, &server.base(), &[]).await?;
        anyhow::ensure!(faults.is_empty(), "{faults:?}");
        anyhow::Ok(())
    }
    .await;
    let closed = browser.close().await;
    outcome?;
    closed?;
    server.stop().await
}

/// What the page shows of observe-only drift and of dockstate's own containers.
const READ_OBSERVED: &str = r##"
const text = (node) => (node ? node.textContent.trim().replace(/\s+/g, " ") : "");
return {
  verdict: text(document.getElementById("verdict")),
  verdict_class: document.getElementById("verdict").className,
  drift: [...document.querySelectorAll("#drift li")].map((item) => [text(item.querySelector(".name")), item.dataset.actionable]),
  drift_count: text(document.getElementById("drift-count")),
  members: text(document.querySelector("#members .count")),
  members_detail: text(document.querySelector("#members .detail")),
  own: [...document.querySelectorAll("#containers tbody tr.own")].map((row) => text(row.querySelector("td.name > span"))),
  chips: Object.fromEntries([...document.querySelectorAll("#chips .chip")].map((chip) => [chip.dataset.show, text(chip.querySelector(".n"))])),
  controller_note: text(document.getElementById("controller-note")),
};
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_only_drift_is_no_alarm_and_dockstates_own_containers_are_not_members(
) -> anyhow::Result<()> {
    let tools = Tools::find()?;
    ensure_test_images().await?;
    let scope = TestScope::new();
    let (watched, own) = (scope.name("watched"), scope.name("own"));
    scope
        .run(
            "watched",
            BUSYBOX_IMAGE,
            &["--label", "dockstate.policy=observe"],
        )
        .await?;
    // What a container of dockstate's controller image carries (its OCI title), as compose runs it.
    scope
        .run(
            "own",
            BUSYBOX_IMAGE,
            &[
                "--label",
                "org.opencontainers.image.title=dockstate status-controller",
                "--label",
                "dockstate.policy=ignore",
            ],
        )
        .await?;
    let server = StatusApiServer::start(StatusApiOptions::scoped(scope.scope())).await?;
    let shots = artifacts_dir("live-page-observed")?;
    let browser = Browser::start(&tools).await?;
    let outcome = async {
        open(&browser, &format!("{}/", server.base())).await?;
        docker(&["kill", &watched]).await?;
        let shown = std::sync::Mutex::new(serde_json::Value::Null);
        let waited = wait_until(
            "the page to show observe-only drift",
            UI_TIMEOUT,
            || async {
                let value = browser.client.execute(READ_OBSERVED, vec![]).await?;
                let done = value["verdict"] == "1 observed"
                    && value["drift"][0][0] == watched.as_str()
                    && value["drift"][0][1] == "false";
                *shown.lock().expect("not poisoned") = value;
                Ok(done)
            },
        )
        .await;
        browser.screenshot(&shots.join("observed.png")).await?;
        let shown = shown.into_inner()?;
        waited.with_context(|| format!("the page shows {shown:#}"))?;
        let classes = shown["verdict_class"].as_str().unwrap_or_default();
        anyhow::ensure!(
            classes.contains("badge-observe") && !classes.contains("badge-drift"),
            "observe-only drift is not red: {shown:#}"
        );
        anyhow::ensure!(shown["drift_count"] == "(1 observe-only)", "{shown:#}");
        anyhow::ensure!(
            shown["members"] == "1"
                && shown["members_detail"]
                    .as_str()
                    .is_some_and(|detail| detail.contains("dockstate's own container")),
            "two members, one of them dockstate's own: {shown:#}"
        );
        anyhow::ensure!(shown["own"] == serde_json::json!([own]), "{shown:#}");
        anyhow::ensure!(
            shown["chips"] == serde_json::json!({"all": "2", "problems": "1", "actionable": "0"}),
            "{shown:#}"
        );
        anyhow::ensure!(
            shown["controller_note"]
                .as_str()
                .is_some_and(|note| note.contains("--controller-url")
                    && note.contains("STATUS_API_CONTROLLER_URL")),
            "without --controller-url the page says where to set it: {shown:#}"
        );
        let faults = page_faults(&browser, &server.base(), &[]).await?;
        anyhow::ensure!(faults.is_empty(), "{faults:?}");
        anyhow::Ok(())
    }
    .await;
    let closed = browser.close().await;
    outcome?;
    closed?;
    server.stop().await
}
