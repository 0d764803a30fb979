//! The HTTP edge around the operations: every error becomes `{error, message}` JSON with a message that says
//! what to fix, every answer is counted in the metrics under its route template, and every request runs in
//! a `request` span (method, route, status, duration) that ends with one log line.

use std::time::Instant;

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::error::{ParseParamError, ParsePathError};
use tracing::field::Empty;
use tracing::Instrument;

use crate::metrics::Metrics;

/// Wraps the whole application: JSON errors inside, metrics and the request's log line outside, so both
/// see the final status.
pub async fn around<E: Endpoint>(
    endpoint: std::sync::Arc<E>,
    request: Request,
    metrics: Metrics,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = request.method().clone();
    let route = route_of(request.uri().path());
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route,
        status = Empty,
        duration_ms = Empty
    );
    let response = async {
        match endpoint.call(request).await {
            Ok(response) => response.into_response(),
            Err(err) => error_response(&err, method.as_str(), &path),
        }
    }
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics.observe_request(method_label(&method), route, status, elapsed);
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

fn error_response(err: &poem::Error, method: &str, path: &str) -> Response {
    if let Some(param) = err.downcast_ref::<ParseParamError>() {
        return error_json(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "query parameter `{}` is invalid ({}): {}",
                param.name,
                param.reason,
                parameter_hint(param.name)
            ),
        );
    }
    if let Some(param) = err.downcast_ref::<ParsePathError>() {
        return error_json(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("path segment `{}` is invalid: {}", param.name, param.reason),
        );
    }
    shared::runtime::http::router_error(
        err,
        method,
        path,
        "the API is described at /docs and /openapi.json",
        "see /docs for the methods it takes",
    )
}

/// What a valid value of each query parameter looks like.
fn parameter_hint(name: &str) -> &'static str {
    match name {
        "all" => "use all=true or all=false",
        "state" => "use one of created, running, paused, restarting, removing, exited, dead",
        "since" => "use a revision number (a whole number) from an earlier answer",
        "wait" => "use a whole number of seconds from 0 to 60",
        "label" => "use KEY or KEY=VALUE",
        _ => "see /docs for the values it takes",
    }
}

/// The route template a path belongs to, so metrics never get a label per container name.
pub fn route_of(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => "/",
        ["status"] => "/status",
        ["status", _] => "/status/{name_or_id}",
        ["snapshot"] => "/snapshot",
        ["snapshot", "containers", _, "spec"] => "/snapshot/containers/{name}/spec",
        ["drift"] => "/drift",
        ["health"] => "/health",
        ["ready"] => "/ready",
        ["metrics"] => "/metrics",
        ["openapi.json"] => "/openapi.json",
        ["docs", ..] => "/docs",
        _ => "unmatched",
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
    }
}
