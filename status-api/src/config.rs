//! Configuration: every flag also reads the environment variable named beside it (SPEC "status-api").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use shared::runtime::connections::{parse_max_connections, DEFAULT_MAX_CONNECTIONS};
use shared::runtime::flags::{parse_duration, parse_scope, parse_switch, ScopeArg};
use shared::runtime::hosts::{parse_allowed_hosts, AllowedHosts};
use shared::runtime::origin::{parse_base_url, BaseUrl};
use shared::runtime::telemetry::{parse_log_format, LogFormat};
use shared::Scope;

/// The variable `--allowed-hosts` reads, named in the answer to a request for another host.
pub const ALLOWED_HOSTS_ENV: &str = "STATUS_API_ALLOWED_HOSTS";

/// The variable `--controller-url` reads, named on the live page when it is not set.
pub const CONTROLLER_URL_ENV: &str = "STATUS_API_CONTROLLER_URL";

/// status-api: watches a Docker engine and serves its live status, its baseline snapshot and the drift
/// between them. It never changes anything on the host.
#[derive(Debug, Clone, Parser)]
#[command(name = "status-api", version, about, long_about = None)]
pub struct Settings {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to serve HTTP on (port 0 picks a free port).
    #[arg(long, env = "STATUS_API_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Open HTTP connections at most; at the cap the longest-idle one is closed to admit the next, so an
    /// idle flood cannot lock probes out. Lowered to fit the open-file limit when that is smaller.
    #[arg(
        long,
        env = "STATUS_API_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = parse_max_connections
    )]
    pub max_connections: usize,

    /// Host names to answer to besides IP addresses and `localhost`, comma-separated (`*`: any name). A
    /// request naming another host is refused (421), so that a web page cannot reach it through DNS rebinding.
    #[arg(long, env = ALLOWED_HOSTS_ENV, value_parser = parse_allowed_hosts)]
    pub allowed_hosts: Vec<AllowedHosts>,

    /// Directory holding snapshot.json. Default: $XDG_STATE_HOME/status-api, else
    /// ~/.local/state/status-api (/var/lib/status-api in the container image).
    #[arg(long, env = "STATUS_API_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Label selector limiting everything to containers that carry it: KEY or KEY=VALUE. Empty: the whole host.
    #[arg(long, env = "STATUS_API_SCOPE", value_parser = parse_scope)]
    pub scope: Option<ScopeArg>,

    /// status-controller's URL as the browser showing the live page reaches it (http://127.0.0.1:8000 with
    /// compose), so that the page shows its actions, its hold and its quarantines. The page may then talk to
    /// that origin (its Content-Security-Policy names it); the controller must allow the page's origin with
    /// --cors-origin. Empty: the page shows no controller and says where to set this.
    #[arg(long, env = CONTROLLER_URL_ENV, value_parser = parse_controller_url)]
    pub controller_url: Option<ControllerUrlArg>,

    /// File holding the bearer token for POST /snapshot and the spec endpoint. Without it those are off (403).
    #[arg(long, env = "STATUS_API_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Full re-list of the engine as a safety net behind the event stream.
    #[arg(long, env = "STATUS_API_RESYNC_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub resync_interval: Duration,

    /// Per-container series on /metrics (`dockstate_container_*`: each container's state, each drift and
    /// since when), as many as there are containers and drifts in scope. `off` for very large hosts: the
    /// counts by state and by drift kind stay.
    #[arg(
        long,
        env = "STATUS_API_CONTAINER_METRICS",
        default_value = "on",
        num_args = 0..=1,
        default_missing_value = "on",
        action = ArgAction::Set,
        value_parser = parse_switch
    )]
    pub container_metrics: bool,

    /// `pretty` or `json`. Default: pretty on a terminal, else json.
    #[arg(long, env = "STATUS_API_LOG_FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,

    /// The Docker engine: unix:///path/to/docker.sock or tcp://host:port. Default: the local socket.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
}

/// Subcommands; without one, status-api serves.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Probe this server's /health on the --listen port and exit 0 if it answers 2xx, else 1. For the
    /// image's HEALTHCHECK: the image is FROM scratch and has no curl.
    Healthcheck,
    /// Print the scope the stored snapshot (in --state-dir) was taken in — an empty line for the whole host,
    /// nothing at all when there is no snapshot — and exit 0; when it differs from --scope
    /// (STATUS_API_SCOPE), say so on stderr and exit 2. Reads the file only: for `make up`, which runs it
    /// in the image over the state volume before it starts the pair.
    BaselineScope,
}

/// The exit status of `baseline-scope` when the stored snapshot was taken in another scope than --scope.
pub const SCOPE_DIFFERS: u8 = 2;

impl Settings {
    /// The scope, `None` for the whole host.
    pub fn scope(&self) -> Scope {
        self.scope.clone().and_then(|ScopeArg(scope)| scope)
    }

    /// Settings for a server under test: port 0 on loopback, the given state dir and scope.
    pub fn for_test(state_dir: PathBuf, scope: &str) -> Self {
        Self::parse_from([
            "status-api",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            &state_dir.to_string_lossy(),
            "--scope",
            scope,
        ])
    }

    /// The controller the live page shows, `None` without one.
    pub fn controller_url(&self) -> Option<BaseUrl> {
        self.controller_url
            .clone()
            .and_then(|ControllerUrlArg(url)| url)
    }

    /// The state directory, with the documented default when none is given.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
            })
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("status-api")
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_else(LogFormat::detect)
    }

    /// Every `--allowed-hosts` given, together.
    pub fn allowed_hosts(&self) -> AllowedHosts {
        self.allowed_hosts.iter().cloned().collect()
    }
}

/// A parsed `--controller-url`: empty (an unset variable in a compose file) is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerUrlArg(pub Option<BaseUrl>);

fn parse_controller_url(value: &str) -> Result<ControllerUrlArg, String> {
    if value.trim().is_empty() {
        return Ok(ControllerUrlArg(None));
    }
    parse_base_url(value).map(|url| ControllerUrlArg(Some(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let settings = Settings::parse_from(["status-api"]);
        assert_eq!(settings.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.resync_interval, Duration::from_secs(30));
        assert_eq!(settings.scope(), None);
        assert!(settings.token_file.is_none());
        assert_eq!(settings.max_connections, 1024);
        assert_eq!(settings.allowed_hosts(), AllowedHosts::default());
        assert!(settings.container_metrics);
    }

    #[test]
    fn allowed_hosts_are_comma_separated_and_repeatable() {
        let settings = Settings::parse_from([
            "status-api",
            "--allowed-hosts",
            "status-api,Dockstate.Example",
            "--allowed-hosts",
            "other",
        ]);
        assert_eq!(
            settings.allowed_hosts().names().collect::<Vec<_>>(),
            ["status-api", "dockstate.example", "other"]
        );
        let err = Settings::try_parse_from(["status-api", "--allowed-hosts", "status-api:8080"])
            .expect_err("a port");
        assert!(err.to_string().contains("give the name alone"), "{err}");
    }

    #[test]
    fn per_container_metrics_switch_off_and_on() {
        for (args, on) in [
            (&["status-api", "--container-metrics", "off"][..], false),
            (&["status-api", "--container-metrics", "false"][..], false),
            (&["status-api", "--container-metrics"][..], true),
            (&["status-api", "--container-metrics", "on"][..], true),
        ] {
            assert_eq!(Settings::parse_from(args).container_metrics, on, "{args:?}");
        }
        let err = Settings::try_parse_from(["status-api", "--container-metrics", "sometimes"])
            .expect_err("not a switch");
        assert!(err.to_string().contains("true or false"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_a_hint() {
        let err = Settings::try_parse_from(["status-api", "--resync-interval", "often"])
            .expect_err("bad duration");
        assert!(err.to_string().contains("30s"), "{err}");
        let err = Settings::try_parse_from(["status-api", "--scope", "=x"]).expect_err("bad scope");
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
        let err = Settings::try_parse_from(["status-api", "--listen", "nowhere"])
            .expect_err("bad address");
        assert!(err.to_string().contains("nowhere"), "{err}");
        let err = Settings::try_parse_from(["status-api", "--max-connections", "0"])
            .expect_err("no connections");
        assert!(err.to_string().contains("1 to 1000000"), "{err}");
    }

    #[test]
    fn baseline_scope_is_a_subcommand_that_reads_state_dir_and_scope() {
        let settings = Settings::parse_from([
            "status-api",
            "--state-dir",
            "/var/lib/status-api",
            "--scope",
            "team=a",
            "baseline-scope",
        ]);
        assert!(matches!(settings.command, Some(Command::BaselineScope)));
        assert_eq!(settings.state_dir(), PathBuf::from("/var/lib/status-api"));
    }

    #[test]
    fn the_controller_url_is_an_http_url_and_empty_is_none() {
        assert_eq!(Settings::parse_from(["status-api"]).controller_url(), None);
        let settings = Settings::parse_from(["status-api", "--controller-url", ""]);
        assert_eq!(settings.controller_url(), None);
        let settings =
            Settings::parse_from(["status-api", "--controller-url", "http://127.0.0.1:8000/"]);
        let url = settings.controller_url().expect("a URL");
        assert_eq!(url.as_str(), "http://127.0.0.1:8000");
        assert_eq!(url.origin().as_str(), "http://127.0.0.1:8000");
        for bad in ["127.0.0.1:8000", "http://user@ctl", "http://ctl/?x=1"] {
            let err =
                Settings::try_parse_from(["status-api", "--controller-url", bad]).expect_err(bad);
            assert!(err.to_string().contains("127.0.0.1:8000"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_empty_scope_is_the_whole_host() {
        let settings = Settings::parse_from(["status-api", "--scope", ""]);
        assert_eq!(settings.scope(), None);
        let settings = Settings::parse_from(["status-api", "--scope", "team=a"]);
        assert_eq!(
            settings.scope().map(|s| s.to_string()).as_deref(),
            Some("team=a")
        );
    }
}
