//! The controller's own OpenAPI document (`GET /openapi.json`) and Swagger UI over it (`GET /docs`), offline,
//! as status-api serves its own. The document is written by hand in `openapi.json` beside this file: the
//! handlers in [`crate::server`] write their JSON with serde, and the contract test (status-api's
//! `tests/contract.rs`) holds the two together with schemathesis against a real controller.

use std::sync::OnceLock;

use poem::http::header;
use poem::{handler, Response};
use shared::runtime::api_docs;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";

const DOCUMENT: &str = include_str!("openapi.json");

/// How long a browser may use its copy before asking again.
const CACHE_CONTROL: &str = "public, max-age=300";

/// The document, with this build's version and the answers of the server's edge (405, 414, 421, 431) on
/// every operation. Made once.
pub fn document() -> &'static str {
    static MADE: OnceLock<String> = OnceLock::new();
    MADE.get_or_init(|| {
        let mut document: serde_json::Value =
            serde_json::from_str(DOCUMENT).expect("openapi.json is JSON (a unit test reads it)");
        document["info"]["version"] = env!("CARGO_PKG_VERSION").into();
        api_docs::add_edge_answers(&mut document);
        document.to_string()
    })
}

#[handler]
pub fn openapi_json() -> Response {
    Response::builder()
        .content_type("application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .body(document())
}

/// `/favicon.ico`, which browsers ask for on every first visit.
#[handler]
pub fn favicon() -> Response {
    Response::builder()
        .content_type("image/svg+xml")
        .header(header::CACHE_CONTROL, "public, max-age=86400")
        .body(api_docs::FAVICON)
}

#[handler]
pub fn docs_page() -> Response {
    docs_file(
        "text/html; charset=utf-8",
        api_docs::page("status-controller"),
    )
}

#[handler]
pub fn docs_script() -> Response {
    docs_file("text/javascript; charset=utf-8", api_docs::script())
}

#[handler]
pub fn docs_style() -> Response {
    docs_file("text/css; charset=utf-8", api_docs::style())
}

#[handler]
pub fn docs_init() -> Response {
    docs_file("text/javascript; charset=utf-8", api_docs::INIT_SCRIPT)
}

/// A file of `/docs`, under the docs' Content-Security-Policy.
fn docs_file(content_type: &'static str, body: impl Into<poem::Body>) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .header(
            header::CONTENT_SECURITY_POLICY,
            api_docs::CONTENT_SECURITY_POLICY,
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_json_with_this_version_and_the_edge_answers() {
        let document: serde_json::Value = serde_json::from_str(document()).expect("json");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        let paths = document["paths"].as_object().expect("paths");
        let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
        listed.sort_unstable();
        assert_eq!(
            listed,
            ["/actions", "/health", "/hold", "/metrics", "/ready"]
        );
        for (path, operations) in paths {
            for (method, operation) in operations.as_object().expect("operations") {
                for status in ["405", "414", "421", "431"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path} lacks {status}"
                    );
                }
                assert!(
                    operation["responses"]["405"]["headers"]["Allow"].is_object(),
                    "{method} {path}"
                );
            }
        }
    }
}
