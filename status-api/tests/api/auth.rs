//! Re-baselining and spec access: 403 with no token configured, 401 for a missing or wrong one.

use reqwest::StatusCode;
use test_support::{ensure_test_images, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{answer, assert_error_shape, spawn_api, Options, TOKEN};

#[tokio::test]
async fn without_a_configured_token_both_are_forbidden() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope.run("member", BUSYBOX_IMAGE, &[]).await?;
    let api = spawn_api(&scope, Options::default()).await?;
    let spec = format!("/snapshot/containers/{}/spec", scope.name("member"));

    for token in [None, Some(TOKEN), Some("anything")] {
        let mut post = api.client.post(api.url("/snapshot"));
        let mut get = api.client.get(api.url(&spec));
        if let Some(token) = token {
            post = post.bearer_auth(token);
            get = get.bearer_auth(token);
        }
        let (status, body) = answer(post.send().await?).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_error_shape(&body, "POST /snapshot without a token configured");
        let (status, body) = answer(get.send().await?).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--token-file"));
    }
    api.stop().await
}

#[tokio::test]
async fn with_a_token_only_the_right_one_opens_them() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    scope
        .run(
            "member",
            BUSYBOX_IMAGE,
            &["--env", "MEMBER_SETTING=kept-for-recreation"],
        )
        .await?;
    let api = spawn_api(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;
    let spec = format!("/snapshot/containers/{}/spec", scope.name("member"));
    let before = api.get_ok("/snapshot").await?;

    for (token, case) in [
        (None, "missing"),
        (Some("wrong"), "wrong"),
        (Some(""), "empty"),
    ] {
        let mut post = api.client.post(api.url("/snapshot"));
        let mut get = api.client.get(api.url(&spec));
        if let Some(token) = token {
            post = post.bearer_auth(token);
            get = get.bearer_auth(token);
        }
        let response = post.send().await?;
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.as_bytes()),
            Some(&b"Bearer realm=\"status-api\""[..]),
            "{case}: a 401 says how to authenticate"
        );
        let (status, body) = answer(response).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_error_shape(&body, case);
        let (status, body) = answer(get.send().await?).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    }
    let basic = api
        .client
        .post(api.url("/snapshot"))
        .basic_auth("user", Some(TOKEN))
        .send()
        .await?;
    assert_eq!(
        basic.status(),
        StatusCode::UNAUTHORIZED,
        "only a bearer token counts"
    );
    assert_eq!(
        api.get_ok("/snapshot").await?,
        before,
        "failed attempts change nothing"
    );

    let (status, body) = answer(
        api.client
            .get(api.url(&spec))
            .bearer_auth(TOKEN)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], scope.name("member"));
    let env = body["config"]["Env"].to_string();
    assert!(env.contains("MEMBER_SETTING=kept-for-recreation"), "{env}");
    assert!(body["host_config"].is_object());
    assert!(
        body["networks"]["bridge"].is_object(),
        "{}",
        body["networks"]
    );

    let missing = api
        .client
        .get(api.url("/snapshot/containers/not-a-member/spec"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    let (status, body) = answer(missing).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, "unknown member");

    scope.run("newcomer", BUSYBOX_IMAGE, &[]).await?;
    api.wait_for_drift(
        &scope.name("newcomer"),
        "unexpected",
        std::time::Duration::from_secs(2),
    )
    .await?;
    let (status, body) = answer(
        api.client
            .post(api.url("/snapshot"))
            .bearer_auth(TOKEN)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["containers"].as_array().map(Vec::len), Some(2));
    assert_ne!(body["taken_at"], before["taken_at"]);
    assert_eq!(
        api.get_ok("/snapshot").await?,
        body,
        "the new baseline is in force"
    );
    assert_eq!(api.get_ok("/drift").await?["in_sync"], true);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(api.state_dir.join("snapshot.json"))?)?;
    assert_eq!(
        on_disk["taken_at"], body["taken_at"],
        "written to disk before it is served"
    );
    api.stop().await
}
