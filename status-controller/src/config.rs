//! Configuration: every flag also reads the environment variable named beside it (SPEC "status-controller").
//! Every value is checked when it is read, and a bad one is refused with a sentence that says how to fix it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use reqwest::Url;
use shared::runtime::connections::{parse_max_connections, DEFAULT_MAX_CONNECTIONS};
use shared::runtime::flags::{parse_duration, parse_scope, parse_switch, ScopeArg};
use shared::runtime::hosts::{parse_allowed_hosts, AllowedHosts};
use shared::runtime::origin::{parse_origins, WebOrigin};
use shared::runtime::telemetry::{parse_log_format, LogFormat};
use shared::Scope;

pub use crate::model::Unexpected;
use crate::notify::target::{parse_url_file, NotifyUrlsParser, TargetList, UrlFile};
use crate::notify::{NotifyOptions, Target};

/// The shortest `--interval` accepted: the long poll already reacts within milliseconds, the interval is only
/// the safety net, and a shorter one would just load status-api.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The variable `--allowed-hosts` reads, named in the answer to a request for another host.
pub const ALLOWED_HOSTS_ENV: &str = "STATUS_CONTROLLER_ALLOWED_HOSTS";

/// status-controller: heals drift between a Docker host and the snapshot status-api keeps. It starts
/// snapshotted containers that went down, recreates removed ones, restarts unhealthy ones and stops
/// containers that were not in the snapshot.
#[derive(Debug, Clone, Parser)]
#[command(name = "status-controller", version, about, long_about = None)]
pub struct Settings {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Base URL of status-api: http://… or https://… (certificates are checked against the public roots
    /// built into the binary).
    #[arg(
        long,
        env = "STATUS_CONTROLLER_API_URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = ApiUrlParser
    )]
    pub api_url: Url,

    /// Address to serve /health, /ready, /metrics and /actions on (port 0 picks a free port).
    #[arg(long, env = "STATUS_CONTROLLER_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,

    /// Open HTTP connections at most; at the cap the longest-idle one is closed to admit the next, so an
    /// idle flood cannot lock probes out. Lowered to fit the open-file limit when that is smaller.
    #[arg(
        long,
        env = "STATUS_CONTROLLER_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = parse_max_connections
    )]
    pub max_connections: usize,

    /// Host names to answer to besides IP addresses and `localhost`, comma-separated (`*`: any name). A
    /// request naming another host is refused (421), so that a web page cannot reach it through DNS rebinding.
    #[arg(long, env = ALLOWED_HOSTS_ENV, value_parser = parse_allowed_hosts)]
    pub allowed_hosts: Vec<AllowedHosts>,

    /// Origins (`http://host:port`, comma-separated) whose web pages may read the GET answers — status-api's
    /// live page, which shows /actions, the hold and the quarantines. GET and HEAD only, never with the token
    /// or cookies. None: no CORS at all.
    #[arg(long, env = "STATUS_CONTROLLER_CORS_ORIGIN", value_parser = parse_origins)]
    pub cors_origin: Vec<Vec<WebOrigin>>,

    /// A full pass this often even when nothing changed (changes are acted on at once through the long poll).
    #[arg(long, env = "STATUS_CONTROLLER_INTERVAL", default_value = "30s", value_parser = parse_interval)]
    pub interval: Duration,

    /// What to do with a running container that is not in the snapshot.
    #[arg(
        long,
        env = "STATUS_CONTROLLER_UNEXPECTED",
        value_enum,
        default_value_t = Unexpected::Stop
    )]
    pub unexpected: Unexpected,

    /// Plan and report, change nothing.
    #[arg(
        long,
        env = "STATUS_CONTROLLER_DRY_RUN",
        action = ArgAction::SetTrue,
        value_parser = parse_switch
    )]
    pub dry_run: bool,

    /// File holding status-api's bearer token, needed to read recreation specs. Without it removed
    /// containers are reported, not recreated.
    #[arg(long, env = "STATUS_CONTROLLER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Directory where a maintenance hold (`POST /hold`) is kept, so that it outlives a restart of the
    /// controller (never its own end). Created (mode 0700) when missing. Without it a restart ends the hold.
    #[arg(long, env = "STATUS_CONTROLLER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// The scope this controller expects status-api to watch: KEY or KEY=VALUE. When set and status-api
    /// reports another scope, the controller holds. Empty or unset: whatever status-api watches.
    #[arg(long, env = "STATUS_CONTROLLER_SCOPE", value_parser = parse_scope)]
    pub scope: Option<ScopeArg>,

    /// One pass: print the plan as a table (and apply it unless --dry-run), then exit 0 in sync, 2 when drift
    /// was found, 1 on error.
    #[arg(long)]
    pub once: bool,

    /// Send notifications here (repeatable; in the environment, several separated by whitespace). A prefix
    /// picks the format: slack+https://…, ntfy+https://…, json+https://…; a plain http(s) URL gets json.
    /// URLs that carry a secret belong in --notify-url-file.
    #[arg(long = "notify-url", env = "STATUS_CONTROLLER_NOTIFY_URL", value_parser = NotifyUrlsParser)]
    pub notify_url: Vec<TargetList>,

    /// A file of notification URLs, one a line (blank lines and `#` comments skipped), for URLs that carry
    /// secrets; read at start-up.
    #[arg(long, env = "STATUS_CONTROLLER_NOTIFY_URL_FILE", value_parser = parse_url_file)]
    pub notify_url_file: Option<UrlFile>,

    /// Notify every heal too, batched (a few seconds' worth in one message).
    #[arg(
        long,
        env = "STATUS_CONTROLLER_NOTIFY_HEALS",
        action = ArgAction::SetTrue,
        value_parser = parse_switch
    )]
    pub notify_heals: bool,

    /// Notify a hold (status-api unreachable, stale, another scope, …) once it has lasted this long, and its
    /// end.
    #[arg(
        long,
        env = "STATUS_CONTROLLER_NOTIFY_HOLD_AFTER",
        default_value = "2m",
        value_parser = parse_duration
    )]
    pub notify_hold_after: Duration,

    /// `pretty` or `json`. Default: pretty on a terminal, else json.
    #[arg(long, env = "STATUS_CONTROLLER_LOG_FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,

    /// The Docker engine: unix:///path/to/docker.sock or tcp://host:port. Default: the local socket.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
}

/// Subcommands; without one, status-controller runs its loop (or one pass with `--once`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Probe this controller's /health on the --listen port and exit 0 if it answers 2xx, else 1. For the
    /// image's HEALTHCHECK: the image is FROM scratch and has no curl.
    Healthcheck,
}

impl Settings {
    /// `--scope`: the scope status-api must report, `None` to accept whatever it watches.
    pub fn scope(&self) -> Scope {
        self.scope.clone().and_then(|ScopeArg(scope)| scope)
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_else(LogFormat::detect)
    }

    /// Every `--allowed-hosts` given, together.
    pub fn allowed_hosts(&self) -> AllowedHosts {
        self.allowed_hosts.iter().cloned().collect()
    }

    /// Every `--cors-origin` given, together.
    pub fn cors_origins(&self) -> Vec<WebOrigin> {
        self.cors_origin.iter().flatten().cloned().collect()
    }

    /// Every notification receiver: `--notify-url`s, then the lines of `--notify-url-file`.
    pub fn notify_targets(&self) -> Vec<Target> {
        self.notify_url
            .iter()
            .flat_map(|list| list.0.iter().cloned())
            .chain(
                self.notify_url_file
                    .iter()
                    .flat_map(|file| file.targets.iter().cloned()),
            )
            .collect()
    }

    /// `--notify-heals` and `--notify-hold-after`.
    pub fn notify_options(&self) -> NotifyOptions {
        NotifyOptions {
            heals: self.notify_heals,
            hold_after: self.notify_hold_after,
        }
    }
}

/// `--api-url` through [`parse_api_url`], with clap's own "invalid value '…'" left out of the error: the
/// value may hold a password, which [`parse_api_url`] refuses without repeating it.
#[derive(Debug, Clone, Copy)]
pub struct ApiUrlParser;

impl clap::builder::TypedValueParser for ApiUrlParser {
    type Value = Url;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Url, clap::Error> {
        let refused = |problem: String| {
            let flag = arg.map_or_else(|| "--api-url".to_owned(), ToString::to_string);
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{flag}': {problem}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| {
            refused("it is not UTF-8: write it like http://127.0.0.1:8080".into())
        })?;
        parse_api_url(text).map_err(refused)
    }
}

/// Parses `--api-url`: an absolute `http://` or `https://` URL without query or fragment. The path may carry
/// a prefix (a reverse proxy's); it always ends with `/` afterwards so that endpoint paths join below it.
pub fn parse_api_url(value: &str) -> Result<Url, String> {
    let mut url = Url::parse(value.trim()).map_err(|err| {
        format!("`{value}` is not a URL ({err}): write it like http://127.0.0.1:8080")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{value}` uses {}: status-controller speaks http or https to status-api, e.g. \
             http://status-api:8080 (same host or pod network) or https://status-api.example.com (behind a \
             TLS proxy)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "`{value}` has no host: write it like http://127.0.0.1:8080"
        ));
    }
    // Credentials in the URL would be sent as basic auth and shown wherever the URL is (settings, errors);
    // the value is not echoed back for the same reason.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "--api-url carries a user name or password: give the URL without them, e.g. \
             https://status-api.example.com (the controller sends its bearer token from --token-file)"
                .to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{value}` has a query or fragment: give only the base URL, e.g. http://127.0.0.1:8080"
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Parses `--interval`: a duration of at least [`MIN_INTERVAL`].
pub fn parse_interval(value: &str) -> Result<Duration, String> {
    let interval = parse_duration(value)?;
    if interval < MIN_INTERVAL {
        return Err(format!(
            "`{value}` is shorter than {MIN_INTERVAL:?}: changes are already acted on at once through the long \
             poll, the interval is only a safety net; use e.g. 30s"
        ));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Settings::try_parse_from(std::iter::once("status-controller").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_spec() {
        let settings = parse(&[]).expect("no flags is valid");
        assert_eq!(settings.api_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(settings.listen.to_string(), "0.0.0.0:8000");
        assert_eq!(settings.interval, Duration::from_secs(30));
        assert_eq!(settings.unexpected, Unexpected::Stop);
        assert!(!settings.dry_run);
        assert!(!settings.once);
        assert!(settings.token_file.is_none());
        assert!(settings.state_dir.is_none());
        assert_eq!(settings.scope(), None);
        assert_eq!(settings.command, None);
        assert_eq!(settings.max_connections, 1024);
        assert!(settings.notify_targets().is_empty());
        assert_eq!(settings.notify_options(), NotifyOptions::default());
    }

    #[test]
    fn notify_flags_parse_and_add_up() {
        let dir = tempfile::tempdir().expect("a directory");
        let file = dir.path().join("urls");
        std::fs::write(&file, "# the team's\nntfy+https://ntfy.sh/SECRET\n").expect("write");
        let file_arg = file.to_str().expect("utf-8");
        let settings = parse(&[
            "--notify-url",
            "https://a.example/hook slack+https://hooks.slack.com/services/T/B/K",
            "--notify-url",
            "json+http://127.0.0.1:9/in",
            "--notify-url-file",
            file_arg,
            "--notify-heals",
            "--notify-hold-after",
            "30s",
        ])
        .expect("valid");
        let formats: Vec<_> = settings
            .notify_targets()
            .iter()
            .map(|target| target.format().to_string())
            .collect();
        assert_eq!(formats, ["json", "slack", "json", "ntfy"]);
        assert_eq!(
            settings.notify_options(),
            NotifyOptions {
                heals: true,
                hold_after: Duration::from_secs(30)
            }
        );
        assert!(
            !format!("{settings:?}").contains("SECRET"),
            "Debug shows no URL path"
        );
        std::fs::write(&file, "\nhttps://ok.example/\n  nope\n").expect("write");
        let err = parse(&["--notify-url-file", file_arg])
            .expect_err("line 3 is bad")
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains(file_arg), "{err}");
    }

    #[test]
    fn scope_parses_and_empty_means_unset() {
        let settings = parse(&["--scope", "team=web"]).expect("valid");
        assert_eq!(
            settings.scope().map(|scope| scope.to_string()).as_deref(),
            Some("team=web")
        );
        assert_eq!(parse(&["--scope", ""]).expect("valid").scope(), None);
        let err = parse(&["--scope", "=web"]).expect_err("no key").to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
    }

    #[test]
    fn healthcheck_is_a_subcommand_that_reads_the_listen_address() {
        let settings = parse(&["--listen", "0.0.0.0:9000", "healthcheck"]).expect("valid");
        assert_eq!(settings.command, Some(Command::Healthcheck));
        assert_eq!(settings.listen.port(), 9000);
    }

    #[test]
    fn every_flag_parses() {
        let settings = parse(&[
            "--api-url",
            "http://status-api:8080/prefix",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "5m",
            "--unexpected",
            "remove",
            "--dry-run",
            "--token-file",
            "/run/secrets/token",
            "--once",
            "--log-format",
            "json",
            "--max-connections",
            "64",
            "--state-dir",
            "/var/lib/status-controller",
        ])
        .expect("valid flags");
        assert_eq!(settings.api_url.as_str(), "http://status-api:8080/prefix/");
        assert_eq!(settings.listen.port(), 0);
        assert_eq!(settings.interval, Duration::from_secs(300));
        assert_eq!(settings.unexpected, Unexpected::Remove);
        assert!(settings.dry_run && settings.once);
        assert_eq!(
            settings.token_file.as_deref(),
            Some(std::path::Path::new("/run/secrets/token"))
        );
        assert_eq!(settings.log_format(), LogFormat::Json);
        assert_eq!(settings.max_connections, 64);
        assert_eq!(
            settings.state_dir.as_deref(),
            Some(std::path::Path::new("/var/lib/status-controller"))
        );
    }

    #[test]
    fn bad_values_are_refused_with_a_hint() {
        let cases: [(&[&str], &str); 12] = [
            (&["--notify-url", "hooks.example.com"], "slack+https://"),
            (
                &["--notify-url", "teams+https://x.example/"],
                "json, slack, ntfy",
            ),
            (&["--notify-hold-after", "soon"], "30s"),
            (&["--api-url", "status-api:8080"], "http://"),
            (
                &["--api-url", "ftp://status-api:8443"],
                "speaks http or https",
            ),
            (&["--api-url", "http://status-api:8080/?x=1"], "base URL"),
            (&["--interval", "often"], "30s"),
            (&["--interval", "10ms"], "shorter than 1s"),
            (&["--unexpected", "kill"], "stop, remove, ignore"),
            (&["--listen", "nowhere"], "nowhere"),
            (&["--log-format", "xml"], "pretty"),
            (&["--max-connections", "none"], "1 to 1000000"),
        ];
        for (args, hint) in cases {
            let err = parse(args).expect_err(&args.join(" ")).to_string();
            assert!(err.contains(hint), "{args:?}: {err}");
        }
    }

    #[test]
    fn credentials_in_the_api_url_are_refused_without_echoing_them() {
        for url in [
            "https://user:hunter2@proxy.example/",
            "https://hunter2@proxy.example/",
        ] {
            let err = parse(&["--api-url", url]).expect_err(url).to_string();
            assert!(err.contains("user name or password"), "{err}");
            assert!(!err.contains("hunter2"), "the secret is echoed: {err}");
        }
    }

    #[test]
    fn an_https_api_url_is_accepted() {
        let settings = parse(&["--api-url", "https://status-api.example.com:8443/dockstate"])
            .expect("https is fine");
        assert_eq!(
            settings.api_url.as_str(),
            "https://status-api.example.com:8443/dockstate/"
        );
    }

    #[test]
    fn a_refused_notify_url_is_never_repeated_whole() {
        for value in [
            "slack+ftp://user:pw@hooks.slack.com/services/T0/B0/SECRET?token=SECRET",
            "teams+https://hooks.example.com/SECRET",
            "https://SECRET:SECRET@/SECRET",
            "hooks.example.com/SECRET",
            "https://a.example/ok ntfy+gopher://ntfy.sh/SECRET",
        ] {
            let err = parse(&["--notify-url", value])
                .expect_err(value)
                .render()
                .to_string();
            assert!(!err.contains("SECRET"), "{value}: {err}");
            assert!(!err.contains("pw"), "{value}: {err}");
            assert!(err.contains("--notify-url"), "{value}: {err}");
        }
        let err = parse(&[
            "--notify-url",
            "slack+ftp://user:pw@hooks.slack.com/services/T0/B0/SECRET",
        ])
        .expect_err("ftp")
        .to_string();
        assert!(
            err.contains("URL number 1 (slack+ftp://hooks.slack.com/…) is refused"),
            "{err}"
        );
    }

    #[test]
    fn the_interval_can_be_long() {
        let settings = parse(&["--interval", "1h"]).expect("an hour is fine");
        assert_eq!(settings.interval, Duration::from_secs(3600));
    }

    #[test]
    fn unexpected_values_have_names() {
        use clap::ValueEnum;
        for value in Unexpected::value_variants() {
            let name = value.as_str();
            assert_eq!(Unexpected::from_str(name, false), Ok(*value));
        }
    }

    #[test]
    fn cors_origins_are_comma_separated_repeatable_and_none_by_default() {
        assert!(parse(&[]).expect("defaults").cors_origins().is_empty());
        assert!(parse(&["--cors-origin", ""])
            .expect("empty")
            .cors_origins()
            .is_empty());
        let settings = parse(&[
            "--cors-origin",
            "http://127.0.0.1:8080/,http://LOCALHOST:8080",
            "--cors-origin",
            "https://ops.example",
        ])
        .expect("origins");
        assert_eq!(
            settings
                .cors_origins()
                .iter()
                .map(WebOrigin::as_str)
                .collect::<Vec<_>>(),
            [
                "http://127.0.0.1:8080",
                "http://localhost:8080",
                "https://ops.example"
            ]
        );
        for (bad, hint) in [
            ("*", "not allowed"),
            ("http://127.0.0.1:8080/page", "has a path"),
            ("127.0.0.1:8080", "http://"),
        ] {
            let err = parse(&["--cors-origin", bad]).expect_err(bad);
            assert!(err.to_string().contains(hint), "{bad}: {err}");
        }
    }

    #[test]
    fn allowed_hosts_are_comma_separated_and_none_by_default() {
        assert_eq!(
            parse(&[]).expect("defaults").allowed_hosts(),
            AllowedHosts::default()
        );
        let settings =
            parse(&["--allowed-hosts", "dockstate-controller,Ctl.Example."]).expect("valid names");
        assert_eq!(
            settings.allowed_hosts().names().collect::<Vec<_>>(),
            ["dockstate-controller", "ctl.example"]
        );
        let err = parse(&["--allowed-hosts", "ctl:8000"]).expect_err("a port");
        assert!(err.to_string().contains("give the name alone"), "{err}");
    }
}
