//! Web origins (`scheme://host[:port]`, as a browser sends them in `Origin`): the live page of status-api is one,
//! and status-controller serves its read-only endpoints to it (`--cors-origin`); status-api's page is told where
//! the controller is (`--controller-url`), and its `Content-Security-Policy` lets it talk to that origin and
//! no other. Both flags are parsed here, so the two programs agree on what an origin is.

use std::fmt;

use poem::http::uri::{Scheme, Uri};

/// An `http` or `https` origin in the form a browser serialises it: the scheme and host lower-cased, the
/// default port dropped, no path. Compared as text with a request's `Origin` header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebOrigin(String);

impl WebOrigin {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A base URL a browser can reach (status-controller's, for status-api's page): `http(s)://host[:port]` with an
/// optional path prefix, no trailing `/`, no user, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    url: String,
    origin: WebOrigin,
}

impl BaseUrl {
    /// The URL without a trailing `/`: a path like `/actions` is appended to it.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Its origin, for a `Content-Security-Policy`.
    pub fn origin(&self) -> &WebOrigin {
        &self.origin
    }
}

/// The parts of an absolute `http(s)` URL, checked: its origin and its path (`/` when it has none).
fn split(value: &str, what: &str, example: &str) -> Result<(WebOrigin, String), String> {
    let trimmed = value.trim();
    let uri: Uri = trimmed
        .parse()
        .map_err(|_| format!("`{value}` is not a URL: give {what} like {example}"))?;
    let scheme = match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTP => "http",
        Some(scheme) if *scheme == Scheme::HTTPS => "https",
        _ => {
            return Err(format!(
                "`{value}` does not start with http:// or https://: give {what} like {example}"
            ))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{value}` names no host: give {what} like {example}"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "`{value}` carries a user name: a browser does not send one; give {what} like {example}"
        ));
    }
    if authority.host().is_empty() {
        return Err(format!(
            "`{value}` names no host: give {what} like {example}"
        ));
    }
    if trimmed.contains('#') || uri.query().is_some() {
        return Err(format!(
            "`{value}` has a query or a fragment: give {what} like {example}"
        ));
    }
    let host = authority.host().to_ascii_lowercase();
    let default = if scheme == "http" { 80 } else { 443 };
    let origin = match authority.port_u16() {
        Some(port) if port != default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    };
    Ok((WebOrigin(origin), uri.path().to_owned()))
}

/// Parses one origin for `--cors-origin`: `http(s)://host[:port]`, a trailing `/` allowed, no path.
pub fn parse_origin(value: &str) -> Result<WebOrigin, String> {
    const EXAMPLE: &str = "http://127.0.0.1:8080 (scheme, host and port only)";
    if value.trim() == "*" {
        return Err(
            "`*` is not allowed: name the origin of the page that may read this server's answers, like \
             http://127.0.0.1:8080, so that no other web page the operator visits can read them"
                .to_owned(),
        );
    }
    let (origin, path) = split(value, "an origin", EXAMPLE)?;
    if path != "/" {
        return Err(format!(
            "`{value}` has a path (`{path}`): an origin is {EXAMPLE}"
        ));
    }
    Ok(origin)
}

/// Parses a comma-separated list of origins (`--cors-origin a,b`); empty entries are skipped, so an unset
/// variable in a compose file gives none.
pub fn parse_origins(value: &str) -> Result<Vec<WebOrigin>, String> {
    value
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(parse_origin)
        .collect()
}

/// Parses a base URL (`--controller-url`): an absolute `http(s)` URL, with a path prefix if the server is
/// behind a proxy at one; the trailing `/` is dropped.
pub fn parse_base_url(value: &str) -> Result<BaseUrl, String> {
    let (origin, path) = split(value, "the URL", "http://127.0.0.1:8000")?;
    let path = path.trim_end_matches('/');
    Ok(BaseUrl {
        url: format!("{origin}{path}"),
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_written_as_browsers_send_them() {
        for (given, origin) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("HTTP://LocalHost:8080", "http://localhost:8080"),
            ("http://example.com:80", "http://example.com"),
            (
                "https://dockstate.example:443/",
                "https://dockstate.example",
            ),
            ("https://[::1]:8443", "https://[::1]:8443"),
        ] {
            assert_eq!(
                parse_origin(given).map(|o| o.to_string()),
                Ok(origin.to_owned()),
                "{given}"
            );
        }
    }

    #[test]
    fn anything_but_an_origin_is_refused_with_a_hint() {
        for (given, hint) in [
            ("*", "not allowed"),
            ("127.0.0.1:8080", "http://"),
            ("ftp://example.com", "http://"),
            ("http://example.com/page", "has a path"),
            ("http://user@example.com", "user name"),
            ("http://example.com/?x=1", "query"),
            ("not a url", "not a URL"),
            ("", "not a URL"),
        ] {
            let err = parse_origin(given).expect_err(given);
            assert!(err.contains(hint), "{given}: {err}");
        }
    }

    #[test]
    fn a_list_of_origins_is_comma_separated_and_may_be_empty() {
        assert_eq!(parse_origins(""), Ok(Vec::new()));
        let both = parse_origins("http://127.0.0.1:8080, http://localhost:8080,").expect("two");
        assert_eq!(
            both.iter().map(WebOrigin::as_str).collect::<Vec<_>>(),
            ["http://127.0.0.1:8080", "http://localhost:8080"]
        );
        assert!(parse_origins("http://a.example,*").is_err());
    }

    #[test]
    fn a_base_url_keeps_its_path_prefix_and_knows_its_origin() {
        let url = parse_base_url("http://127.0.0.1:8000/").expect("a URL");
        assert_eq!(url.as_str(), "http://127.0.0.1:8000");
        assert_eq!(url.origin().as_str(), "http://127.0.0.1:8000");
        let url = parse_base_url("https://Ops.Example/dockstate/controller/").expect("a prefix");
        assert_eq!(url.as_str(), "https://ops.example/dockstate/controller");
        assert_eq!(url.origin().as_str(), "https://ops.example");
        for bad in [
            "127.0.0.1:8000",
            "http://a@b",
            "http://x/?q",
            "javascript:alert(1)",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }
}
