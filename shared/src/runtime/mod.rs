//! Process plumbing both binaries share, one concept per module. Behind the `runtime` feature so the types
//! above stay free of it.
//!
//! - [`telemetry`]: log set-up (`--log-format`, `RUST_LOG`).
//! - [`shutdown`]: the one future for Ctrl-C and SIGTERM.
//! - [`flags`]: parsers for the flags both programs take (durations, scopes, switches).
//! - [`secret`]: a value logs never show (a token, a URL that is a key), with the constant-time check.
//! - [`token`]: reading the bearer-token file.
//! - [`engine`]: connecting to the Docker engine; [`engine_socket`]: its unix socket, connections kept open
//!   between calls; [`engine_error`]: the one error type for what an engine call did; [`engine_json`]: reading
//!   the engine's own JSON, whatever engine wrote it.
//! - [`http`]: binding the port, the `{error, message}` answers, the `method` label, the `healthcheck` probe.
//! - [`hosts`]: the `Host` names a server answers to (`--allowed-hosts`), against DNS rebinding.
//! - [`origin`]: web origins and base URLs (`--cors-origin`, `--controller-url`), as browsers write them.
//! - [`connections`]: the connection cap, header and idle deadlines, and accept back-off both servers sit behind.
//! - [`serve`]: the connection loop both servers run, with vectored writes and a graceful drain.
//! - [`own_container`]: which container this process runs in, so nothing ever acts on it.
//! - [`startup`]: the one shape of a start-up failure.
//! - [`process`]: process-wide tunables set first thing in `main`.
//! - [`metrics`]: metric families made and registered in one call, and written as Prometheus text.
//! - [`process_metrics`]: the `process_*` metrics, CPU time to the microsecond.
//! - [`state_dir`]: a private state directory: whom to trust, one holder, files never through a link.
//! - [`api_docs`] (with the `openapi` feature): Swagger UI at `/docs`, offline, under a strict CSP.

#[cfg(feature = "openapi")]
pub mod api_docs;
pub mod connections;
pub mod engine;
pub mod engine_error;
pub mod engine_json;
pub mod engine_socket;
pub mod flags;
pub mod hosts;
pub mod http;
pub mod metrics;
pub mod origin;
pub mod own_container;
pub mod process;
pub mod process_metrics;
pub mod secret;
pub mod serve;
pub mod shutdown;
pub mod startup;
pub mod state_dir;
pub mod telemetry;
pub mod token;
