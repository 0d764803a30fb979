//! Process plumbing both binaries share: log set-up, the shutdown signal and flag parsers. Behind the
//! `runtime` feature so the types above stay free of it.

use std::io::IsTerminal;
use std::time::Duration;

use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

use crate::model::{LabelSelector, Scope};

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

/// Parses a duration written like `500ms`, `30s`, `5m`, `1h`; zero is refused.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(value.trim()).map_err(|err| {
        format!("`{value}` is not a duration ({err}): write it like 500ms, 30s, 5m or 1h")
    })?;
    if duration.is_zero() {
        return Err(format!(
            "`{value}` is zero: give a positive duration like 30s"
        ));
    }
    Ok(duration)
}

/// A parsed `--scope`: an empty value (as an unset variable in compose gives) means the whole host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeArg(pub Scope);

/// Parses `--scope KEY` or `--scope KEY=VALUE`.
pub fn parse_scope(value: &str) -> Result<ScopeArg, String> {
    if value.trim().is_empty() {
        return Ok(ScopeArg(None));
    }
    value
        .parse::<LabelSelector>()
        .map(|selector| ScopeArg(Some(selector)))
        .map_err(|err| err.to_string())
}

/// Installs the global `tracing` subscriber. `RUST_LOG` overrides the default filter.
/// Tests pass `std::io::sink` so they stay quiet unless they ask otherwise.
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
            .try_init(),
    };
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// The HTTP port could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}: {source}")]
pub struct BindError {
    pub address: std::net::SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds the HTTP listener before anything runs, so the caller learns the real address (port 0 resolved) —
/// what tests and start-up logs need.
pub async fn bind_http(
    address: std::net::SocketAddr,
) -> Result<(poem::listener::TcpAcceptor, std::net::SocketAddr), BindError> {
    use poem::listener::{Acceptor, Listener};

    let acceptor = poem::listener::TcpListener::bind(address)
        .into_acceptor()
        .await
        .map_err(|source| BindError { address, source })?;
    let bound = acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .unwrap_or(address);
    Ok((acceptor, bound))
}

/// A bearer token file that cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {path} is empty: {hint}")]
    Empty { path: String, hint: &'static str },
}

/// The token in `path`, trimmed of surrounding whitespace (a trailing newline is the usual). An empty file is
/// an error whose message ends with `empty_hint`, which says what belongs in it.
pub fn read_token_file(
    path: &std::path::Path,
    empty_hint: &'static str,
) -> Result<std::sync::Arc<str>, TokenFileError> {
    let path_text = || path.display().to_string();
    let raw = std::fs::read_to_string(path).map_err(|source| TokenFileError::Unreadable {
        path: path_text(),
        source,
    })?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty {
            path: path_text(),
            hint: empty_hint,
        });
    }
    Ok(std::sync::Arc::from(token))
}

/// A Docker client for `host` (`unix:///…`, `tcp://…`), else the local socket, whose requests fail after
/// `timeout` without an answer. No request is made until the first call; the API version is negotiated by
/// the caller, never pinned.
pub fn docker_client(
    host: Option<&str>,
    timeout: Duration,
) -> Result<bollard::Docker, bollard::errors::Error> {
    let docker = match host.filter(|host| !host.is_empty()) {
        Some(host) => bollard::Docker::connect_with_host(host),
        None => bollard::Docker::connect_with_local_defaults(),
    }?;
    Ok(docker.with_timeout(timeout))
}

/// A JSON error answer, `{"error": code, "message": …}`: the one shape of every 4xx and 5xx of both programs.
pub fn error_json(
    status: poem::http::StatusCode,
    code: &str,
    message: impl Into<String>,
) -> poem::Response {
    let body = crate::model::ErrorBody {
        error: code.to_owned(),
        message: message.into(),
    };
    poem::Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(serde_json::to_vec(&body).unwrap_or_default())
}

/// The JSON answer for an error the router or an extractor raised: unknown paths and methods get the hints
/// the caller gives (what this server does serve), anything else its status with a snake_case code.
pub fn router_error(
    err: &poem::Error,
    method: &str,
    path: &str,
    endpoints_hint: &str,
    methods_hint: &str,
) -> poem::Response {
    use poem::http::StatusCode;

    if err.is::<poem::error::NotFoundError>() {
        return error_json(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no endpoint at {method} {path}: {endpoints_hint}"),
        );
    }
    if err.is::<poem::error::MethodNotAllowedError>() {
        return error_json(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} does not accept {method}: {methods_hint}"),
        );
    }
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(error = %err, %method, %path, "request failed");
    }
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    error_json(status, &code, err.to_string())
}

/// Keeps the process to one malloc arena. glibc gives each thread that allocates concurrently an arena of its
/// own and keeps what is freed in each; for a server whose answers are large and short-lived (`/status` at
/// 1,000 containers is ~450 KB) that retained memory, not the data, dominates: measured at 1,000 containers,
/// 25.7 MiB resident with the default arenas, 18.7 MiB with one, at the same throughput. Call it first in
/// `main`, before any thread exists.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; called before any other thread runs, it races nothing.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Probes `http://<address>/health` with a bare HTTP/1.1 request — the `healthcheck` subcommand of both
/// binaries, for images built `FROM scratch` that have no curl. `Ok` when the answer is a 2xx.
pub fn probe_health(address: std::net::SocketAddr, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};

    // A server listening on every interface is probed on loopback.
    let address = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            std::net::SocketAddr::from(([127, 0, 0, 1], address.port()))
        }
        ip if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, address.port()))
        }
        _ => address,
    };
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|err| err.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|err| err.to_string())?;
    // One write: a request sent in pieces may meet a peer that answered and closed after the first one.
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("cannot send to {address}: {err}"))?;
    // Read until the status line is complete or the peer is done; a segment may end mid-line.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 256 {
        let read = stream
            .read(&mut buf)
            .map_err(|err| format!("no answer from {address}: {err}"))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buf[..read]);
    }
    let status_line = String::from_utf8_lossy(&head);
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('2') {
        Ok(())
    } else {
        Err(format!(
            "{address}/health answered {:?}",
            status_line.lines().next().unwrap_or_default()
        ))
    }
}

/// The id of the container this process runs in, or `None` outside a container. Read from the mount table,
/// where the engine bind-mounts `/etc/hostname` from `/var/lib/docker/containers/<id>/` (cgroup v1 and v2
/// alike, and whatever `--hostname` says).
pub fn own_container_id() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    container_id_from_mountinfo(&mountinfo)
}

/// The container id in a mount table, if the table is a container's.
pub fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (_, rest) = line.split_once("/containers/")?;
        let (id, file) = rest.split_once('/')?;
        let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        let is_ours = file.starts_with("hostname")
            || file.starts_with("hosts")
            || file.starts_with("resolv.conf");
        (is_id && is_ours).then(|| id.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_probe_reads_the_status_line() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let address = listener.local_addr().expect("address");
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            for answer in [
                "HTTP/1.1 200 OK\r\n\r\n",
                "HTTP/1.1 503 Service Unavailable\r\n\r\n",
            ] {
                let (mut stream, _) = listener.accept().expect("accepts");
                // Answer only once the whole request is in, as a real server would.
                let mut request = Vec::new();
                let mut buf = [0u8; 256];
                while !request.ends_with(b"\r\n\r\n") {
                    let read = stream.read(&mut buf).expect("reads the request");
                    assert!(read > 0, "the probe closed before finishing its request");
                    request.extend_from_slice(&buf[..read]);
                }
                assert!(request.starts_with(b"GET /health HTTP/1.1\r\n"));
                stream.write_all(answer.as_bytes()).expect("answers");
            }
        });
        assert_eq!(probe_health(address, Duration::from_secs(2)), Ok(()));
        let err = probe_health(address, Duration::from_secs(2)).expect_err("503 is unhealthy");
        assert!(err.contains("503"), "{err}");
        server.join().expect("server thread");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let gone = closed.local_addr().expect("address");
        drop(closed);
        assert!(probe_health(gone, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn the_token_is_read_trimmed_and_never_empty() {
        let dir = std::env::temp_dir().join(format!("dockstate-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creates a directory");
        let path = dir.join("token");
        std::fs::write(&path, "s3cret\n").expect("write");
        assert_eq!(
            read_token_file(&path, "hint").expect("token").as_ref(),
            "s3cret"
        );
        std::fs::write(&path, "  \n").expect("write");
        let err = read_token_file(&path, "put the secret in it").expect_err("empty");
        assert!(
            err.to_string().ends_with("is empty: put the secret in it"),
            "{err}"
        );
        let err = read_token_file(&dir.join("missing"), "hint").expect_err("missing");
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).expect("removes the directory");
    }

    #[test]
    fn finds_the_container_id_in_a_mount_table() {
        let id = "9f2c4088566cb91fcdab23d0647d906bb26dea1a2e42778c8856501d3035dc2f";
        let table = format!(
            "85 69 0:70 / /proc rw - proc proc rw\n\
             87 69 254:0 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&table).as_deref(), Some(id));
        assert_eq!(
            container_id_from_mountinfo("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"),
            None
        );
    }

    #[test]
    fn durations_parse_in_human_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").expect_err("zero").contains("positive"));
        assert!(parse_duration("soon").expect_err("junk").contains("30s"));
    }

    #[test]
    fn empty_scope_is_the_whole_host() {
        assert_eq!(parse_scope(""), Ok(ScopeArg(None)));
        let ScopeArg(scope) = parse_scope("a=b").expect("parses");
        assert_eq!(scope.map(|s| s.to_string()).as_deref(), Some("a=b"));
        assert!(parse_scope("=b").is_err());
    }

    #[test]
    fn log_formats() {
        assert_eq!(parse_log_format("json"), Ok(LogFormat::Json));
        assert!(parse_log_format("xml").is_err());
    }
}
