//! Swagger UI for a program's own OpenAPI document, as both programs serve it at `/docs`: a real HTML page
//! (a doctype, so no quirks mode, and the program's name as its title) that loads Swagger UI's script and
//! style from the same server and reads `/openapi.json`. Nothing is fetched from elsewhere, so it works
//! offline, and nothing is inline, so a strict `Content-Security-Policy` can forbid inline script.
//!
//! Swagger UI itself is the copy poem-openapi compiles in (its `swagger-ui` feature): it offers it only as
//! one page with the script, the style and the document inlined, so the two are taken out of that page once.

use std::sync::OnceLock;

use poem_openapi::OpenApiService;

/// Where the page, its script, its style and its start-up script are served.
pub const PAGE_PATHS: [&str; 2] = ["/docs", "/docs/"];
pub const SCRIPT_PATH: &str = "/docs/swagger-ui-bundle.js";
pub const STYLE_PATH: &str = "/docs/swagger-ui.css";
pub const INIT_PATH: &str = "/docs/swagger-init.js";

/// Only this server's own files and answers: no inline or evaluated script, no other origin, no framing.
/// Swagger UI sets element styles from its script (allowed: that is not inline markup) and draws its icons
/// from `data:` images in its style sheet.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// Starts Swagger UI over this server's `/openapi.json`.
pub const INIT_SCRIPT: &str = "\"use strict\";\n\
window.addEventListener(\"DOMContentLoaded\", function () {\n\
  SwaggerUIBundle({ url: \"/openapi.json\", dom_id: \"#ui\", deepLinking: true, filter: false });\n\
});\n";

/// The icon both programs serve at `/favicon.ico`, which browsers ask for on every first visit (without it,
/// every visit to `/docs` logs a 404): a whale-blue square with a check mark, dockstate keeping things as
/// they should be.
pub const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#1d63ed\"/>\
<path d=\"M4 8.5l2.5 2.5L12 5.5\" stroke=\"#fff\" stroke-width=\"2\" fill=\"none\"/></svg>";

/// The page for a program: `<title>` is `{program} — API docs`.
pub fn page(program: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>dockstate {program} — API docs</title>\n\
         <link rel=\"icon\" href=\"/favicon.ico\">\n\
         <link rel=\"stylesheet\" href=\"{STYLE_PATH}\">\n\
         <script src=\"{SCRIPT_PATH}\"></script>\n\
         <script src=\"{INIT_PATH}\"></script>\n\
         </head>\n<body>\n<div id=\"ui\"></div>\n</body>\n</html>\n"
    )
}

/// Adds to every operation of `document` the answers the server's edge gives before any operation runs, so
/// that a client (or a fuzzer) finds every status it can get in the document: 405 with `Allow`, 414, 421
/// and 431, each with the `{error, message}` body of the schema `ErrorBody`.
pub fn add_edge_answers(document: &mut serde_json::Value) {
    let error_body = serde_json::json!({
        "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } }
    });
    let answers = [
        (
            "405",
            "`method_not_allowed`: the path exists, but not with this method; `Allow` lists the methods it takes.",
        ),
        (
            "414",
            "`uri_too_long`: the request line is longer than 16 KiB. Answered before the operation runs, and \
             the connection is closed; a request within this document's bounds is never this long.",
        ),
        (
            "421",
            "`host_not_allowed`: the `Host` header names a host this server does not answer to (an IP address, \
             `localhost` or a name given in `--allowed-hosts`), the defence against DNS rebinding.",
        ),
        (
            "431",
            "`headers_too_large`: the request head is larger than 64 KiB or has more than 96 lines. Answered \
             before the operation runs, and the connection is closed.",
        ),
    ];
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|operations| operations.values_mut())
    {
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        for (status, description) in answers {
            let mut answer = serde_json::json!({
                "description": description,
                "content": error_body.clone(),
            });
            if status == "405" {
                answer["headers"] = serde_json::json!({
                    "Allow": {
                        "description": "The methods the path takes, e.g. `GET, HEAD`.",
                        "required": true,
                        "schema": { "type": "string" }
                    }
                });
            }
            responses.entry(status).or_insert(answer);
        }
    }
}

/// Swagger UI's script (`swagger-ui-bundle.js`, about 1.4 MB).
pub fn script() -> &'static str {
    &assets().script
}

/// Swagger UI's style sheet.
pub fn style() -> &'static str {
    &assets().style
}

struct Assets {
    script: String,
    style: String,
}

/// Taken once from the page poem-openapi makes, which holds them as `<style charset="UTF-8">…</style>` and
/// `<script charset="UTF-8">…</script>` (an inline script cannot hold `</script>`, so the first one ends it).
fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let html = OpenApiService::new((), "", "").swagger_ui_html();
        Assets {
            script: between(&html, "<script charset=\"UTF-8\">", "</script>"),
            style: between(&html, "<style charset=\"UTF-8\">", "</style>"),
        }
    })
}

/// The text between the first `start` and the `end` after it; empty when there is none (a test fails then).
fn between(text: &str, start: &str, end: &str) -> String {
    text.split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(inside, _)| inside.to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_are_swagger_ui_and_the_page_loads_them() {
        assert!(script().len() > 500_000, "{}", script().len());
        assert!(script().contains("SwaggerUIBundle"));
        assert!(style().contains(".swagger-ui"), "{}", &style()[..200]);
        let page = page("status-api");
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(page.contains("<title>dockstate status-api — API docs</title>"));
        for path in [SCRIPT_PATH, STYLE_PATH, INIT_PATH] {
            assert!(page.contains(path), "{path}");
        }
        assert!(!page.contains("<script>"), "no inline script: {page}");
    }
}
