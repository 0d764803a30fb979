//! The live page at `/` (SPEC "Endpoints"): the containers, the drift and the baseline, kept current in the
//! browser through the long poll of `GET /status`. Its three files are compiled into the binary and served like
//! `/docs` (gzip, `ETag`, `Cache-Control`); a strict `Content-Security-Policy` lets it load nothing but them and
//! talk to nothing but this server — and, with `--controller-url`, status-controller's origin, whose read-only
//! `/actions` it shows — so a hostile container name or label could not run as script even if the page were
//! careless with it (it is not: `ui.js` writes every value as text).

use std::sync::Arc;

use bytes::Bytes;
use poem::http::header;
use poem::middleware::SetHeader;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};

use shared::runtime::origin::{BaseUrl, WebOrigin};

use super::serve;
use super::statics::Static;

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/ui.js");
const STYLE: &str = include_str!("../ui/ui.css");

/// Only this server's own files and answers, and the controller's answers when there is one: no inline script
/// or style, no other origin, no framing.
pub(super) fn content_security_policy(controller: Option<&WebOrigin>) -> String {
    let connect = match controller {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src {connect}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `site` with the page at `/` and its script and style at `/ui.js` and `/ui.css`; the page names
/// `controller` for its script to read, and its policy lets it talk to that origin.
///
/// `/` is answered in front of the router: the API is nested at `/`, and poem's router gives a nest's
/// catch-all the empty rest of `/` before an exact route there.
pub(super) fn with_page(site: Route, controller: Option<BaseUrl>) -> impl Endpoint {
    let policy = content_security_policy(controller.as_ref().map(BaseUrl::origin));
    let site = site
        .at(
            "/ui.js",
            file("text/javascript; charset=utf-8", &policy, || {
                Bytes::from_static(SCRIPT.as_bytes())
            }),
        )
        .at(
            "/ui.css",
            file("text/css; charset=utf-8", &policy, || {
                Bytes::from_static(STYLE.as_bytes())
            }),
        );
    let index = index_html(controller.as_ref());
    AtRoot {
        page: file("text/html; charset=utf-8", &policy, move || index.clone()),
        site,
    }
}

/// `page` for the path `/`, `site` for every other.
struct AtRoot<P, E> {
    page: P,
    site: E,
}

impl<P: Endpoint, E: Endpoint> Endpoint for AtRoot<P, E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        if request.uri().path() == "/" {
            self.page
                .call(request)
                .await
                .map(IntoResponse::into_response)
        } else {
            self.site
                .call(request)
                .await
                .map(IntoResponse::into_response)
        }
    }
}

/// The page, naming this build's version in its asset URLs, so that a browser never pairs a cached script of
/// one version with the page of another, and the controller's URL (empty without one) in a `<meta>` the
/// script reads.
fn index_html(controller: Option<&BaseUrl>) -> Bytes {
    let controller = controller.map(BaseUrl::as_str).unwrap_or_default();
    Bytes::from(
        INDEX
            .replace("{version}", env!("CARGO_PKG_VERSION"))
            .replace("{controller_url}", &attribute(controller)),
    )
}

/// `value` safe inside a double-quoted HTML attribute.
fn attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn file(
    content_type: &'static str,
    policy: &str,
    render: impl Fn() -> Bytes + Send + Sync + 'static,
) -> impl poem::Endpoint {
    serve(Arc::new(Static::new(content_type, render))).with(
        SetHeader::new()
            .overriding(header::CONTENT_SECURITY_POLICY, policy)
            .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .overriding(header::REFERRER_POLICY, "no-referrer"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `src="…"` and `href="…"` of the page.
    fn references(html: &str) -> Vec<&str> {
        ["src=\"", "href=\""]
            .iter()
            .flat_map(|attribute| html.split(attribute).skip(1))
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    #[test]
    fn the_page_loads_only_its_own_files_and_writes_values_as_text() {
        let html = String::from_utf8(index_html(None).to_vec()).expect("utf-8");
        let references = references(&html);
        assert!(references.contains(&"/docs"), "{references:?}");
        for reference in &references {
            assert!(
                reference.starts_with('/') && !reference.starts_with("//"),
                "`{reference}` is not this server's own path"
            );
        }
        assert!(html.contains(&format!("/ui.js?v={}", env!("CARGO_PKG_VERSION"))));
        assert!(!html.contains("{version}"));
        // Inline script or style would be refused by the policy: the page has neither.
        assert!(!html.contains("<style") && !html.contains(" style="));
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains("<script src=\"/ui.js"));
        // Names and labels are hostile input: the script never parses a value as markup.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!SCRIPT.contains(sink), "ui.js uses {sink}");
        }
        for external in ["http://", "https://", "@import", "url("] {
            assert!(!STYLE.contains(external), "ui.css loads {external}");
            assert!(!SCRIPT.contains(external), "ui.js loads {external}");
        }
    }

    /// `(directive, source)` for every source the policy names.
    fn sources(policy: &str) -> Vec<(String, String)> {
        policy
            .split(';')
            .flat_map(|directive| {
                let mut words = directive.split_whitespace();
                let name = words.next().expect("a directive name").to_owned();
                words
                    .map(move |source| (name.clone(), source.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn the_policy_allows_this_server_only() {
        for (name, source) in sources(&content_security_policy(None)) {
            assert!(
                ["'self'", "'none'"].contains(&source.as_str()),
                "{name} allows {source}"
            );
        }
        let html = String::from_utf8(index_html(None).to_vec()).expect("utf-8");
        assert!(html.contains(r#"<meta name="dockstate-controller" content="">"#));
    }

    #[test]
    fn with_a_controller_the_page_may_fetch_from_its_origin_and_nothing_else() {
        let url =
            shared::runtime::origin::parse_base_url("http://127.0.0.1:8000/ctl/").expect("a URL");
        for (name, source) in sources(&content_security_policy(Some(url.origin()))) {
            let allowed = match name.as_str() {
                "connect-src" => ["'self'", "http://127.0.0.1:8000"].contains(&source.as_str()),
                _ => ["'self'", "'none'"].contains(&source.as_str()),
            };
            assert!(allowed, "{name} allows {source}");
        }
        let html = String::from_utf8(index_html(Some(&url)).to_vec()).expect("utf-8");
        assert!(
            html.contains(
                r#"<meta name="dockstate-controller" content="http://127.0.0.1:8000/ctl">"#
            ),
            "{html}"
        );
        assert_eq!(attribute(r#""><script>"#), "&quot;&gt;&lt;script&gt;");
    }
}
