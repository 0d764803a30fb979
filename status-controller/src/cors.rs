//! CORS for the read-only answers, so that status-api's live page — another origin — can show what the
//! controller did (`GET /actions`: the actions, the hold, the quarantines). Only the origins named with
//! `--cors-origin` are answered, and only for `GET` and `HEAD`: a preflight for any other method, or for a
//! request that would carry `Authorization` or cookies, is refused (403, no CORS header), and no answer ever
//! allows credentials, so no web page can set or end a hold with the token. The `GET` answers hold nothing a
//! token guards (none of them needs one); naming the origins rather than `*` still keeps them from any other
//! page the operator happens to visit, which could otherwise read them from the operator's browser on a
//! network the page's own server cannot reach. Without `--cors-origin` nothing changes: no header is added
//! and a preflight is answered like any `OPTIONS` (405). Imports nothing of the crate.

use std::sync::Arc;

use poem::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    VARY,
};
use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use shared::runtime::http::error_json;
use shared::runtime::origin::WebOrigin;

/// The methods a page on an allowed origin may use: the read-only ones.
const METHODS: &str = "GET, HEAD";
/// How long a browser may keep a granted preflight, in seconds.
const MAX_AGE: &str = "600";
/// Request headers a preflight may ask for: the CORS-safelisted ones a `fetch` may name. `Authorization`
/// is not among them: the token is never sent cross-origin.
const HEADERS: [&str; 3] = ["accept", "accept-language", "content-language"];

/// The origins whose pages may read the `GET` answers; none turns CORS off. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ReadOnlyCors {
    origins: Arc<[WebOrigin]>,
}

impl ReadOnlyCors {
    pub fn new(origins: Vec<WebOrigin>) -> Self {
        Self {
            origins: origins.into(),
        }
    }

    /// The allowed origin a request's `Origin` header names, if it names one.
    fn allowed<'a>(&self, request: &'a Request) -> Option<&'a str> {
        let origin = request.headers().get(ORIGIN)?.to_str().ok()?;
        self.origins
            .iter()
            .any(|allowed| allowed.as_str() == origin)
            .then_some(origin)
    }

    /// The answer to a preflight: 204 with the grant, or 403 saying what was refused and why.
    fn preflight(&self, request: &Request) -> Response {
        let Some(origin) = self.allowed(request) else {
            return refused(
                "this origin may not read status-controller's answers: add it to --cors-origin \
                 (STATUS_CONTROLLER_CORS_ORIGIN)",
            );
        };
        let method = header_text(request, &ACCESS_CONTROL_REQUEST_METHOD);
        if !matches!(method, "GET" | "HEAD") {
            return refused(&format!(
                "only GET and HEAD are served to other origins, not `{method}`: setting or ending a hold \
                 takes the token, which a web page never sends"
            ));
        }
        let asked = header_text(request, &ACCESS_CONTROL_REQUEST_HEADERS).to_ascii_lowercase();
        let asked: Vec<&str> = asked
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .collect();
        if let Some(name) = asked.iter().find(|name| !HEADERS.contains(name)) {
            return refused(&format!(
                "the request header `{name}` is not allowed from another origin: the read-only answers need \
                 none (and never the token)"
            ));
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value(origin));
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(METHODS),
        );
        if !asked.is_empty() {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, value(&asked.join(", ")));
        }
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
        headers.insert(VARY, HeaderValue::from_static("Origin"));
        response
    }
}

fn header_text<'a>(request: &'a Request, name: &poem::http::HeaderName) -> &'a str {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// A header value from text that came from a header (so it is valid as one).
fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn refused(message: &str) -> Response {
    error_json(StatusCode::FORBIDDEN, "cors_refused", message.to_owned())
}

impl<E: Endpoint> Middleware<E> for ReadOnlyCors {
    type Output = CorsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CorsEndpoint {
            inner,
            cors: self.clone(),
        }
    }
}

/// An endpoint behind [`ReadOnlyCors`].
#[derive(Debug)]
pub struct CorsEndpoint<E> {
    inner: E,
    cors: ReadOnlyCors,
}

impl<E: Endpoint> Endpoint for CorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        if self.cors.origins.is_empty() {
            return self
                .inner
                .call(request)
                .await
                .map(IntoResponse::into_response);
        }
        let is_preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if is_preflight {
            return Ok(self.cors.preflight(&request));
        }
        let grant = matches!(*request.method(), Method::GET | Method::HEAD)
            .then(|| self.cors.allowed(&request).map(value))
            .flatten();
        let mut response = match self.inner.call(request).await {
            Ok(answer) => answer.into_response(),
            Err(err) => err.into_response(),
        };
        let headers = response.headers_mut();
        // The answer differs by Origin: a cache must not hand one origin's answer to another.
        headers.append(VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = grant {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use poem::test::TestClient;
    use poem::{get, handler, EndpointExt, Route};
    use shared::runtime::origin::parse_origin;

    use super::*;

    const PAGE: &str = "http://127.0.0.1:8080";

    #[handler]
    fn read() -> &'static str {
        "{}"
    }

    fn client(origins: &[&str]) -> TestClient<impl Endpoint> {
        let origins = origins
            .iter()
            .map(|origin| parse_origin(origin).expect("an origin"))
            .collect();
        TestClient::new(
            Route::new()
                .at("/actions", get(read))
                .at("/hold", get(read).post(read).delete(read))
                .with(ReadOnlyCors::new(origins)),
        )
    }

    fn header(response: &poem::test::TestResponse, name: poem::http::HeaderName) -> Option<String> {
        response
            .0
            .headers()
            .get(name)
            .map(|value| value.to_str().expect("text").to_owned())
    }

    #[tokio::test]
    async fn a_get_from_the_page_is_granted_to_that_origin_only() {
        let client = client(&[PAGE, "http://localhost:8080"]);
        let response = client.get("/actions").header(ORIGIN, PAGE).send().await;
        response.assert_status_is_ok();
        assert_eq!(
            header(&response, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
            Some(PAGE)
        );
        assert_eq!(header(&response, VARY).as_deref(), Some("Origin"));
        assert!(header(
            &response,
            poem::http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS
        )
        .is_none());

        let other = client
            .get("/actions")
            .header(ORIGIN, "http://evil.example")
            .send()
            .await;
        other.assert_status_is_ok();
        assert!(header(&other, ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let no_origin = client.get("/actions").send().await;
        assert!(header(&no_origin, ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }

    #[tokio::test]
    async fn a_preflight_for_get_is_granted_and_any_other_refused() {
        let client = client(&[PAGE]);
        let granted = client
            .options("/actions")
            .header(ORIGIN, PAGE)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(ACCESS_CONTROL_REQUEST_HEADERS, "Accept")
            .send()
            .await;
        granted.assert_status(StatusCode::NO_CONTENT);
        assert_eq!(
            header(&granted, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
            Some(PAGE)
        );
        assert_eq!(
            header(&granted, ACCESS_CONTROL_ALLOW_METHODS).as_deref(),
            Some(METHODS)
        );
        assert_eq!(
            header(&granted, ACCESS_CONTROL_ALLOW_HEADERS).as_deref(),
            Some("accept")
        );

        for (origin, method, headers, says) in [
            (PAGE, "POST", "", "only GET and HEAD"),
            (PAGE, "DELETE", "", "only GET and HEAD"),
            (
                PAGE,
                "GET",
                "authorization",
                "`authorization` is not allowed",
            ),
            ("http://evil.example", "GET", "", "--cors-origin"),
        ] {
            let mut request = client
                .options("/hold")
                .header(ORIGIN, origin)
                .header(ACCESS_CONTROL_REQUEST_METHOD, method);
            if !headers.is_empty() {
                request = request.header(ACCESS_CONTROL_REQUEST_HEADERS, headers);
            }
            let refused = request.send().await;
            refused.assert_status(StatusCode::FORBIDDEN);
            assert!(header(&refused, ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
            assert!(header(&refused, ACCESS_CONTROL_ALLOW_METHODS).is_none());
            let body = refused.json().await;
            body.value()
                .object()
                .get("error")
                .assert_string("cors_refused");
            let message = body.value().object().get("message").string().to_owned();
            assert!(message.contains(says), "{method} {headers}: {message}");
        }
    }

    #[tokio::test]
    async fn a_write_from_an_allowed_origin_gets_no_cors_header() {
        let client = client(&[PAGE]);
        for response in [
            client.post("/hold").header(ORIGIN, PAGE).send().await,
            client.delete("/hold").header(ORIGIN, PAGE).send().await,
        ] {
            assert!(header(&response, ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        }
    }

    /// The controller's own server, as `Application::build` wires it, with `--cors-origin` the page's.
    fn controller_app() -> TestClient<impl Endpoint> {
        let metrics = crate::metrics::Metrics::new();
        let (set, until) = metrics.maintenance();
        TestClient::new(crate::server::app(crate::server::ServerState {
            state: crate::state::ControllerState::new(),
            journal: crate::journal::Journal::new(),
            maintenance: crate::maintenance::Maintenance::start(
                None,
                crate::maintenance::HoldMetrics { set, until },
                chrono::Utc::now(),
            ),
            metrics,
            token: Some(shared::runtime::secret::Secret::from("s3cret")),
            hosts: shared::runtime::hosts::HostCheck::new(
                Default::default(),
                crate::config::ALLOWED_HOSTS_ENV,
            ),
            cors: ReadOnlyCors::new(vec![parse_origin(PAGE).expect("an origin")]),
        }))
    }

    #[tokio::test]
    async fn the_controller_serves_its_read_only_answers_to_the_page_and_nothing_else() {
        let client = controller_app();
        for path in ["/actions", "/health", "/hold"] {
            let response = client.get(path).header(ORIGIN, PAGE).send().await;
            assert_eq!(
                header(&response, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
                Some(PAGE),
                "{path}"
            );
        }
        let preflight = client
            .options("/actions")
            .header(ORIGIN, PAGE)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .send()
            .await;
        preflight.assert_status(StatusCode::NO_CONTENT);
        // Setting a hold from the page: the preflight is refused, and a request sent anyway (a simple POST
        // needs none) carries no grant and, without the token, is refused as from anyone.
        let preflight = client
            .options("/hold")
            .header(ORIGIN, PAGE)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .send()
            .await;
        preflight.assert_status(StatusCode::FORBIDDEN);
        let post = client
            .post("/hold?for=1m")
            .header(ORIGIN, PAGE)
            .send()
            .await;
        post.assert_status(StatusCode::UNAUTHORIZED);
        assert!(header(&post, ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        // The Host check still comes first.
        let rebound = client
            .get("/actions")
            .header(ORIGIN, PAGE)
            .header(poem::http::header::HOST, "rebind.example")
            .send()
            .await;
        rebound.assert_status(StatusCode::MISDIRECTED_REQUEST);
    }

    #[tokio::test]
    async fn without_origins_nothing_changes() {
        let client = client(&[]);
        let response = client.get("/actions").header(ORIGIN, PAGE).send().await;
        response.assert_status_is_ok();
        assert!(header(&response, ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(header(&response, VARY).is_none());
        let preflight = client
            .options("/actions")
            .header(ORIGIN, PAGE)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .send()
            .await;
        preflight.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        assert!(header(&preflight, ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
}
