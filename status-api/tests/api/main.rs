//! status-api against the real Docker engine: the real server on port 0, scoped to the test's own
//! containers (`--scope dockstate.test=<id>`), with `--resync-interval 1h` so that whatever the tests see
//! arrives through the event stream.

mod helpers;
mod process;

mod auth;
mod dependants;
mod docs_and_metrics;
mod engine_loss;
mod errors;
mod exits;
mod hosts;
mod live_status;
mod long_poll;
mod members;
mod ports;
mod ps_parity;
mod scope;
mod secrets;
mod snapshot;
mod state_dir;
mod view_progress;
