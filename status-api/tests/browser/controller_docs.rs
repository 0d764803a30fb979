//! The controller's `/docs` in a real browser: Swagger UI renders its document under the docs'
//! Content-Security-Policy, and `GET /actions` executed from it answers 200 — no console error (a policy
//! violation is one), no request to any host but the controller.

use anyhow::{bail, Context};
use fantoccini::Locator;
use test_support::{StatusApiOptions, StatusApiServer, StatusControllerServer, TestScope};

use crate::driver::{Browser, Tools};
use crate::{artifacts_dir, open, page_faults, try_it_out, UI_TIMEOUT};

#[tokio::test]
async fn the_controllers_swagger_ui_executes_actions() -> anyhow::Result<()> {
    let tools = Tools::find()?;
    let scope = TestScope::new();
    let api = StatusApiServer::start(StatusApiOptions::scoped(scope.scope())).await?;
    let controller = StatusControllerServer::start(&api, &["--dry-run"]).await?;
    let base = controller.url("");
    let shots = artifacts_dir("controller-docs")?;
    let browser = Browser::start(&tools).await?;
    let outcome = async {
        open(&browser, &format!("{base}/docs")).await?;
        browser
            .client
            .wait()
            .at_most(UI_TIMEOUT)
            .for_element(Locator::Css("#operations-Actions-getActions"))
            .await
            .context("Swagger UI did not render the controller's GET /actions")?;
        let mut failures = Vec::new();
        let names = ["quarantined".to_owned()];
        if let Err(e) = try_it_out(
            &browser,
            "Actions-getActions",
            &names,
            &shots.join("actions.png"),
        )
        .await
        {
            failures.push(format!("GET /actions: {e:#}"));
        }
        failures.extend(page_faults(&browser, &base, &[]).await?);
        if !failures.is_empty() {
            bail!(
                "the controller's Swagger UI at {base}/docs (screenshots in {}):\n- {}",
                shots.display(),
                failures.join("\n- ")
            );
        }
        Ok(())
    }
    .await;
    let closed = browser.close().await;
    outcome?;
    closed?;
    controller.stop().await?;
    api.stop().await
}
