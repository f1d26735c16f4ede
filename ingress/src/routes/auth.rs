//! Sign-in and sessions: login, the client-credentials grant, refresh
//! (rotating) and logout. Every answer that carries a token says
//! `Cache-Control: no-store`.

use axum::extract::{FromRequest, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthUser};
use crate::limits::ClientIp;
use crate::openapi::TokenAnswer;
use crate::sessions::{self, Rotation};
use crate::validate::Email;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("email", &self.email).field("password", &"***").finish()
    }
}

/// A real argon2id hash of nothing anyone knows: an unknown email costs the
/// same time as a wrong password, so timing tells nothing.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8hj1FZ1ctZ0x7Qp0ZfdLsUAO2cyoDz6QZxBDtk1LqhY";

/// `POST /api/v1/auth/login`: an access and a refresh token of a new
/// session, for valid credentials of an active user. Unknown email, wrong password and deactivated user answer the same 401.
/// Limited per IP and per email before any work (`limits`).
#[utoipa::path(post, path = "/api/v1/auth/login", summary = "Log in", request_body = Login, responses((status = 200, description = "an access and a refresh token, of a new session", body = crate::openapi::TokenAnswer, headers(("Cache-Control" = String, description = "no-store"), ("Pragma" = String, description = "no-cache"))), (status = 401, description = "INVALID_CREDENTIALS", body = crate::openapi::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Login>,
) -> ApiResult<Response> {
    let invalid =
        || ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS", "email or password is wrong");
    state.limits.login(ip, &body.email.trim().to_lowercase())?;
    let email = Email::parse(&body.email).map_err(|_| invalid())?;
    let found: Option<(Uuid, String, Vec<String>, bool, i64)> =
        sqlx::query_as("SELECT user_id, password_hash, roles, active, version FROM rm.credentials WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&state.pool)
            .await?;
    let hash = found.as_ref().map_or(DUMMY_HASH.to_owned(), |(_, h, _, _, _)| h.clone());
    let password = body.password;
    let matches = state.hashing.run(move |hasher| hasher.verify(&password, &hash)).await?;
    let Some((user_id, _, roles, active, version)) = found else { return Err(invalid()) };
    if !matches || !active {
        return Err(invalid());
    }
    // A new session, revoked by a logout, a reused refresh token or the
    // next change of these credentials (`sessions`, `revocation`).
    let sid = Uuid::new_v4();
    let (answer, refresh) = issued(&state, user_id, &roles, version, sid)?;
    sessions::start(&state.pool, sid, user_id, &refresh).await?;
    Ok(answer)
}

/// A token answer: never to be kept by a cache between the client and
/// us, nor by the browser (RFC 6749 5.1: `Cache-Control: no-store`, and
/// `Pragma: no-cache` for HTTP/1.0 caches).
fn token_answer(body: TokenAnswer) -> Response {
    let headers = [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")];
    (headers, axum::Json(body)).into_response()
}

/// A short-lived access token and the refresh token that renews it, both
/// of session `sid`: the answer, and the refresh token for the session's
/// record.
fn issued(
    state: &AppState,
    user_id: Uuid,
    roles: &[String],
    version: i64,
    sid: Uuid,
) -> ApiResult<(Response, orderflow_auth::Issued)> {
    let sub = user_id.to_string();
    let token = state.tokens.issue_access(&sub, roles, version, sid).map_err(|e| ApiError::internal("token", e))?;
    let refresh = state.tokens.issue_refresh(&sub, roles, version, sid).map_err(|e| ApiError::internal("token", e))?;
    let answer = token_answer(TokenAnswer {
        access_token: token.token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl_seconds(),
        refresh_token: Some(refresh.token.clone()),
        refresh_expires_in: Some(state.tokens.refresh_ttl_seconds()),
        user_id: Some(user_id),
    });
    Ok((answer, refresh))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    refresh_token: String,
}

impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Refresh(***)")
    }
}

/// `POST /api/v1/auth/refresh`: a new access token and a new refresh token
/// for the session's current refresh token, whose user is active and whose
/// credentials did not change since. The refresh token rotates: the one
/// sent stops working. One sent again (it was used already: a copy is in
/// other hands) ends its whole session (`sessions`): every refresh token of
/// the login at once, its access tokens within a second. Roles come fresh
/// from the read model, so a role change reaches the next access token.
#[utoipa::path(post, path = "/api/v1/auth/refresh", summary = "Renew tokens (the refresh token rotates)", request_body = Refresh, responses((status = 200, description = "new tokens; the refresh token sent no longer works", body = crate::openapi::TokenAnswer, headers(("Cache-Control" = String, description = "no-store"), ("Pragma" = String, description = "no-cache"))), (status = 401, description = "invalid, expired, revoked or already used (which ends the session)", body = crate::openapi::ErrorBody)))]
pub async fn refresh(State(state): State<AppState>, ApiJson(body): ApiJson<Refresh>) -> ApiResult<Response> {
    let claims = match state.tokens.verify_refresh(body.refresh_token.trim()) {
        Ok(claims) => claims,
        Err(orderflow_auth::AuthError::Expired) => {
            return Err(ApiError::unauthorized("the refresh token has expired; log in again"));
        }
        Err(_) => return Err(ApiError::unauthorized("the refresh token is invalid")),
    };
    let revoked = || ApiError::unauthorized("the refresh token was revoked; log in again");
    let user_id = Uuid::parse_str(&claims.sub).map_err(|_| revoked())?;
    // `verify_refresh` refuses a refresh token without them.
    let (Some(sid), Some(jti)) = (claims.sid, claims.jti) else { return Err(revoked()) };
    let found: Option<(Vec<String>, bool, i64)> =
        sqlx::query_as("SELECT roles, active, version FROM rm.credentials WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&state.pool)
            .await?;
    let Some((roles, active, version)) = found else { return Err(revoked()) };
    if !active || claims.ver.is_none_or(|ver| version > ver) {
        return Err(revoked());
    }
    let (answer, next) = issued(&state, user_id, &roles, version, sid)?;
    match sessions::rotate(&state.pool, sid, user_id, jti, &next).await? {
        Rotation::Rotated => Ok(answer),
        Rotation::Reused => {
            state.revocations.forget(user_id, sid);
            tracing::warn!(user_id = %user_id, session = %sid, "a used refresh token came back; its session is ended");
            Err(ApiError::unauthorized(
                "the refresh token was already used, so its session has ended (every token of this login); log in again",
            ))
        }
        Rotation::Ended => {
            Err(ApiError::unauthorized("the refresh token was revoked: its session has ended; log in again"))
        }
    }
}

/// `POST /api/v1/auth/logout`'s optional body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    /// A refresh token of the caller's whose session ends too (a client
    /// that kept tokens of two logins); one that is not a valid refresh
    /// token of the caller's is ignored.
    refresh_token: Option<String>,
}

impl std::fmt::Debug for Logout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logout(***)")
    }
}

/// `POST /api/v1/auth/logout`: ends the session of the access token it is
/// called with (and of `refresh_token`, if given): its refresh tokens stop
/// working at once, its access tokens at once on this replica and within a
/// second on the others (`revocation`'s cache). Other logins of the same
/// user go on.
#[utoipa::path(post, path = "/api/v1/auth/logout", summary = "Log out (end the session)", request_body(content = Option<Logout>, description = "optional: another refresh token of the caller's whose session ends too"), responses((status = 204, description = "the session has ended")), security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    request: axum::extract::Request,
) -> ApiResult<StatusCode> {
    // The body is optional: read it before ending anything, so a malformed
    // one (422) ends nothing.
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, state.max_body_bytes).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "the request body is too large")
    })?;
    let body = if bytes.is_empty() {
        None
    } else {
        let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let ApiJson(body) = ApiJson::<Logout>::from_request(request, &state).await?;
        Some(body)
    };
    let revoked = || ApiError::unauthorized("the token was revoked; log in again");
    let user_id = Uuid::parse_str(&claims.sub).map_err(|_| revoked())?;
    let sid = claims.sid.ok_or_else(revoked)?;
    let mut sids = vec![sid];
    let other = body.and_then(|b| b.refresh_token).and_then(|t| state.tokens.verify_refresh(t.trim()).ok());
    if let Some(other) = other.filter(|c| c.sub == claims.sub).and_then(|c| c.sid) {
        sids.push(other);
    }
    sessions::end(&state.pool, user_id, &sids, sessions::Ended::Logout).await?;
    for sid in sids {
        state.revocations.forget(user_id, sid);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentials {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials").field("client_id", &self.client_id).field("client_secret", &"***").finish()
    }
}

/// `POST /api/v1/auth/token`: the client-credentials grant (RFC 6749 4.4,
/// as JSON) for automation: a `service`-role token for a client listed in
/// `service_clients` with the right secret. Unknown client and wrong secret
/// answer the same 401, after the same argon2 work.
#[utoipa::path(post, path = "/api/v1/auth/token", summary = "A service token (client credentials)", request_body = ClientCredentials, responses((status = 200, description = "a service token", body = crate::openapi::TokenAnswer, headers(("Cache-Control" = String, description = "no-store"), ("Pragma" = String, description = "no-cache"))), (status = 401, description = "INVALID_CLIENT", body = crate::openapi::ErrorBody)))]
pub async fn token(State(state): State<AppState>, ApiJson(body): ApiJson<ClientCredentials>) -> ApiResult<Response> {
    if body.grant_type != "client_credentials" {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "UNSUPPORTED_GRANT_TYPE",
            "grant_type must be client_credentials",
        ));
    }
    let client = state.service_clients.iter().find(|c| c.id == body.client_id);
    let hash = client.map_or(DUMMY_HASH.to_owned(), |c| c.secret_hash.clone());
    let secret = body.client_secret;
    let matches = state.hashing.run(move |hasher| hasher.verify(&secret, &hash)).await?;
    let Some(client) = client.filter(|_| matches) else {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "INVALID_CLIENT",
            "client id or secret is wrong",
        ));
    };
    let roles = [orderflow_auth::Role::Service.as_str().to_owned()];
    let token = state.tokens.issue_service(&client.id, &roles).map_err(|e| ApiError::internal("token", e))?;
    Ok(token_answer(TokenAnswer {
        access_token: token.token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl_seconds(),
        refresh_token: None,
        refresh_expires_in: None,
        user_id: None,
    }))
}
