//! What the real engine answers the controller's calls, read the way the executor reads it: a 404 is "the
//! container is gone" only when the engine says so, never when something the container needs is missing.

use status_controller::docker::{Applied, DockerWriter, EngineWriter};
use test_support::{docker, ensure_test_images, TestScope, BUSYBOX_IMAGE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_network_is_gone_fails_and_a_gone_container_is_gone() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let network = scope.name("net");
    docker(&["network", "create", "--label", &scope.label(), &network]).await?;
    let id = scope
        .create("member", BUSYBOX_IMAGE, &["--network", &network])
        .await?;
    docker(&["network", "rm", &network]).await?;
    let engine = DockerWriter::connect(None)?;
    engine.negotiate().await?;

    let started = engine.start(&scope.name("member"), &id).await;
    let err = started.expect_err("the engine refuses a start whose network is gone");
    let said = status_controller::error_chain(&err);
    assert!(
        said.contains(&network),
        "the failure names the missing network: {said}"
    );

    docker(&["rm", &id]).await?;
    let gone = engine.start(&scope.name("member"), &id).await?;
    assert_eq!(gone, Applied::NoSuchContainer);
    Ok(())
}
