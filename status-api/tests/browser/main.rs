//! `/docs` in a real browser: headless Chromium opens Swagger UI as a user would, expands `GET /status` and
//! `GET /drift`, clicks Try it out and Execute without filling anything in, and must see 200 with the test's
//! containers in the response panel — with no console error, and no request to any host but the server.
//!
//! Screenshots of each step go to `target/ci-artifacts/browser/docs/`, where CI keeps them. The live page at `/`
//! has its own test, in `live_page`.

mod controller_docs;
mod driver;
mod live_page;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use fantoccini::elements::Element;
use fantoccini::Locator;
use serde_json::Value;
use test_support::{
    docker, ensure_test_images, wait_until, StatusApiOptions, StatusApiServer, TestScope,
    BUSYBOX_IMAGE,
};

use crate::driver::{Browser, Tools};

/// How long Swagger UI may take to render a page or an answer on a loaded CI machine.
const UI_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn swagger_ui_executes_status_and_drift_as_they_come() -> anyhow::Result<()> {
    // Arrange: what a user of the UI sees first, before anything is started.
    let tools = Tools::find()?;
    ensure_test_images().await?;
    let scope = TestScope::new();
    // `web` and `db` are the baseline; then `extra` runs unexpected and `db` stops.
    scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    scope.run("db", BUSYBOX_IMAGE, &[]).await?;
    let server = StatusApiServer::start(StatusApiOptions::scoped(scope.scope())).await?;
    scope.run("extra", BUSYBOX_IMAGE, &[]).await?;
    docker(&["stop", "--time", "1", &scope.name("db")]).await?;
    let drift_url = format!("{}/drift", server.base());
    wait_until("/drift to list db and extra", UI_TIMEOUT, || async {
        let drift = reqwest::get(&drift_url).await?.text().await?;
        Ok(drift.contains(&scope.name("db")) && drift.contains(&scope.name("extra")))
    })
    .await?;

    let shots = artifacts_dir("docs")?;
    let browser = Browser::start(&tools).await?;
    let outcome = use_the_docs(&browser, &server.base(), &scope, &shots).await;
    let closed = browser.close().await;
    println!("screenshots: {}", shots.display());
    outcome?;
    closed?;
    server.stop().await
}

/// Act and assert, saving a screenshot after each operation whether it passed or not.
async fn use_the_docs(
    browser: &Browser,
    base: &str,
    scope: &TestScope,
    shots: &Path,
) -> anyhow::Result<()> {
    open(browser, &format!("{base}/docs")).await?;
    browser
        .client
        .wait()
        .at_most(UI_TIMEOUT)
        .for_element(Locator::Css("#operations-Status-getStatus"))
        .await
        .context("Swagger UI did not render GET /status")?;

    let running = [scope.name("web"), scope.name("extra")];
    let drifted = [scope.name("db"), scope.name("extra")];
    let status = try_it_out(
        browser,
        "Status-getStatus",
        &running,
        &shots.join("status.png"),
    )
    .await;
    let drift = try_it_out(
        browser,
        "Drift-getDrift",
        &drifted,
        &shots.join("drift.png"),
    )
    .await;

    let mut failures = page_faults(browser, base, &[]).await?;
    for (operation, outcome) in [("GET /status", status), ("GET /drift", drift)] {
        if let Err(e) = outcome {
            failures.push(format!("{operation}: {e:#}"));
        }
    }
    if !failures.is_empty() {
        bail!(
            "Swagger UI at {base}/docs (screenshots in {}):\n- {}",
            shots.display(),
            failures.join("\n- ")
        );
    }
    Ok(())
}

/// Expands the operation `id` (`<tag>-<operationId>`), clicks Try it out and Execute with nothing filled in,
/// and checks that the response panel shows 200 and every one of `names`. Saves a screenshot either way.
async fn try_it_out(
    browser: &Browser,
    id: &str,
    names: &[String],
    screenshot: &Path,
) -> anyhow::Result<()> {
    let operation = browser
        .client
        .find(Locator::Css(&format!("#operations-{id}")))
        .await?;
    let outcome = execute(&operation, names).await;
    // The whole operation in view, its answer included.
    let _ = browser
        .client
        .execute(
            "arguments[0].scrollIntoView({block: 'start'})",
            vec![serde_json::to_value(&operation)?],
        )
        .await;
    browser.screenshot(screenshot).await?;
    outcome
}

async fn execute(operation: &Element, names: &[String]) -> anyhow::Result<()> {
    click(operation, ".opblock-summary-control").await?;
    click(operation, ".try-out__btn").await?;
    click(operation, ".execute").await?;

    let answered = wait_until("the response panel", UI_TIMEOUT, || async {
        Ok(operation
            .find(Locator::Css(
                ".live-responses-table tr.response .response-col_status",
            ))
            .await
            .is_ok())
    })
    .await;
    if answered.is_err() {
        // Swagger UI validates the parameters before it sends anything, and says why it did not.
        let why = match operation.find(Locator::Css(".validation-errors")).await {
            Ok(errors) => errors.text().await?,
            Err(_) => "no response panel and no validation message".to_owned(),
        };
        bail!(
            "Execute sent no request: {}",
            why.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    let code = text(
        operation,
        ".live-responses-table tr.response .response-col_status",
    )
    .await?;
    let body = text(
        operation,
        ".live-responses-table tr.response .response-col_description",
    )
    .await?;
    anyhow::ensure!(code == "200", "the response panel shows {code}: {body}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !body.contains(name.as_str()))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the response panel lacks {missing:?}: {body}"
    );
    Ok(())
}

async fn click(operation: &Element, css: &str) -> anyhow::Result<()> {
    let button = wait_for(operation, css).await?;
    button
        .click()
        .await
        .with_context(|| format!("clicking {css}"))
}

async fn text(operation: &Element, css: &str) -> anyhow::Result<String> {
    Ok(wait_for(operation, css)
        .await?
        .text()
        .await?
        .trim()
        .to_owned())
}

/// The first element under `operation` matching `css`, once Swagger UI has rendered it.
async fn wait_for(operation: &Element, css: &str) -> anyhow::Result<Element> {
    wait_until(&format!("{css} to appear"), UI_TIMEOUT, || async {
        Ok(operation.find(Locator::Css(css)).await.is_ok())
    })
    .await?;
    Ok(operation.find(Locator::Css(css)).await?)
}

/// Goes to `url` with the logs emptied first: what the browser did on its own (its new-tab page) is not the
/// page's doing, so it leaves that page and forgets its requests and messages.
async fn open(browser: &Browser, url: &str) -> anyhow::Result<()> {
    browser.client.goto("about:blank").await?;
    browser.requested_urls().await?;
    browser.console().await?;
    browser.client.goto(url).await?;
    Ok(())
}

/// What the browser saw go wrong since the last look: console errors, and requests to any other origin than
/// `base` and `others` (every request of a page, the favicon's included, must go to the server itself, or to
/// the controller it was told of).
async fn page_faults(
    browser: &Browser,
    base: &str,
    others: &[&str],
) -> anyhow::Result<Vec<String>> {
    let allowed: Vec<String> = std::iter::once(base)
        .chain(others.iter().copied())
        .map(|origin| format!("{}/", origin.trim_end_matches('/')))
        .collect();
    let foreign: Vec<String> = browser
        .requested_urls()
        .await?
        .into_iter()
        .filter(|url| {
            !url.starts_with("data:") && !allowed.iter().any(|prefix| url.starts_with(prefix))
        })
        .collect();
    let errors: Vec<Value> = browser
        .console()
        .await?
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .collect();
    let mut faults = Vec::new();
    if !errors.is_empty() {
        faults.push(format!("console errors: {}", Value::Array(errors)));
    }
    if !foreign.is_empty() {
        faults.push(format!(
            "requests to other hosts than {allowed:?}: {foreign:?}"
        ));
    }
    Ok(faults)
}

/// `target/ci-artifacts/browser/<name>/`, emptied: the directory CI keeps.
fn artifacts_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .with_file_name("ci-artifacts")
        .join("browser")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
