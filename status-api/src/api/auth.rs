//! The bearer token: `POST /snapshot` and the spec endpoint need the one from `--token-file`.

use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::SecurityScheme;
use shared::ErrorBody;
use subtle::ConstantTimeEq;

use super::answers::error;

/// The token from `--token-file`, sent as `Authorization: Bearer <token>`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer")]
pub(super) struct BearerToken(Bearer);

/// A bearer token, or none: the operation itself says 401 (missing or wrong) or 403 (none configured).
#[derive(Debug, SecurityScheme)]
pub(super) enum TokenAuth {
    Bearer(BearerToken),
    #[oai(fallback)]
    Missing,
}

/// Why a request may not have what it asked for; each operation maps it to its own 401/403 variant.
pub(super) enum Denied {
    NoTokenConfigured(Json<ErrorBody>),
    BadToken(Json<ErrorBody>),
}

/// Constant-time comparison, so the answer time tells nothing about how much of a guess was right.
pub(super) fn authorize(token: Option<&str>, auth: &TokenAuth) -> Result<(), Denied> {
    let Some(expected) = token else {
        return Err(Denied::NoTokenConfigured(error(
            "forbidden",
            "this server has no token configured: start status-api with --token-file to enable it",
        )));
    };
    match auth {
        TokenAuth::Bearer(BearerToken(bearer))
            if bool::from(bearer.token.as_bytes().ct_eq(expected.as_bytes())) =>
        {
            Ok(())
        }
        TokenAuth::Bearer(_) => Err(Denied::BadToken(error(
            "unauthorized",
            "the bearer token is wrong: send the token from status-api's --token-file",
        ))),
        TokenAuth::Missing => Err(Denied::BadToken(error(
            "unauthorized",
            "this endpoint needs a token: send `Authorization: Bearer <token>` with the token from --token-file",
        ))),
    }
}
