//! No answer without the token ever holds a container's environment.

use test_support::{ensure_test_images, TestScope, BUSYBOX_IMAGE, HEALTH_IMAGE};

use crate::helpers::{spawn_api, Options};

#[tokio::test]
async fn no_environment_value_appears_in_any_unauthenticated_answer() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let secret = format!("secret-{}", scope.id());
    let env = format!("DATABASE_PASSWORD={secret}");
    scope.run("app", BUSYBOX_IMAGE, &["--env", &env]).await?;
    scope.run("sick", HEALTH_IMAGE, &["--env", &env]).await?;
    scope
        .create("created", BUSYBOX_IMAGE, &["--env", &env])
        .await?;
    let api = spawn_api(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;
    let app = scope.name("app");
    let paths = [
        "/status".to_owned(),
        "/status?all=true".to_owned(),
        format!("/status/{app}"),
        "/snapshot".to_owned(),
        "/drift".to_owned(),
        "/ready".to_owned(),
        "/health".to_owned(),
        "/metrics".to_owned(),
        "/openapi.json".to_owned(),
        format!("/snapshot/containers/{app}/spec"),
    ];
    for path in &paths {
        let (status, body) = api.text(path).await?;
        assert!(
            !body.contains(&secret),
            "{path} ({status}) leaks the environment"
        );
        assert!(
            !body.contains("DATABASE_PASSWORD"),
            "{path} ({status}) leaks the variable name"
        );
    }
    api.stop().await
}
