//! Request extractors that answer in the API's error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use orderflow_auth::{AuthError, Claims};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// `Json<T>` whose rejections name the problem: malformed JSON (400), a
/// wrong type, missing or unknown field (422, naming it), a body over the
/// limit (413), a missing JSON content type (415).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "the request body is too large")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON with Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => {
            // serde's message names the field: "unknown field `x`", "missing field `email`", "invalid type ...".
            let problem = detail
                .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                .unwrap_or(&detail)
                .to_owned();
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY", format!("the body does not fit: {problem}"))
                .with_details(serde_json::json!({ "problem": problem }))
        }
        _ if detail.contains("length limit") => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "the request body is too large")
        }
        _ => ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", format!("the body is not valid JSON: {detail}")),
    }
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

/// The caller acts for `owner` (their own user, order, payment) or is an
/// admin; else 403 naming what they may not touch.
pub fn self_or_admin(claims: &Claims, owner: uuid::Uuid, what: &str) -> Result<(), ApiError> {
    if claims.sub == owner.to_string() || claims.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("this {what} belongs to another user")))
    }
}
