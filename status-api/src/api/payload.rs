//! [`JsonBytes`]: a JSON body that is already serialised. `/status` answers from a body cached per revision,
//! so the hot path is a reference-count increment, while `/docs` still shows the schema of the type.

use std::marker::PhantomData;

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::ApiResponse;
use serde::Serialize;

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Serialised JSON of a `T`.
#[derive(Debug, Clone)]
pub struct JsonBytes<T> {
    body: Bytes,
    _schema: PhantomData<fn() -> T>,
}

impl<T> JsonBytes<T> {
    /// Wraps bytes that are the JSON of a `T`.
    pub fn from_bytes(body: Bytes) -> Self {
        Self {
            body,
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
        Response::builder()
            .content_type(CONTENT_TYPE)
            .body(self.body)
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
