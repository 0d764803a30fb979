//! Helpers for dockstate's real-engine tests.
//!
//! They drive the `docker` CLI rather than a Docker client library, so the helpers stay independent of the
//! code under test: a bug in how dockstate talks to the engine cannot hide itself by also being in the
//! fixture that checks it.
//!
//! A typical test:
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use test_support::{container_state, ensure_test_images, wait_until, TestScope, BUSYBOX_IMAGE};
//!
//! ensure_test_images().await?;
//! // Declared first, so it is dropped last: its containers go after whatever else the test started.
//! let scope = TestScope::new();
//! let name = scope.name("web");
//! scope.run("web", BUSYBOX_IMAGE, &[]).await?;
//! // ... start the server under test with `--scope <scope.scope()>`, act, then:
//! wait_until("web to run", Duration::from_secs(10), || async {
//!     Ok(container_state(&name).await?.as_deref() == Some("running"))
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

pub mod address_range;
mod cli;
pub mod flood;
mod images;
mod private_engine;
mod private_podman;
mod program;
mod prometheus;
mod proxy;
mod receiver;
mod scope;
mod status_api;
mod status_controller;
mod wait;

pub use cli::{container_health, container_state, docker, inspect_json, main_pid};
pub use images::{ensure_test_images, BUSYBOX_IMAGE, HEALTH_IMAGE, VOLUME_IMAGE};
pub use private_engine::PrivateEngine;
pub use private_podman::{PrivatePodman, PODMAN_INSTALL};
pub use program::Program;
pub use prometheus::{Prometheus, ScrapeTarget, PROMETHEUS_INSTALL};
pub use proxy::EngineProxy;
pub use receiver::{Received, WebhookReceiver};
pub use scope::{TestScope, TEST_LABEL_KEY};
pub use status_api::{StatusApiOptions, StatusApiServer};
pub use status_controller::StatusControllerServer;
pub use wait::wait_until;
