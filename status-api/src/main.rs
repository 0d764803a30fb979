//! The `status-api` binary: read the configuration, start logging, build, serve until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use shared::runtime::{init_telemetry, limit_malloc_arenas, probe_health, shutdown_signal};
use status_api::config::Command;
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
    serve(settings)
}

#[tokio::main]
async fn serve(settings: Settings) -> anyhow::Result<()> {
    init_telemetry(settings.log_format(), "info", std::io::stdout);
    let application = Application::build(&settings)
        .await
        .context("status-api could not start")?;
    application.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}
