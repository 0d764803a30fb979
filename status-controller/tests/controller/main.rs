//! status-controller against the real engine. Both programs run for real on port 0, each test in its own
//! scope (`dockstate.test=<id>`), status-api with `--resync-interval 1h` and the controller with
//! `--interval 1h`: every heal seen here was driven by the long poll, never by a timer.

mod backoff;
mod changed;
mod completed;
mod compose;
mod dependants;
mod docs;
mod engine_answers;
mod fake_api;
mod fidelity;
mod fleet;
mod heal;
mod helpers;
mod hold;
mod hosts;
mod journal;
mod members;
mod notify;
mod once;
mod process;
mod recreate;
mod safety;
mod scope;
mod startup_checks;
mod strangers;
