//! Log set-up: `pretty` for a person at a terminal, JSON lines for collectors; `RUST_LOG` overrides the
//! default filter, but only for our own crates below INFO: other crates never log below INFO, whatever it
//! says, because bollard logs every request and response body at debug — every container's `Env` and
//! command line, secrets included. Tests pass `std::io::sink` so they stay quiet unless they ask otherwise.

use std::io::IsTerminal;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The crates whose debug and trace events may be shown. Ours log names, ids and images, never a
/// container's environment, command or create body.
const OWN_CRATES: [&str; 3] = ["status_api", "status_controller", "shared"];

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

/// Whether an event or span may be logged below INFO: only when it comes from one of [`OWN_CRATES`]. Third
/// parties (bollard, hyper, reqwest, h2, …, and `log` records forwarded from them) stop at INFO.
pub fn may_log(metadata: &Metadata<'_>) -> bool {
    if *metadata.level() <= Level::INFO {
        return true;
    }
    let target = metadata.target();
    OWN_CRATES.iter().any(|own| {
        target
            .strip_prefix(own)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Installs the global `tracing` subscriber. `RUST_LOG` overrides `default_filter`, within [`may_log`]. In
/// JSON, every event carries the spans it happened in (a request's method and route, a pass's revision, an
/// action's container), so one container's story can be followed by filtering on a field.
pub fn init_telemetry<W>(format: LogFormat, default_filter: &str, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(filter_fn(may_log));
    // A second initialisation (several tests in one process) is harmless: keep the first.
    let _ = match format {
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(sink))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_writer(sink),
            )
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

    #[test]
    fn only_our_crates_log_below_info() {
        use tracing::callsite::{Callsite, Identifier};
        use tracing::metadata::Kind;

        struct Site;
        impl Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!("only its identity is used")
            }
        }
        static SITE: Site = Site;
        let at = |target: &'static str, level: Level| {
            Metadata::new(
                "event",
                target,
                level,
                None,
                None,
                None,
                tracing::field::FieldSet::new(&[], Identifier(&SITE)),
                Kind::EVENT,
            )
        };
        assert!(may_log(&at("status_api::inventory", Level::TRACE)));
        assert!(may_log(&at("status_controller", Level::DEBUG)));
        assert!(may_log(&at("shared::runtime::connections", Level::DEBUG)));
        assert!(!may_log(&at("bollard::docker", Level::DEBUG)));
        assert!(!may_log(&at("hyper_util::client", Level::TRACE)));
        assert!(!may_log(&at("sharedlib", Level::DEBUG)));
        assert!(may_log(&at("bollard::docker", Level::INFO)));
        assert!(may_log(&at("reqwest", Level::WARN)));
    }
}
