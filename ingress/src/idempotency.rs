//! `Idempotency-Key` on every write: the same key with the same request
//! within [`RETENTION`] gets the first answer again, and no second command;
//! the same key with another request is refused (422).
//!
//! The keys live in the `readmodels` database, in a schema of the ingress's
//! own (`ingress.idempotency_keys`, created at start-up by [`crate::housekeeping::prepare`]):
//! a retry may reach another replica, or this one after a restart, so the
//! memory must be shared and durable, and the readmodels database is the
//! one every replica already reaches. It is edge bookkeeping (which answer
//! a client already got), not business state, so the ingress still owns no
//! write-side domain tables. Kafka cannot serve here: "was this key sent?"
//! must be answered before sending, in one round trip.
//!
//! A key is scoped to its caller (the token's subject, or `anonymous` for a
//! registration), so one client can neither replay nor block another's.
//! The first request claims the key (a row without an answer) and runs;
//! concurrent ones with the same key wait for its answer and return it. An
//! answer the client should retry (5xx, 429) is not kept: the claim is
//! dropped and the retry runs anew. A claim whose request never finished
//! (its replica died) is taken over after [`ABANDONED_AFTER`]; the command
//! that replica may have sent can then be sent twice — the one window this
//! cannot close without the command and the answer in one transaction.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orderflow_auth::Claims;
use sqlx::PgPool;

use crate::AppState;
use crate::error::ApiError;

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// A claim older than this without an answer belongs to a request that
/// cannot still be running (it would have timed out).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(10 * 60);

/// The longest key accepted.
pub const MAX_KEY: usize = 255;

/// Response headers worth replaying (not the request id, which is the new
/// request's own).
const REPLAYED_HEADERS: [HeaderName; 3] =
    [axum::http::header::CONTENT_TYPE, axum::http::header::LOCATION, HeaderName::from_static("preference-applied")];

/// Forgets keys older than [`RETENTION`]; how many.
pub async fn purge(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM ingress.idempotency_keys WHERE created_at < now() - make_interval(secs => $1)")
        .bind(RETENTION.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Every write, which sends a command; not the token endpoints under
/// `/auth/`, which change nothing (a retried login gets another token).
fn applies(method: &Method, route: &str) -> bool {
    let write = [Method::POST, Method::PATCH, Method::PUT, Method::DELETE].contains(method);
    write && !route.contains("/auth/")
}

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// What identifies "the same request": method, path and body.
fn fingerprint(method: &Method, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(method.as_str().len() + path.len() + body.len() + 2);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

#[derive(sqlx::FromRow)]
struct Stored {
    request: Vec<u8>,
    status: Option<i16>,
    headers: Option<sqlx::types::Json<Vec<(String, String)>>>,
    body: Option<Vec<u8>>,
}

fn replay(stored: &Stored) -> Option<Response> {
    let status = StatusCode::from_u16(u16::try_from(stored.status?).ok()?).ok()?;
    let mut response = Response::new(Body::from(stored.body.clone().unwrap_or_default()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in stored.headers.as_ref().map(|h| h.0.as_slice()).unwrap_or_default() {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    Some(response)
}

fn kept(headers: &HeaderMap) -> Vec<(String, String)> {
    REPLAYED_HEADERS
        .iter()
        .filter_map(|name| Some((name.as_str().to_owned(), headers.get(name)?.to_str().ok()?.to_owned())))
        .collect()
}

/// Middleware for the routes that send commands (a route layer, after the
/// access check: the key's scope is the caller).
pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    if !applies(request.method(), route.as_deref().unwrap_or("")) {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(&IDEMPOTENCY_KEY) else { return next.run(request).await };
    let Some(key) = key.to_str().ok().filter(|k| valid_key(k)).map(str::to_owned) else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_IDEMPOTENCY_KEY",
            format!("Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters"),
        )
        .into_response();
    };
    match run_once(&state, key, request, next).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn run_once(state: &AppState, key: String, request: Request, next: Next) -> Result<Response, ApiError> {
    let scope = request.extensions().get::<Claims>().map_or_else(|| "anonymous".to_owned(), |c| c.sub.clone());
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, state.max_body_bytes).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "the request body is too large")
    })?;
    let fingerprint = fingerprint(&parts.method, parts.uri.path(), &bytes);
    let deadline = tokio::time::Instant::now() + state.request_timeout;
    loop {
        if claim(&state.pool, &scope, &key, &fingerprint).await? {
            let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            return record(&state.pool, &scope, &key, response).await;
        }
        let stored: Option<Stored> = sqlx::query_as(
            "SELECT request, status, headers, body FROM ingress.idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(&scope)
        .bind(&key)
        .fetch_optional(&state.pool)
        .await?;
        // Gone meanwhile (a failed first attempt dropped its claim): claim again.
        let Some(stored) = stored else { continue };
        if stored.request != fingerprint {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used for another request; use a new key for a new request",
            ));
        }
        if let Some(response) = replay(&stored) {
            return Ok(response);
        }
        // The first request with this key is still running: wait for its answer.
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_KEY_IN_USE",
                "a request with this Idempotency-Key is still running; retry later",
            )
            .with_retry_after(1));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Claims the key for this request: a new row, or one whose retention or
/// claim ran out. `false`: another request has it.
async fn claim(pool: &PgPool, scope: &str, key: &str, fingerprint: &[u8]) -> Result<bool, sqlx::Error> {
    let claimed: Option<(i32,)> = sqlx::query_as(
        "INSERT INTO ingress.idempotency_keys (scope, key, request) VALUES ($1, $2, $3)
         ON CONFLICT (scope, key) DO UPDATE
           SET request = EXCLUDED.request, status = NULL, headers = NULL, body = NULL, created_at = now()
           WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)
              OR (idempotency_keys.status IS NULL AND idempotency_keys.created_at < now() - make_interval(secs => $5))
         RETURNING 1",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(RETENTION.as_secs_f64())
    .bind(ABANDONED_AFTER.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(claimed.is_some())
}

/// Keeps the answer for replays, or drops the claim if the client should
/// retry it (5xx, 429), so the retry runs.
async fn record(pool: &PgPool, scope: &str, key: &str, response: Response) -> Result<Response, ApiError> {
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        sqlx::query("DELETE FROM ingress.idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| ApiError::internal("response", e))?;
    sqlx::query(
        "UPDATE ingress.idempotency_keys SET status = $3, headers = $4, body = $5 WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(i16::try_from(status.as_u16()).unwrap_or(500))
    .bind(sqlx::types::Json(kept(&parts.headers)))
    .bind(bytes.as_ref())
    .execute(pool)
    .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_visible_ascii() {
        assert!(valid_key("0190a0a0-0000-7000-8000-000000000000"));
        assert!(valid_key(&"k".repeat(MAX_KEY)));
        for bad in [String::new(), "k".repeat(MAX_KEY + 1), "a b".into(), "ä".into()] {
            assert!(!valid_key(&bad), "{bad:?}");
        }
    }

    #[test]
    fn the_same_request_is_method_path_and_body() {
        let a = fingerprint(&Method::POST, "/api/v1/orders", b"{}");
        assert_eq!(a, fingerprint(&Method::POST, "/api/v1/orders", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/api/v1/orders", b"{ }"));
        assert_ne!(a, fingerprint(&Method::PATCH, "/api/v1/orders", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/api/v1/users", b"{}"));
    }
}
