//! Bodies that never change while the process runs (`/docs`, `/openapi.json`): built on first use, served
//! gzip-encoded to clients that take it, with an `ETag` and `Cache-Control` so a browser revalidates instead
//! of downloading the 1.6 MB Swagger page again.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use bytes::Bytes;
use poem::http::{header, HeaderMap, StatusCode};
use poem::Response;

use crate::prepared::{accepts_gzip, Prepared};

/// How long a browser may use its copy before asking again (with `If-None-Match`).
const MAX_AGE_SECONDS: u32 = 300;

/// One body, its content type and its entity tag.
pub(super) struct Static {
    content_type: &'static str,
    render: Box<dyn Fn() -> Bytes + Send + Sync>,
    prepared: Prepared,
    etag: OnceLock<String>,
}

impl std::fmt::Debug for Static {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Static")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl Static {
    pub(super) fn new(
        content_type: &'static str,
        render: impl Fn() -> Bytes + Send + Sync + 'static,
    ) -> Self {
        Self {
            content_type,
            render: Box::new(render),
            prepared: Prepared::default(),
            etag: OnceLock::new(),
        }
    }

    /// 304 when the client's `If-None-Match` names this body, else the body in the encoding it accepts.
    pub(super) fn answer(&self, request: &HeaderMap) -> Response {
        let plain = self.prepared.get(false, || (self.render)());
        let etag = self.etag.get_or_init(|| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            plain.body.hash(&mut hasher);
            format!("\"{:016x}-{}\"", hasher.finish(), plain.body.len())
        });
        let cached = Response::builder()
            .header(header::ETAG, etag.as_str())
            .header(
                header::CACHE_CONTROL,
                format!("public, max-age={MAX_AGE_SECONDS}"),
            )
            .header(header::VARY, "accept-encoding");
        if matches_etag(request, etag) {
            return cached.status(StatusCode::NOT_MODIFIED).finish();
        }
        let encoded = self.prepared.get(accepts_gzip(request), || (self.render)());
        let response = cached.content_type(self.content_type);
        if encoded.gzip {
            response
                .header(header::CONTENT_ENCODING, "gzip")
                .body(encoded.body)
        } else {
            response.body(encoded.body)
        }
    }
}

/// Whether `If-None-Match` lists `etag` (or is `*`); a weak comparison, as RFC 9110 §13.1.2 asks for GET.
fn matches_etag(request: &HeaderMap, etag: &str) -> bool {
    let strong = etag.trim_start_matches("W/");
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == strong)
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("valid"));
        headers
    }

    #[test]
    fn a_known_etag_is_not_modified_and_gzip_is_served_when_accepted() {
        let page = Static::new("text/html", || Bytes::from("<html>".repeat(100)));
        let first = page.answer(&HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(first.headers()[header::CACHE_CONTROL]
            .to_str()
            .expect("ascii")
            .contains("max-age"));
        let again = page.answer(&with(header::IF_NONE_MATCH, &format!("W/{etag}")));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = page.answer(&with(header::IF_NONE_MATCH, "\"nope\""));
        assert_eq!(other.status(), StatusCode::OK);
        let gzip = page.answer(&with(header::ACCEPT_ENCODING, "gzip, br"));
        assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
    }
}
