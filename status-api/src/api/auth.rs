//! The bearer token: `POST /snapshot` and the spec endpoint need the one from `--token-file`.

use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::SecurityScheme;
use shared::runtime::secret::Secret;
use shared::ErrorBody;

use super::answers::error;

/// The token from `--token-file`, sent as `Authorization: Bearer <token>`. Without `--token-file`, the
/// operations that need it answer 403 `forbidden`.
//
// Required by the operations that take it, so the document says so; a request without one never reaches
// them, and the HTTP edge answers it with `missing_token`. (Only `///` lines reach the document.)
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer")]
pub(super) struct BearerToken(Bearer);

/// Why a request may not have what it asked for; each operation maps it to its own 401/403 variant.
pub(super) enum Denied {
    NoTokenConfigured(Json<ErrorBody>),
    BadToken(Json<ErrorBody>),
}

const NO_TOKEN_CONFIGURED: &str =
    "this server has no token configured: start status-api with --token-file to enable it";
const TOKEN_NEEDED: &str = "this endpoint needs a token: send `Authorization: Bearer <token>` with the token from --token-file";

/// Compared in constant time ([`Secret::matches`]), so the answer time tells nothing about how much of a
/// guess was right.
pub(super) fn authorize(token: Option<&Secret>, auth: &BearerToken) -> Result<(), Denied> {
    let Some(expected) = token else {
        return Err(Denied::NoTokenConfigured(error(
            "forbidden",
            NO_TOKEN_CONFIGURED,
        )));
    };
    if expected.matches(&auth.0.token) {
        Ok(())
    } else {
        Err(Denied::BadToken(error(
            "unauthorized",
            "the bearer token is wrong: send the token from status-api's --token-file",
        )))
    }
}

/// The answer to a request for a token operation that carries no bearer token at all: 403 when this server
/// has none configured (no token could help), else 401.
pub(super) fn missing_token(token_configured: bool) -> poem::Response {
    use poem::http::StatusCode;
    if token_configured {
        shared::runtime::http::error_json(StatusCode::UNAUTHORIZED, "unauthorized", TOKEN_NEEDED)
    } else {
        shared::runtime::http::error_json(StatusCode::FORBIDDEN, "forbidden", NO_TOKEN_CONFIGURED)
    }
}
