//! status-api: watches one Docker engine through its event stream, keeps a baseline snapshot on disk, and
//! serves live status, the snapshot, the drift between them, health, readiness, metrics and OpenAPI docs.
//! It never changes the host: its only Docker handle, [`docker::DockerReader`], cannot.

pub mod api;
pub mod config;
pub mod docker;
pub mod inventory;
pub mod metrics;
pub mod snapshot;
pub mod startup;

pub use config::Settings;
pub use startup::Application;
