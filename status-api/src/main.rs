//! The `status-api` binary: read the configuration, start logging, build, serve until Ctrl-C or SIGTERM.

// No production function longer than 80 lines (clippy.toml); tests may be longer.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use anyhow::Context;
use clap::Parser;
use shared::runtime::http::probe_health;
use shared::runtime::process::limit_malloc_arenas;
use shared::runtime::shutdown::shutdown_signal;
use shared::runtime::telemetry::init_telemetry;
use status_api::config::{Command, SCOPE_DIFFERS};
use status_api::startup::{stored_scope, StoredScope};
use status_api::{Application, Settings};

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    let settings = Settings::parse();
    if let Some(Command::Healthcheck) = settings.command {
        if let Err(problem) = probe_health(settings.listen, std::time::Duration::from_secs(3)) {
            eprintln!("unhealthy: {problem}");
            std::process::exit(1);
        }
        return Ok(());
    }
    if let Some(Command::BaselineScope) = settings.command {
        std::process::exit(baseline_scope(&settings));
    }
    serve(settings)
}

/// `status-api baseline-scope`: the stored snapshot's scope on stdout, the mismatch (if any) on stderr.
fn baseline_scope(settings: &Settings) -> i32 {
    match stored_scope(settings) {
        Ok(StoredScope::NoSnapshot) => 0,
        Ok(StoredScope::Taken { scope, mismatch }) => {
            println!("{}", scope.unwrap_or_default());
            match mismatch {
                Some(mismatch) => {
                    eprintln!("{mismatch}");
                    i32::from(SCOPE_DIFFERS)
                }
                None => 0,
            }
        }
        Err(err) => {
            eprintln!("{}", shared::error_chain(&err));
            1
        }
    }
}

#[tokio::main]
async fn serve(settings: Settings) -> anyhow::Result<()> {
    init_telemetry(settings.log_format(), "info", std::io::stdout);
    // Listening for SIGTERM from here on: one sent while it starts is a clean shutdown, not a kill.
    let shutdown = shutdown_signal();
    let application = Application::build(&settings)
        .await
        .context("status-api could not start")?;
    application.run_until_stopped(shutdown).await?;
    Ok(())
}
