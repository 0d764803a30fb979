//! The HTTP edge around the operations: every error becomes `{error, message}` JSON with a message that says
//! what to fix, every answer is counted in the metrics under its route template, and every request runs in
//! a `request` span (method, route, status, duration) that ends with one log line.

use std::time::Instant;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::error::{AuthorizationError, ParseParamError, ParsePathError};
use tracing::field::Empty;
use tracing::Instrument;

use super::filter::MAX_FILTER_VALUES;
use crate::metrics::{Metrics, ROUTES};

/// Wraps the whole application: JSON errors inside, metrics and the request's log line outside, so both
/// see the final status.
pub async fn around<E: Endpoint>(
    endpoint: std::sync::Arc<E>,
    request: Request,
    metrics: Metrics,
    token_configured: bool,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = request.method().clone();
    let route_index = route_index(request.uri().path());
    let route = ROUTES[route_index];
    // For the message of an error answer: a reference-counted copy, not a new string per request.
    let uri = request.uri().clone();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route,
        status = Empty,
        duration_ms = Empty
    );
    let response = async {
        let response = match endpoint.call(request).await {
            Ok(response) => response.into_response(),
            Err(err) => error_response(
                &err,
                method.as_str(),
                uri.path(),
                uri.query().unwrap_or_default(),
                token_configured,
            ),
        };
        with_standard_headers(response, route)
    }
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics.observe_request(method_label(&method), route_index, status, elapsed);
    span.record("status", status);
    span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
    let _entered = span.enter();
    if is_probe(route) {
        tracing::debug!("request answered");
    } else {
        tracing::info!("request answered");
    }
    Ok(response)
}

/// Routes that probes and scrapers call every few seconds: logged at debug, so they do not flood the logs.
fn is_probe(route: &str) -> bool {
    matches!(route, "/health" | "/ready" | "/metrics")
}

pub use shared::runtime::http::error_json;
use shared::runtime::http::method_label;

fn error_response(
    err: &poem::Error,
    method: &str,
    path: &str,
    query: &str,
    token_configured: bool,
) -> Response {
    if let Some(param) = err.downcast_ref::<ParseParamError>() {
        let values = received(query, param.name);
        let message = match param.name {
            name @ ("label" | "name") if values.len() > MAX_FILTER_VALUES => {
                super::filter::FilterError::TooMany {
                    name,
                    count: values.len(),
                }
                .to_string()
            }
            name => bad_parameter(name, &values),
        };
        return error_json(StatusCode::BAD_REQUEST, "bad_request", message);
    }
    if let Some(param) = err.downcast_ref::<ParsePathError>() {
        return error_json(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("path segment `{}` is invalid: {}", param.name, param.reason),
        );
    }
    if err.is::<AuthorizationError>() {
        return super::auth::missing_token(token_configured);
    }
    shared::runtime::http::router_error(
        err,
        method,
        path,
        "the API is described at /docs and /openapi.json",
        "see /docs for the methods it takes",
    )
}

/// What HTTP clients expect of every answer: `WWW-Authenticate` on a 401 (RFC 9110 §11.6.1) and `Allow`
/// on a 405 (§15.5.6).
fn with_standard_headers(mut response: Response, route: &str) -> Response {
    match response.status() {
        StatusCode::UNAUTHORIZED => {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"status-api\""),
            );
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            if let Some(allowed) = allowed_methods(route) {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allowed));
            }
        }
        _ => {}
    }
    response
}

/// The methods a route answers.
fn allowed_methods(route: &str) -> Option<&'static str> {
    match route {
        "unmatched" => None,
        "/snapshot" => Some("GET, HEAD, POST"),
        "/snapshot/containers/{name}" => Some("PUT, DELETE"),
        _ => Some("GET, HEAD"),
    }
}

/// The values a query string gives a parameter, decoded, for a message that shows what was received.
fn received(query: &str, name: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .collect()
}

/// A 400's message in plain words: the parameter, the value received, and the values it takes.
fn bad_parameter(name: &str, values: &[String]) -> String {
    let shown = |value: &String| {
        if value.is_empty() {
            return "empty".to_owned();
        }
        let short: String = value.chars().take(64).collect();
        if short.len() < value.len() {
            format!("`{short}…`")
        } else {
            format!("`{short}`")
        }
    };
    let received = match values {
        [] => "has no value".to_owned(),
        [one] => format!("is {}", shown(one)),
        many => format!(
            "is {}",
            many.iter().map(shown).collect::<Vec<_>>().join(", ")
        ),
    };
    format!(
        "query parameter `{name}` {received}: {}",
        parameter_hint(name)
    )
}

/// What a valid value of each query parameter looks like.
fn parameter_hint(name: &str) -> &'static str {
    match name {
        "all" => "use all=true or all=false",
        "state" => "use one of created, running, paused, restarting, removing, exited, dead (repeat it for several, at most 7 times)",
        "since" => "use a revision number from an earlier answer (a whole number from 0 to 1000000000000000)",
        "wait" => "use a whole number of seconds from 0 to 60",
        "label" => "use KEY or KEY=VALUE, 1 to 100 characters (repeat it to require several, at most 8)",
        "name" => "use a regular expression (RE2 syntax) of 1 to 64 characters, as `docker ps --filter name=` takes (at most 8)",
        _ => "see /docs for the values it takes",
    }
}

/// The route template a path belongs to, so metrics never get a label per container name.
pub fn route_of(path: &str) -> &'static str {
    ROUTES[route_index(path)]
}

/// The index in [`ROUTES`] of the template a path belongs to. Reads the path without allocating: it runs
/// for every request.
pub fn route_index(path: &str) -> usize {
    let mut segments = path.trim_matches('/').split('/');
    let first = segments.next().unwrap_or_default();
    let (second, third, fourth, more) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next().is_some(),
    );
    // Indexes into ROUTES, in its order (the test maps a path to every one of them).
    match (first, second, third, fourth, more) {
        ("", None, ..) => 0,
        ("status", None, ..) => 1,
        ("status", Some(_), None, ..) => 2,
        ("snapshot", None, ..) => 3,
        ("snapshot", Some("containers"), Some(_), Some("spec"), false) => 4,
        ("snapshot", Some("containers"), Some(_), None, _) => 5,
        ("drift", None, ..) => 6,
        ("health", None, ..) => 7,
        ("ready", None, ..) => 8,
        ("metrics", None, ..) => 9,
        ("openapi.json", None, ..) => 10,
        ("docs", ..) => 11,
        ("favicon.ico", None, ..) => 12,
        ("ui.js", None, ..) => 13,
        ("ui.css", None, ..) => 14,
        _ => 15,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        assert_eq!(route_of("/status"), "/status");
        assert_eq!(route_of("/status/"), "/status");
        assert_eq!(route_of("/status/web-1"), "/status/{name_or_id}");
        assert_eq!(
            route_of("/snapshot/containers/web/spec"),
            "/snapshot/containers/{name}/spec"
        );
        assert_eq!(route_of("/docs/swagger-ui.css"), "/docs");
        assert_eq!(route_of("/nope/at/all"), "unmatched");
        assert_eq!(route_of("/"), "/");
        assert_eq!(route_of("/ui.js"), "/ui.js");
        assert_eq!(route_of("/status/a/b"), "unmatched");
        assert_eq!(
            route_of("/snapshot/containers/web"),
            "/snapshot/containers/{name}"
        );
        assert_eq!(route_of("/snapshot/containers/web/spec/x"), "unmatched");
        assert_eq!(route_of("/snapshot/other/web"), "unmatched");
        assert_eq!(route_of("/health/x"), "unmatched");
        // One path for every template, in the order of ROUTES: each index names its own template.
        let paths = [
            "/",
            "/status",
            "/status/web",
            "/snapshot",
            "/snapshot/containers/web/spec",
            "/snapshot/containers/web",
            "/drift",
            "/health",
            "/ready",
            "/metrics",
            "/openapi.json",
            "/docs",
            "/favicon.ico",
            "/ui.js",
            "/ui.css",
            "/elsewhere",
        ];
        assert_eq!(paths.len(), ROUTES.len());
        for (index, path) in paths.into_iter().enumerate() {
            assert_eq!(route_index(path), index, "{path}");
        }
        assert_eq!(ROUTES[15], "unmatched");
        for (index, route) in ROUTES.iter().enumerate() {
            assert_eq!(
                ROUTES.iter().position(|r| r == route),
                Some(index),
                "{route} once"
            );
        }
    }
}
