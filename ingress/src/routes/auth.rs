use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::limits::ClientIp;
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

/// `POST /api/v1/auth/login`: a JWT for valid credentials of an active user.
/// Unknown email, wrong password and deactivated user answer the same 401.
/// Limited per IP and per email before any work (`limits`).
#[utoipa::path(post, path = "/api/v1/auth/login", summary = "Log in", request_body = Login, responses((status = 200, description = "an access and a refresh token", body = crate::openapi::TokenAnswer), (status = 401, description = "INVALID_CREDENTIALS", body = crate::openapi::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Login>,
) -> ApiResult<Response> {
    let invalid =
        || ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS", "email or password is wrong");
    state.limits.login(ip, &body.email.trim().to_lowercase())?;
    let email = Email::parse(&body.email).map_err(|_| invalid())?;
    let found: Option<(uuid::Uuid, String, Vec<String>, bool, i64)> =
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
    // Revoked by the next change of these credentials (`revocation`).
    issued(&state, user_id, &roles, version)
}

/// A short-lived access token and the refresh token that renews it, both
/// revoked by the next change of these credentials (`revocation`).
fn issued(state: &AppState, user_id: uuid::Uuid, roles: &[String], version: i64) -> ApiResult<Response> {
    let sub = user_id.to_string();
    let token = state.tokens.issue_versioned(&sub, roles, Some(version)).map_err(|e| ApiError::internal("token", e))?;
    let refresh = state.tokens.issue_refresh(&sub, roles, Some(version)).map_err(|e| ApiError::internal("token", e))?;
    Ok(axum::Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": state.tokens.ttl_seconds(),
        "refresh_token": refresh,
        "refresh_expires_in": state.tokens.refresh_ttl_seconds(),
        "user_id": user_id,
    }))
    .into_response())
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

/// `POST /api/v1/auth/refresh`: a new access token (and refresh token) for
/// a valid refresh token whose user is active and whose credentials did
/// not change since. Roles come fresh from the read model, so a role change
/// reaches the next access token.
#[utoipa::path(post, path = "/api/v1/auth/refresh", summary = "Renew tokens", request_body = Refresh, responses((status = 200, description = "new tokens", body = crate::openapi::TokenAnswer), (status = 401, description = "invalid, expired or revoked", body = crate::openapi::ErrorBody)))]
pub async fn refresh(State(state): State<AppState>, ApiJson(body): ApiJson<Refresh>) -> ApiResult<Response> {
    let claims = match state.tokens.verify_refresh(body.refresh_token.trim()) {
        Ok(claims) => claims,
        Err(orderflow_auth::AuthError::Expired) => {
            return Err(ApiError::unauthorized("the refresh token has expired; log in again"));
        }
        Err(_) => return Err(ApiError::unauthorized("the refresh token is invalid")),
    };
    let revoked = || ApiError::unauthorized("the refresh token was revoked; log in again");
    let user_id = uuid::Uuid::parse_str(&claims.sub).map_err(|_| revoked())?;
    let found: Option<(Vec<String>, bool, i64)> =
        sqlx::query_as("SELECT roles, active, version FROM rm.credentials WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&state.pool)
            .await?;
    let Some((roles, active, version)) = found else { return Err(revoked()) };
    if !active || claims.ver.is_none_or(|ver| version > ver) {
        return Err(revoked());
    }
    issued(&state, user_id, &roles, version)
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
#[utoipa::path(post, path = "/api/v1/auth/token", summary = "A service token (client credentials)", request_body = ClientCredentials, responses((status = 200, description = "a service token", body = crate::openapi::TokenAnswer), (status = 401, description = "INVALID_CLIENT", body = crate::openapi::ErrorBody)))]
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
    let token =
        state.tokens.issue(&format!("service:{}", client.id), &roles).map_err(|e| ApiError::internal("token", e))?;
    Ok(axum::Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": state.tokens.ttl_seconds(),
    }))
    .into_response())
}
