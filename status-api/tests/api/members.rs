//! Editing the baseline one member at a time: `DELETE /snapshot/containers/{name}` forgets a member ("stopped
//! on purpose"), `PUT` adopts the container running under a name (new, or changed on purpose). Against the
//! real engine: the drift follows each edit, the file on disk holds it, and every refusal says why.

use reqwest::StatusCode;
use serde_json::Value;
use test_support::{docker, ensure_test_images, TestScope, BUSYBOX_IMAGE, HEALTH_IMAGE};

use crate::helpers::{answer, assert_error_shape, drift_kinds, spawn_api, Options, TestApi, TOKEN};

const EDIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

async fn edit(
    api: &TestApi,
    method: reqwest::Method,
    name: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let url = api.url(&format!("/snapshot/containers/{name}"));
    answer(
        api.client
            .request(method, url)
            .bearer_auth(TOKEN)
            .send()
            .await?,
    )
    .await
}

fn members(summary: &Value) -> Vec<String> {
    summary["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|member| member["name"].as_str().map(ToOwned::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_forgotten_and_adopted_one_at_a_time() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let other = TestScope::new();
    let (keep, dropped) = (scope.name("keep"), scope.name("dropped"));
    scope.run("keep", BUSYBOX_IMAGE, &[]).await?;
    scope.run("dropped", BUSYBOX_IMAGE, &[]).await?;
    let api = spawn_api(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;
    let first = api.get_ok("/snapshot").await?;
    assert_eq!(members(&first), vec![dropped.clone(), keep.clone()]);

    // Forget: the member leaves the baseline; stopped, it is no drift at all; running again, it is unexpected.
    let (status, summary) = edit(&api, reqwest::Method::DELETE, &dropped).await?;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(members(&summary), vec![keep.clone()]);
    assert_ne!(
        summary["taken_at"], first["taken_at"],
        "an edit is a new baseline"
    );
    docker(&["stop", &dropped]).await?;
    test_support::wait_until("the stop to be seen", EDIT_DEADLINE, || async {
        let status = api.get_ok(&format!("/status/{dropped}")).await?;
        Ok(status["state"] == "exited" && status["settling"] == false)
    })
    .await?;
    let drift = api.get_ok("/drift").await?;
    assert!(drift_kinds(&drift, &dropped).is_empty(), "{drift}");
    assert_eq!(drift["in_sync"], true, "{drift}");
    docker(&["start", &dropped]).await?;
    api.wait_for_drift(&dropped, "unexpected", EDIT_DEADLINE)
        .await?;

    // Adopt it back, running: in sync again.
    let (status, summary) = edit(&api, reqwest::Method::PUT, &dropped).await?;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(members(&summary), vec![dropped.clone(), keep.clone()]);
    test_support::wait_until("the adoption to clear the drift", EDIT_DEADLINE, || async {
        Ok(api.get_ok("/drift").await?["in_sync"] == true)
    })
    .await?;

    // A member changed on purpose: `changed` until it is adopted as it runs now, then its spec is the new one.
    docker(&["rm", "-f", &keep]).await?;
    scope.run("keep", HEALTH_IMAGE, &[]).await?;
    api.wait_for_drift(&keep, "changed", EDIT_DEADLINE).await?;
    let (status, summary) = edit(&api, reqwest::Method::PUT, &keep).await?;
    assert_eq!(status, StatusCode::OK, "{summary}");
    test_support::wait_until("the refresh to clear `changed`", EDIT_DEADLINE, || async {
        Ok(api.get_ok("/drift").await?["in_sync"] == true)
    })
    .await?;
    let spec = api
        .client
        .get(api.url(&format!("/snapshot/containers/{keep}/spec")))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert_eq!(spec["image"], HEALTH_IMAGE, "the spec is the new one");

    // The file on disk holds the edits.
    let file: Value = serde_json::from_slice(&std::fs::read(api.state_dir.join("snapshot.json"))?)?;
    let on_disk: Vec<&str> = file["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|spec| spec["name"].as_str())
        .collect();
    assert_eq!(on_disk, vec![dropped.as_str(), keep.as_str()]);
    assert_eq!(file["containers"][1]["image"], HEALTH_IMAGE);

    // Refusals, each saying why; none changes the baseline.
    let before = api.get_ok("/snapshot").await?;
    scope.create("never-started", BUSYBOX_IMAGE, &[]).await?;
    other.run("elsewhere", BUSYBOX_IMAGE, &[]).await?;
    for (method, name, expected, code) in [
        (
            reqwest::Method::DELETE,
            scope.name("nobody"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            reqwest::Method::PUT,
            scope.name("nobody"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // No container can be named `µt%…`: 404 without asking the engine, which answers such a name 400
        // (once taken for an engine down, 503).
        (
            reqwest::Method::PUT,
            "%C2%B5t%25%F0%B4%A9%B0".to_owned(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            reqwest::Method::PUT,
            scope.name("never-started"),
            StatusCode::CONFLICT,
            "not_running",
        ),
        (
            reqwest::Method::PUT,
            other.name("elsewhere"),
            StatusCode::CONFLICT,
            "out_of_scope",
        ),
    ] {
        let (status, body) = edit(&api, method.clone(), &name).await?;
        assert_eq!(status, expected, "{method} {name}: {body}");
        assert_eq!(body["error"], code, "{method} {name}: {body}");
        assert_error_shape(&body, &name);
    }
    let anonymous = api
        .client
        .delete(api.url(&format!("/snapshot/containers/{keep}")))
        .send()
        .await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert_eq!(
        api.get_ok("/snapshot").await?,
        before,
        "refusals change nothing"
    );
    api.stop().await
}
