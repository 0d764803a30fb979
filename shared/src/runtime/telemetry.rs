//! Log set-up: `pretty` for a person at a terminal, JSON lines for collectors; `RUST_LOG` overrides the
//! default filter. Tests pass `std::io::sink` so they stay quiet unless they ask otherwise.

use std::io::IsTerminal;

use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Coloured, multi-field lines for a person at a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// `pretty` on a terminal, else `json`.
    pub fn detect() -> Self {
        if std::io::stdout().is_terminal() {
            Self::Pretty
        } else {
            Self::Json
        }
    }
}

/// Parses `--log-format`.
pub fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "unknown log format `{other}`: use `pretty` or `json`"
        )),
    }
}

/// Installs the global `tracing` subscriber. `RUST_LOG` overrides `default_filter`. In JSON, every event
/// carries the spans it happened in (a request's method and route, a pass's revision, an action's
/// container), so one container's story can be followed by filtering on a field.
pub fn init_telemetry<W>(format: LogFormat, default_filter: &str, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink);
    // A second initialisation (several tests in one process) is harmless: keep the first.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats() {
        assert_eq!(parse_log_format("json"), Ok(LogFormat::Json));
        assert_eq!(parse_log_format("pretty"), Ok(LogFormat::Pretty));
        assert!(parse_log_format("xml").is_err());
    }
}
