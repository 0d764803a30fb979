//! status-controller: heals drift between a Docker host and the snapshot status-api keeps.
//!
//! It long-polls status-api ([`status_client`]), checks that the view is complete and fresh
//! ([`reconcile`]), decides what to do with a pure function ([`plan`]), and carries the decisions out
//! through the only Docker handle in dockstate that can change the host ([`execute`]), gated per container by
//! a crash-loop backoff and quarantine ([`backoff`]). Its own HTTP server ([`api`]) serves health,
//! readiness, metrics and the recent actions; [`once`] is the one-pass mode for cron and CI.

pub mod api;
pub mod backoff;
pub mod config;
pub mod execute;
pub mod journal;
pub mod metrics;
pub mod once;
pub mod plan;
pub mod reconcile;
pub mod recreate;
pub mod startup;
pub mod status_client;

pub use config::Settings;
pub use startup::Application;

pub use shared::error_chain;
