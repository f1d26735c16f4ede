//! Request extractors that answer in the API's error shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use orderflow_auth::{AuthError, Claims};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// `Json<T>` whose rejections name the problem: a missing JSON content type
/// (415), a body over the limit (413), malformed JSON (400
/// `MALFORMED_JSON`, which includes an escaped lone UTF-16 surrogate), a
/// text with a NUL or another control character (422 `VALIDATION_FAILED`
/// naming the field, e.g. `items[2].name`: [`crate::validate::text_problem`]),
/// a body that is not an object, a wrong type, a missing or unknown field
/// (422 `INVALID_BODY`, naming the field, in words a client knows: no Rust
/// type names).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE || rejection.body_text().contains("length limit") {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "the request body is too large")
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", "the body could not be read")
            }
        })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            // serde_json says "unexpected end of hex escape" for a lone
            // surrogate (`"\ud800"`): say what it is.
            let text = e.to_string();
            let message = if text.contains("escape") || text.contains("surrogate") {
                format!(
                    "the body is not valid JSON: a \\u escape at line {} column {} is not a character (a lone \
                     UTF-16 surrogate?)",
                    e.line(),
                    e.column()
                )
            } else {
                format!("the body is not valid JSON: {text}")
            };
            ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", message)
        })?;
        if !value.is_object() {
            return Err(invalid_body(String::new(), "the body must be a JSON object".into()));
        }
        if let Some((field, problem)) = crate::validate::first_bad_text(&value) {
            return Err(ApiError::validation(&field, problem));
        }
        serde_path_to_error::deserialize(value).map(ApiJson).map_err(|error| {
            let path = error.path().to_string();
            let field = if path == "." { String::new() } else { path };
            invalid_body(field, plain(&error.inner().to_string()))
        })
    }
}

/// Whether the request says its body is JSON (`application/json`, or a
/// `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn invalid_body(field: String, problem: String) -> ApiError {
    let message = if field.is_empty() {
        format!("the body does not fit: {problem}")
    } else {
        format!("the body does not fit: {field}: {problem}")
    };
    let details = if field.is_empty() {
        serde_json::json!({ "problem": problem })
    } else {
        serde_json::json!({ "field": field, "problem": problem })
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY", message).with_details(details)
}

/// serde's message in JSON's words: `expected struct Register with 4
/// elements` names a Rust type, which tells a client nothing (and tells an
/// attacker what the server is written in).
fn plain(message: &str) -> String {
    let (head, expected) = match message.split_once(", expected ") {
        Some((head, expected)) => (head, Some(expected)),
        None => (message, None),
    };
    let head = head
        .replace("invalid type: map", "invalid type: object")
        .replace("invalid type: sequence", "invalid type: array")
        .replace("invalid type: unit value", "invalid type: null")
        .replace("invalid type: floating point", "invalid type: number");
    let Some(expected) = expected else { return head };
    let integer = ["i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize"];
    let expected = match expected {
        e if e.starts_with("struct ") || e == "a map" => "a JSON object".to_owned(),
        e if integer.contains(&e) => "an integer".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a borrowed string" | "a string" => "a string".to_owned(),
        e if e.starts_with("enum ") => "one of the allowed values".to_owned(),
        e if e.starts_with("one of ") || e.starts_with("a ") || e.starts_with("an ") => e.to_owned(),
        _ => "another kind of value".to_owned(),
    };
    format!("{head}, expected {expected}")
}

/// The caller, from a valid `Authorization: Bearer` token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Checked already by the route's access rule (`access::authorize`).
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(AuthUser(claims.clone()));
        }
        authenticate(&parts.headers, state).await.map(AuthUser)
    }
}

/// The claims of the request's bearer token if it is valid and not revoked
/// (a deactivated user, a password changed since it was issued, an ended
/// session), with the roles the read model has now (`revocation`).
pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Claims, ApiError> {
    let claims = claims_from(headers, state)?;
    state.revocations.check(&state.pool, &state.service_clients, claims).await
}

/// The claims of the request's bearer token, or why there are none.
pub fn claims_from(headers: &HeaderMap, state: &AppState) -> Result<Claims, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("the Authorization header is not `Bearer <token>`"))?;
    match state.tokens.verify(token.trim()) {
        Ok(claims) => Ok(claims),
        Err(AuthError::Expired) => Err(ApiError::unauthorized("the token has expired; log in again")),
        Err(_) => Err(ApiError::unauthorized("the token is invalid")),
    }
}

/// How long the client asked to wait for the outcome (`Prefer: wait=N`,
/// RFC 7240), capped by the settings. `None`: answer 202 at once.
#[derive(Debug, Clone, Copy)]
pub struct PreferWait(pub Option<u64>);

impl FromRequestParts<AppState> for PreferWait {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let mut wait = None;
        for value in parts.headers.get_all("prefer") {
            let Ok(text) = value.to_str() else { continue };
            for token in text.split([',', ';']) {
                if let Some(n) = token.trim().strip_prefix("wait=") {
                    let seconds: u64 = n.trim().parse().map_err(|_| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "INVALID_PREFER",
                            format!("`wait={n}` is not a number of seconds"),
                        )
                    })?;
                    wait = Some(seconds.min(state.max_wait_seconds));
                }
            }
        }
        Ok(PreferWait(wait))
    }
}

/// The caller acts for `owner` or is staff: an admin, or a service (which
/// reads and ships any order); else 403 naming what they may not touch.
pub fn owner_or_staff(claims: &Claims, owner: uuid::Uuid, what: &str) -> Result<(), ApiError> {
    if claims.has(orderflow_auth::Role::Service) {
        return Ok(());
    }
    self_or_admin(claims, owner, what)
}

/// Whether [`owner_or_staff`] lets the caller at `owner`'s (GraphQL's
/// nested fields, which leave out what they may not see).
pub fn is_owner_or_staff(claims: &Claims, owner: uuid::Uuid) -> bool {
    owner_or_staff(claims, owner, "").is_ok()
}

/// Whether [`self_or_admin`] lets the caller at `owner`'s.
pub fn is_self_or_admin(claims: &Claims, owner: uuid::Uuid) -> bool {
    claims.sub == owner.to_string() || claims.is_admin()
}

/// The caller acts for `owner` (their own user, order, payment) or is an
/// admin; else 403 naming what they may not touch.
pub fn self_or_admin(claims: &Claims, owner: uuid::Uuid, what: &str) -> Result<(), ApiError> {
    if is_self_or_admin(claims, owner) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("this {what} belongs to another user")))
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn serde_messages_name_json_kinds_not_rust_types() {
        assert_eq!(
            plain("invalid type: sequence, expected struct Register with 4 elements"),
            "invalid type: array, expected a JSON object"
        );
        assert_eq!(
            plain("invalid length 0, expected struct Register with 4 elements"),
            "invalid length 0, expected a JSON object"
        );
        assert_eq!(
            plain("invalid type: string \"x\", expected i64"),
            "invalid type: string \"x\", expected an integer"
        );
        assert_eq!(plain("invalid type: map, expected a string"), "invalid type: object, expected a string");
        assert_eq!(plain("missing field `email`"), "missing field `email`");
        assert_eq!(plain("unknown field `x`, expected one of `a`, `b`"), "unknown field `x`, expected one of `a`, `b`");
        assert_eq!(
            plain("invalid type: null, expected enum Status"),
            "invalid type: null, expected one of the allowed values"
        );
    }
}
