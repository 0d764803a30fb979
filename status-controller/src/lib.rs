//! status-controller: heals drift between a Docker host and the snapshot status-api keeps.
//!
//! In layers, each importing only from the ones above it:
//! - vocabulary: [`model`] (actions, outcomes, holds, the `--unexpected` policy);
//! - pure rules: [`plan`] (what to do), [`dependants`] (its heals in namespace-owner order), [`freshness`] (whether status-api's answer may be acted on),
//!   [`backoff`] (crash-loop backoff and quarantine), [`quarantine`] (what is told of them), [`recheck`] (is a destructive action still right),
//!   [`recreate`] (a removed container's create request: a recreate's request half), [`clock`];
//! - I/O: [`status_client`] (status-api, behind `StatusSource`), [`docker`] (the only Docker handle in
//!   dockstate that can change the host, behind `EngineWriter`);
//! - runtime: [`executor`] (actions as bounded tasks, a recreate's engine half among them), [`journal`] (kept
//!   in [`journal_file`]), [`metrics`], [`state`] (what the server reads), [`notify`] (notifications, never
//!   waited for), [`maintenance`] (the operator's hold, kept in [`hold_file`]), [`state_dir`] (where both
//!   files live, checked and locked), [`config`];
//! - the loop: [`reconcile`];
//! - edges: [`server`] (the controller's own HTTP server, described by [`openapi`], with [`cors`] letting
//!   status-api's page read it), [`startup`] (`Application::build`, the one way in,
//!   and the parts it wires), [`once`] (one pass for cron and CI, over the parts `main` built).

// No production function longer than 80 lines (clippy.toml); tests may be longer.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod backoff;
pub mod clock;
pub mod config;
pub mod cors;
pub mod dependants;
pub mod docker;
pub mod executor;
pub mod freshness;
pub mod hold_file;
pub mod journal;
pub mod journal_file;
pub mod maintenance;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod once;
pub mod openapi;
pub mod plan;
pub mod quarantine;
pub mod recheck;
pub mod reconcile;
pub mod recreate;
pub mod server;
pub mod startup;
pub mod state;
pub mod state_dir;
pub mod status_client;

/// The `tracing` target of the debug events that mark each step of a heal through the controller (status
/// answered, action dispatched, re-check answered, engine call returned): `make bench` turns them on with
/// `RUST_LOG=status_controller::heal_trace=debug` to show where one heal's time goes, and so can an operator.
pub const HEAL_TRACE: &str = "status_controller::heal_trace";

pub use config::Settings;
pub use startup::Application;

pub use shared::error_chain;
