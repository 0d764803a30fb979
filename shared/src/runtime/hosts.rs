//! Which `Host` a request may name: the guard against DNS rebinding. A web page on `evil.example` can re-point
//! that name at 127.0.0.1 and have the visitor's browser send it requests to a server on the visitor's machine,
//! and read the answers, because to the browser it is still talking to `evil.example` — but the request's
//! `Host` says `evil.example`. Both servers therefore answer only requests that name them by an IP address,
//! by `localhost` (or a `*.localhost` name, which browsers resolve to loopback themselves), or by a name the
//! operator allowed with `--allowed-hosts`; any other name is refused with 421 Misdirected Request and
//! `{"error": "host_not_allowed", ...}`. A request without a `Host` (HTTP/1.0) names nothing and is served: a
//! browser always sends one. The ports do not matter: a name is allowed on every port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// The longest DNS name (RFC 1035), so a refusal never echoes a megabyte.
const MAX_NAME: usize = 253;

/// What a request names in its `Host` header (or its request target's authority), the port dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestHost {
    /// An IP literal: `127.0.0.1`, `[::1]`.
    Ip(IpAddr),
    /// A DNS name, lower-cased and without a trailing dot.
    Name(String),
}

/// Why a `Host` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedHost {
    #[error("it is empty")]
    Empty,
    #[error("its port `{0}` is not a number")]
    BadPort(String),
    #[error("`[{0}]` is not an IPv6 address")]
    BadIpv6(String),
    #[error("it is not a DNS name (letters, digits, `-` and `_` in labels of 1 to 63, separated by dots)")]
    BadName,
}

/// Reads a `Host` value: `name`, `name:port`, `1.2.3.4`, `1.2.3.4:port`, `[v6]`, `[v6]:port` (a bare `::1`
/// too). Names are compared without case and without a trailing dot, as DNS compares them.
pub fn parse_host(value: &str) -> Result<RequestHost, MalformedHost> {
    if value.is_empty() {
        return Err(MalformedHost::Empty);
    }
    if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| MalformedHost::BadIpv6(rest.to_owned()))?;
        check_port(after)?;
        return inside
            .parse::<Ipv6Addr>()
            .map(|ip| RequestHost::Ip(IpAddr::V6(ip)))
            .map_err(|_| MalformedHost::BadIpv6(inside.to_owned()));
    }
    if let Ok(ip) = value.parse::<Ipv6Addr>() {
        return Ok(RequestHost::Ip(IpAddr::V6(ip)));
    }
    let host = match value.rsplit_once(':') {
        Some((host, port)) => {
            check_port(&format!(":{port}"))?;
            host
        }
        None => value,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(RequestHost::Ip(IpAddr::V4(ip)));
    }
    dns_name(host).map(RequestHost::Name)
}

/// `""` or `:` followed by a port number (RFC 3986 allows an empty one).
fn check_port(after: &str) -> Result<(), MalformedHost> {
    match after.strip_prefix(':') {
        None if after.is_empty() => Ok(()),
        Some(port) if port.is_empty() || port.parse::<u16>().is_ok() => Ok(()),
        Some(port) => Err(MalformedHost::BadPort(port.to_owned())),
        None => Err(MalformedHost::BadPort(after.to_owned())),
    }
}

/// A DNS name, lower-cased, or why not. Underscores are allowed: compose service names may carry them.
fn dns_name(host: &str) -> Result<String, MalformedHost> {
    let name = host.to_ascii_lowercase();
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > MAX_NAME || !name.split('.').all(label_ok) {
        return Err(MalformedHost::BadName);
    }
    Ok(name)
}

/// The names a server answers to besides IP addresses and localhost: `--allowed-hosts`. `*` allows every name
/// (the DNS-rebinding guard off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
    any: bool,
}

/// Parses `--allowed-hosts`: names separated by commas (blanks ignored), or `*` for any name.
pub fn parse_allowed_hosts(value: &str) -> Result<AllowedHosts, String> {
    let mut allowed = AllowedHosts::default();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry == "*" {
            allowed.any = true;
            continue;
        }
        // IP addresses are always served: listing one changes nothing.
        let bracketed_v6 = entry
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|inside| inside.parse::<Ipv6Addr>().is_ok());
        if bracketed_v6 || entry.parse::<IpAddr>().is_ok() {
            continue;
        }
        match parse_host(entry) {
            Ok(_) if entry.contains(':') => {
                return Err(format!(
                    "`{entry}` has a port: give the name alone (e.g. `status-api`), it is allowed on every port"
                ))
            }
            Ok(RequestHost::Name(name)) => allowed.names.push(name),
            Ok(RequestHost::Ip(_)) => {}
            Err(err) => {
                return Err(format!(
                    "`{entry}` is not a host name ({err}): give names separated by commas, e.g. \
                     `status-api,dockstate.example.com`, or `*` for any name"
                ))
            }
        }
    }
    Ok(allowed)
}

impl FromIterator<AllowedHosts> for AllowedHosts {
    fn from_iter<I: IntoIterator<Item = AllowedHosts>>(lists: I) -> Self {
        lists
            .into_iter()
            .fold(AllowedHosts::default(), |mut all, list| {
                all.any |= list.any;
                all.names.extend(list.names);
                all
            })
    }
}

impl AllowedHosts {
    /// Whether a request naming `host` is served.
    pub fn allows(&self, host: &RequestHost) -> bool {
        match host {
            RequestHost::Ip(_) => true,
            RequestHost::Name(name) => {
                self.any
                    || name == "localhost"
                    || name.ends_with(".localhost")
                    || self.names.iter().any(|allowed| allowed == name)
            }
        }
    }

    /// The names given, for the start-up log.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Whether `*` was given.
    pub fn any(&self) -> bool {
        self.any
    }
}

/// A `Host` this server does not answer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The value as received, cut short for the message.
    pub host: String,
    /// Why it is not served: not allowed, or not a host at all.
    pub malformed: Option<MalformedHost>,
}

/// Checks the host a request names: the authority of its target (absolute-form or HTTP/2 `:authority`) and its
/// `Host` header, each when present. Both must be served.
pub fn check_request_host(
    allowed: &AllowedHosts,
    authority: Option<&str>,
    host_header: Option<&[u8]>,
) -> Result<(), Refused> {
    let named = authority
        .map(|a| Ok(a.to_owned()))
        .into_iter()
        .chain(host_header.map(|raw| std::str::from_utf8(raw).map(str::to_owned)));
    for value in named {
        let value = value.map_err(|_| Refused {
            host: "(not UTF-8)".to_owned(),
            malformed: Some(MalformedHost::BadName),
        })?;
        let shown = || value.chars().take(MAX_NAME + 8).collect::<String>();
        match parse_host(&value) {
            Ok(host) if allowed.allows(&host) => {}
            Ok(_) => {
                return Err(Refused {
                    host: shown(),
                    malformed: None,
                })
            }
            Err(err) => {
                return Err(Refused {
                    host: shown(),
                    malformed: Some(err),
                })
            }
        }
    }
    Ok(())
}

/// The poem middleware that refuses requests naming a host the server does not answer to, before any route
/// runs. `env` is the program's variable for `--allowed-hosts`, named in the refusal.
#[derive(Debug, Clone)]
pub struct HostCheck {
    allowed: Arc<AllowedHosts>,
    env: &'static str,
}

impl HostCheck {
    pub fn new(allowed: AllowedHosts, env: &'static str) -> Self {
        Self {
            allowed: Arc::new(allowed),
            env,
        }
    }

    /// The answer to a refused request: 421 with `{"error": "host_not_allowed", "message": ...}`.
    pub fn refusal(&self, refused: &Refused) -> Response {
        let what = match &refused.malformed {
            Some(err) => format!("which is not a host name ({err})"),
            None => "which this server does not answer to".to_owned(),
        };
        let message = format!(
            "the request names host `{}`, {what}: it answers to IP addresses, `localhost` and the names given \
             in --allowed-hosts ({}, comma-separated). Use its IP address, or start it with --allowed-hosts \
             <name> to serve a name; other names are refused so that a web page cannot reach it through DNS \
             rebinding",
            refused.host, self.env
        );
        crate::runtime::http::error_json(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            message,
        )
    }
}

impl<E: Endpoint> Middleware<E> for HostCheck {
    type Output = HostCheckEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        HostCheckEndpoint {
            inner,
            check: self.clone(),
        }
    }
}

/// An endpoint behind [`HostCheck`].
#[derive(Debug)]
pub struct HostCheckEndpoint<E> {
    inner: E,
    check: HostCheck,
}

impl<E: Endpoint> Endpoint for HostCheckEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let checked = check_request_host(
            &self.check.allowed,
            request.uri().authority().map(|a| a.as_str()),
            request.headers().get(header::HOST).map(|v| v.as_bytes()),
        );
        match checked {
            Ok(()) => self
                .inner
                .call(request)
                .await
                .map(IntoResponse::into_response),
            Err(refused) => Ok(self.check.refusal(&refused)),
        }
    }
}

#[cfg(test)]
mod tests {
    use poem::{handler, EndpointExt};

    use super::*;

    fn name(value: &str) -> RequestHost {
        RequestHost::Name(value.to_owned())
    }

    fn ip(value: &str) -> RequestHost {
        RequestHost::Ip(value.parse().expect("an IP"))
    }

    #[test]
    fn hosts_parse_with_and_without_ports_brackets_case_and_trailing_dots() {
        for (value, host) in [
            ("127.0.0.1", ip("127.0.0.1")),
            ("127.0.0.1:8080", ip("127.0.0.1")),
            ("127.0.0.1.", ip("127.0.0.1")),
            ("10.1.2.3:", ip("10.1.2.3")),
            ("[::1]", ip("::1")),
            ("[::1]:8080", ip("::1")),
            ("[fe80::1:2]:1", ip("fe80::1:2")),
            ("::1", ip("::1")),
            ("[::ffff:127.0.0.1]:80", ip("::ffff:127.0.0.1")),
            ("localhost", name("localhost")),
            ("LocalHost:8080", name("localhost")),
            ("localhost.", name("localhost")),
            ("localhost.:80", name("localhost")),
            ("Status-API", name("status-api")),
            ("my_service:8000", name("my_service")),
            ("Evil.Example.COM.", name("evil.example.com")),
            // Not an IPv4 literal for us (browsers send the dotted quad they normalised it to): a name.
            ("2130706433", name("2130706433")),
        ] {
            assert_eq!(parse_host(value), Ok(host), "{value}");
        }
        for (value, err) in [
            ("", MalformedHost::Empty),
            ("[::1", MalformedHost::BadIpv6("::1".into())),
            ("[nope]:80", MalformedHost::BadIpv6("nope".into())),
            ("[::1]x", MalformedHost::BadPort("x".into())),
            ("[::1]:99999", MalformedHost::BadPort("99999".into())),
            ("host:http", MalformedHost::BadPort("http".into())),
            ("a..b", MalformedHost::BadName),
            (".", MalformedHost::BadName),
            ("évil.example", MalformedHost::BadName),
            ("evil.example/x", MalformedHost::BadName),
            ("user@evil", MalformedHost::BadName),
        ] {
            assert_eq!(parse_host(value), Err(err), "{value}");
        }
        assert_eq!(
            parse_host(&"a".repeat(64)),
            Err(MalformedHost::BadName),
            "a label over 63"
        );
    }

    #[test]
    fn ip_literals_and_localhost_are_served_other_names_only_when_allowed() {
        let none = AllowedHosts::default();
        for served in [
            ip("127.0.0.1"),
            ip("10.0.0.7"),
            ip("::1"),
            name("localhost"),
            name("app.localhost"),
        ] {
            assert!(none.allows(&served), "{served:?}");
        }
        for refused in [
            name("evil.example"),
            name("localhost.evil.example"),
            name("notlocalhost"),
            name("status-api"),
        ] {
            assert!(!none.allows(&refused), "{refused:?}");
        }
        let some = parse_allowed_hosts(" status-api , Dockstate.Example.com.,,").expect("valid");
        assert!(some.allows(&name("status-api")));
        assert!(some.allows(&name("dockstate.example.com")));
        assert!(!some.allows(&name("api.dockstate.example.com")));
        assert!(!some.allows(&name("evil.example")));
        let any = parse_allowed_hosts("*").expect("valid");
        assert!(any.allows(&name("evil.example")) && any.any());
        assert_eq!(parse_allowed_hosts(""), Ok(AllowedHosts::default()));
        let merged: AllowedHosts = [
            parse_allowed_hosts("a").expect("valid"),
            parse_allowed_hosts("b,c").expect("valid"),
        ]
        .into_iter()
        .collect();
        assert_eq!(merged.names().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn a_bad_allowed_host_says_how_to_write_one() {
        let err = parse_allowed_hosts("status-api:8080").expect_err("a port");
        assert!(err.contains("give the name alone"), "{err}");
        let err = parse_allowed_hosts("[::1]:80").expect_err("a port");
        assert!(err.contains("give the name alone"), "{err}");
        let err = parse_allowed_hosts("http://status-api").expect_err("a URL");
        assert!(err.contains("names separated by commas"), "{err}");
        // IP addresses are always served; listing them is allowed and changes nothing.
        assert_eq!(
            parse_allowed_hosts("127.0.0.1,::1,[::1]"),
            Ok(AllowedHosts::default())
        );
    }

    #[test]
    fn both_the_target_authority_and_the_host_header_must_be_served() {
        let allowed = parse_allowed_hosts("status-api").expect("valid");
        let check = |authority: Option<&str>, host: Option<&str>| {
            check_request_host(&allowed, authority, host.map(str::as_bytes))
        };
        assert_eq!(check(None, None), Ok(()), "HTTP/1.0 without Host");
        assert_eq!(check(None, Some("127.0.0.1:8080")), Ok(()));
        assert_eq!(check(None, Some("status-api:8080")), Ok(()));
        assert_eq!(check(Some("[::1]:8080"), None), Ok(()));
        let refused = check(None, Some("evil.example:8080")).expect_err("foreign");
        assert_eq!(refused.host, "evil.example:8080");
        assert_eq!(refused.malformed, None);
        assert!(check(Some("evil.example"), Some("127.0.0.1")).is_err());
        assert!(check(Some("127.0.0.1"), Some("evil.example")).is_err());
        let refused = check(None, Some("a b")).expect_err("malformed");
        assert_eq!(refused.malformed, Some(MalformedHost::BadName));
        let long = check(None, Some(&"a.".repeat(5000))).expect_err("too long");
        assert!(long.host.len() < 300);
        assert!(check_request_host(&allowed, None, Some(b"\xff")).is_err());
    }

    #[handler]
    fn hello() -> &'static str {
        "hello"
    }

    #[tokio::test]
    async fn the_middleware_answers_421_with_the_error_body_and_the_flag() {
        let allowed = parse_allowed_hosts("status-api").expect("valid");
        let app = hello.with(HostCheck::new(allowed, "TEST_ALLOWED_HOSTS"));
        let get = |host: Option<&str>| {
            let mut request = Request::builder();
            if let Some(host) = host {
                request = request.header(header::HOST, host);
            }
            app.call(request.finish())
        };
        for host in ["127.0.0.1:1", "[::1]:1", "localhost:1", "status-api:1"] {
            let response = get(Some(host)).await.expect("served");
            assert_eq!(response.status(), StatusCode::OK, "{host}");
            assert_eq!(
                response.into_body().into_string().await.expect("body"),
                "hello"
            );
        }
        let response = get(None).await.expect("served");
        assert_eq!(response.status(), StatusCode::OK, "no Host");
        let response = get(Some("evil.example")).await.expect("answered");
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
        let body: serde_json::Value =
            serde_json::from_slice(&response.into_body().into_vec().await.expect("body"))
                .expect("json");
        assert_eq!(body["error"], "host_not_allowed");
        let message = body["message"].as_str().unwrap_or_default();
        for part in ["`evil.example`", "--allowed-hosts", "TEST_ALLOWED_HOSTS"] {
            assert!(message.contains(part), "{message}");
        }
    }
}
