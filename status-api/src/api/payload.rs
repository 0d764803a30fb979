//! [`JsonBytes`]: a JSON body that is already serialised. `/status` answers from a body cached per revision,
//! so the hot path is a reference-count increment, while `/docs` still shows the schema of the type.

use std::marker::PhantomData;

use bytes::Bytes;
use poem::http::header;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::ApiResponse;
use serde::Serialize;

use crate::prepared::Encoded;

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Serialised JSON of a `T`, possibly gzip-encoded.
#[derive(Debug, Clone)]
pub struct JsonBytes<T> {
    body: Bytes,
    /// `None`: an answer that is never compressed; `Some(gzip)`: one that may be, so it says `Vary`.
    negotiated: Option<bool>,
    _schema: PhantomData<fn() -> T>,
}

impl<T> JsonBytes<T> {
    /// Wraps bytes that are the JSON of a `T`.
    pub fn from_bytes(body: Bytes) -> Self {
        Self {
            body,
            negotiated: None,
            _schema: PhantomData,
        }
    }

    /// Wraps the JSON of a `T` in the encoding chosen for the request's `Accept-Encoding`.
    pub fn encoded(encoded: Encoded) -> Self {
        Self {
            body: encoded.body,
            negotiated: Some(encoded.gzip),
            _schema: PhantomData,
        }
    }
}

impl<T: Serialize> JsonBytes<T> {
    pub fn of(value: &T) -> Self {
        Self::from_bytes(to_json(value))
    }
}

/// The JSON of any value. Our types hold only strings, numbers and string-keyed maps, which always
/// serialise; a failure would be a bug, so it is loud.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("API types always serialise to JSON"))
}

impl<T: Type> Payload for JsonBytes<T> {
    const CONTENT_TYPE: &'static str = CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for JsonBytes<T> {
    fn into_response(self) -> Response {
        let response = Response::builder().content_type(CONTENT_TYPE);
        let response = match self.negotiated {
            None => response,
            Some(false) => response.header(header::VARY, "accept-encoding"),
            Some(true) => response
                .header(header::VARY, "accept-encoding")
                .header(header::CONTENT_ENCODING, "gzip"),
        };
        response.body(self.body)
    }
}

impl<T: Type> ApiResponse for JsonBytes<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: CONTENT_TYPE,
                    schema: T::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}
