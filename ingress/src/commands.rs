//! Turning a validated write into a command on Kafka, and answering with
//! 202 or (with `Prefer: wait=N`) the outcome.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderflow_bus::Headers;

use orderflow_contracts::Contract;
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::status::CommandStatus;

/// Sends `command` to `users.commands` and returns its id once the broker
/// has it durably (idempotent producer, `acks=all`): only then may the
/// client be told 202.
pub async fn send<C: Contract>(state: &AppState, command: &C, actor: &str) -> ApiResult<Uuid> {
    let headers = Headers::new_root(C::NAME, actor);
    let payload = state.codec.encode(command).await.map_err(|e| ApiError::unavailable("the schema registry", e))?;
    state
        .producer
        .send(
            &state.kafka.topic(orderflow_contracts::users::COMMANDS.name),
            &command.key(),
            &payload,
            &headers.to_pairs(),
        )
        .await
        .map_err(|e| ApiError::unavailable("the message broker", e))?;
    state.remember(headers.message_id);
    tracing::info!(command = C::NAME, message_id = %headers.message_id, key = %command.key(), "command accepted");
    Ok(headers.message_id)
}

pub fn status_url(id: Uuid) -> String {
    format!("/api/v1/commands/{id}")
}

/// `202 Accepted` with the command id and where to ask about it.
pub fn accepted(id: Uuid) -> Response {
    let url = status_url(id);
    let mut response =
        (StatusCode::ACCEPTED, axum::Json(json!({"command_id": id, "status": "pending", "status_url": url})))
            .into_response();
    if let Ok(value) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The error a rejected command maps to.
pub fn rejection(status: &CommandStatus) -> ApiError {
    let reason = status.reason.clone().unwrap_or_else(|| "REJECTED".into());
    let http = match reason.as_str() {
        "EMAIL_TAKEN" | "USER_EXISTS" | "USER_DEACTIVATED" => StatusCode::CONFLICT,
        "USER_NOT_FOUND" => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let message = status.message.clone().unwrap_or_else(|| "the command was rejected".into());
    ApiError::new(http, reason, message).with_details(json!({"command_id": status.command_id}))
}

/// Answers a write: 202 at once, or, if the client asked to wait, the
/// outcome once the read model shows it (`on_success` renders it, and may
/// wait, until the deadline, for other read models to catch up), the
/// rejection, or 202 when the wait runs out.
pub async fn respond<F, Fut>(state: &AppState, id: Uuid, wait: Option<u64>, on_success: F) -> ApiResult<Response>
where
    F: FnOnce(tokio::time::Instant) -> Fut,
    Fut: Future<Output = ApiResult<Response>>,
{
    let Some(seconds) = wait else { return Ok(accepted(id)) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    match state.waiter.settled(id, deadline).await? {
        Some(status) if status.status == "succeeded" => {
            let mut response = on_success(deadline).await?;
            response.headers_mut().insert("preference-applied", HeaderValue::from_static("wait"));
            Ok(response)
        }
        Some(status) => Err(rejection(&status)),
        None => Ok(accepted(id)),
    }
}

/// Commands this ingress sent recently, so their status reads `pending`
/// even before the projector has seen them.
#[derive(Debug, Default)]
pub struct Recent {
    sent: std::sync::Mutex<std::collections::HashMap<Uuid, Instant>>,
}

const REMEMBER: Duration = Duration::from_secs(600);

impl Recent {
    pub fn insert(&self, id: Uuid) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if sent.len() > 10_000 {
            sent.retain(|_, at| now.duration_since(*at) < REMEMBER);
        }
        sent.insert(id, now);
    }

    pub fn contains(&self, id: Uuid) -> bool {
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.get(&id).is_some_and(|at| at.elapsed() < REMEMBER)
    }
}
