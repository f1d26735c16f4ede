//! The keeper's key service, on its ops listener:
//!
//! - `POST /keys/subjects/{subject}`: the subject's key, created on first
//!   use; `410 Gone` once the subject is erased.
//! - `GET /keys/{key_id}`: that key; `410 Gone` if it is destroyed or
//!   unknown.
//!
//! Both answer only a bearer of `keys.token` (`401` otherwise), and never
//! log a key.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orderflow_contracts::personal::{KeyError, KeyStore, Lookup};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KeyBody {
    pub key_id: String,
    /// Standard base64 of the key's 32 bytes.
    pub key: String,
}

#[derive(Clone)]
struct Keys {
    store: Arc<dyn KeyStore>,
    token: Arc<str>,
}

/// The key service's routes over `store`, for bearers of `token`.
pub fn routes(store: Arc<dyn KeyStore>, token: &str) -> Router {
    Router::new()
        .route("/keys/subjects/{subject}", post(sealing))
        .route("/keys/{key_id}", get(opening))
        .with_state(Keys { store, token: token.into() })
}

fn authorized(keys: &Keys, headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| bool::from(token.as_bytes().ct_eq(keys.token.as_bytes())))
}

async fn sealing(State(keys): State<Keys>, headers: HeaderMap, Path(subject): Path<String>) -> Response {
    if !authorized(&keys, &headers) {
        return unauthorized();
    }
    answer(keys.store.sealing_key(&subject).await)
}

async fn opening(State(keys): State<Keys>, headers: HeaderMap, Path(key_id): Path<String>) -> Response {
    if !authorized(&keys, &headers) {
        return unauthorized();
    }
    answer(keys.store.opening_key(&key_id).await)
}

fn unauthorized() -> Response {
    let body = serde_json::json!({"error": "the key service answers bearers of keys.token only"});
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

fn answer(lookup: Result<Lookup, KeyError>) -> Response {
    match lookup {
        Ok(Lookup::Key(key)) => {
            axum::Json(KeyBody { key_id: key.id().to_owned(), key: STANDARD.encode(key.expose_bytes()) })
                .into_response()
        }
        Ok(Lookup::Erased) => (StatusCode::GONE, axum::Json(serde_json::json!({"erased": true}))).into_response(),
        Err(error) => {
            tracing::warn!(%error, "a data key could not be served");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"error": error.to_string()})))
                .into_response()
        }
    }
}
