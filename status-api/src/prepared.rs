//! Answer bodies prepared once and handed out as bytes: the plain form, and the gzip form made the first time
//! a client that accepts it asks. `/status` keeps one per revision, `/docs` and `/openapi.json` one for the
//! life of the process, so compression costs a request nothing after the first.

use std::io::Write;
use std::sync::OnceLock;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use poem::http::{header, HeaderMap};

/// One body in its two encodings, each made at most once.
#[derive(Debug, Default)]
pub struct Prepared {
    plain: OnceLock<Bytes>,
    gzip: OnceLock<Bytes>,
}

/// A body and whether it is gzip-encoded.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub body: Bytes,
    pub gzip: bool,
}

impl Prepared {
    /// The body, rendered by `render` the first time it is needed; gzip-encoded when `gzip` is asked for.
    pub fn get(&self, gzip: bool, render: impl FnOnce() -> Bytes) -> Encoded {
        let plain = self.plain.get_or_init(render);
        if !gzip {
            return Encoded {
                body: plain.clone(),
                gzip: false,
            };
        }
        Encoded {
            body: self.gzip.get_or_init(|| gzipped(plain)).clone(),
            gzip: true,
        }
    }
}

/// `body` compressed with gzip at a level that favours speed: JSON shrinks ten-fold at any level.
pub fn gzipped(body: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 8), Compression::fast());
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .expect("writing to memory cannot fail")
}

/// Whether the request's `Accept-Encoding` takes gzip (a `q=0` refuses it).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;
    use poem::http::HeaderValue;

    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).expect("valid"),
        );
        headers
    }

    #[test]
    fn gzip_is_taken_when_accepted() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("br, gzip;q=0.8")));
        assert!(accepts_gzip(&headers("GZIP")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("br, deflate")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn each_form_is_made_once_and_the_gzip_one_unpacks_to_the_plain_one() {
        let prepared = Prepared::default();
        let mut renders = 0;
        let plain = prepared.get(false, || {
            renders += 1;
            Bytes::from_static(b"{\"containers\":[]}")
        });
        let gzip = prepared.get(true, || unreachable!("rendered once"));
        assert_eq!(renders, 1);
        assert!(!plain.gzip && gzip.gzip);
        let mut unpacked = Vec::new();
        GzDecoder::new(&gzip.body[..])
            .read_to_end(&mut unpacked)
            .expect("valid gzip");
        assert_eq!(unpacked, plain.body);
        assert_eq!(prepared.get(true, || unreachable!()).body, gzip.body);
    }
}
