//! status-api: watches one Docker engine through its event stream, keeps a baseline snapshot on disk, and
//! serves live status, the snapshot, the drift between them, health, readiness, metrics and OpenAPI docs.
//! It never changes the host: its only Docker handle, [`docker::DockerReader`], cannot.
//!
//! The baseline has one owner, [`baseline::BaselineKeeper`], which publishes it on a channel; the live view
//! has one writer, [`inventory::Inventory`] (the watch loop), and readers clone a [`store::Store`] that hands
//! out an immutable [`view::View`] per revision.

// No production function longer than 80 lines (clippy.toml); tests may be longer.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod api;
pub mod baseline;
pub mod config;
pub mod docker;
pub mod image_tags;
pub mod inventory;
pub mod metrics;
pub mod onsets;
pub mod prepared;
pub mod snapshot;
pub mod startup;
pub mod state_dir;
pub mod store;
pub mod view;

/// The `tracing` target of the debug events that mark each step of a container's change through status-api
/// (engine event received, view updated from it, view updated from its inspect): `make bench` turns them on
/// with `RUST_LOG=status_api::heal_trace=debug` to show where one heal's time goes, and so can an operator.
pub const HEAL_TRACE: &str = "status_api::heal_trace";

pub use config::Settings;
pub use startup::Application;
