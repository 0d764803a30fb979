//! The `status-controller` binary: read the configuration, then probe `/health` (`healthcheck`), run one
//! pass (`--once`), or start logging and run the reconcile loop and its HTTP server until Ctrl-C or SIGTERM.

// No production function longer than 80 lines (clippy.toml); tests may be longer.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use shared::runtime::http::probe_health;
use shared::runtime::shutdown::shutdown_signal;
use shared::runtime::telemetry::init_telemetry;
use status_controller::config::Command;
use status_controller::once::{describe, run_once};
use status_controller::startup::Components;
use status_controller::{Application, Settings};

fn main() -> ExitCode {
    shared::runtime::process::limit_malloc_arenas();
    let settings = match Settings::try_parse() {
        Ok(settings) => settings,
        Err(err) => {
            let _ = err.print();
            // clap exits 2 on bad usage, which `--once` reserves for "drift found".
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::FAILURE,
            };
        }
    };
    if let Some(Command::Healthcheck) = settings.command {
        return match probe_health(settings.listen, Duration::from_secs(3)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(problem) => {
                eprintln!("unhealthy: {problem}");
                ExitCode::FAILURE
            }
        };
    }
    run(settings)
}

// Two workers are plenty for a loop that mostly waits, and keep the footprint small on large hosts.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn run(settings: Settings) -> ExitCode {
    if settings.once {
        // The table goes to stdout; logs go to stderr so they never mix with it.
        init_telemetry(settings.log_format(), "warn", std::io::stderr);
        let components = match Components::build(&settings) {
            Ok(components) => components,
            Err(err) => {
                eprintln!("status-controller: {}", describe(&err.into()));
                return ExitCode::FAILURE;
            }
        };
        let mut stdout = std::io::stdout();
        let once = run_once(
            &settings,
            &components.client,
            &components.executor,
            &components.plan,
            &mut stdout,
        );
        return match once.await {
            Ok(outcome) => outcome.exit_code(),
            Err(err) => {
                eprintln!("status-controller: {}", describe(&err));
                ExitCode::FAILURE
            }
        };
    }

    init_telemetry(settings.log_format(), "info", std::io::stdout);
    match serve(&settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "status-controller failed");
            eprintln!("status-controller: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    // Listening for SIGTERM from here on: one sent while it starts is a clean shutdown, not a kill.
    let shutdown = shutdown_signal();
    let application = Application::build(settings)
        .await
        .context("status-controller could not start")?;
    application.run_until_stopped(shutdown).await?;
    Ok(())
}
