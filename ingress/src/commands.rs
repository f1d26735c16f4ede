//! Turning a validated write into a command on Kafka, and answering with
//! 202 or (with `Prefer: wait=N`) the outcome.

use std::future::Future;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderflow_contracts::Command;
use orderflow_telemetry::trace::{self, KeyValue, Kind};
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::request::RequestContext;
use crate::status::CommandStatus;

/// Sends `command` to its domain's command topic and returns its id once
/// the broker has it durably (idempotent producer, `acks=all`): only then
/// may the client be told 202.
/// Its `correlation_id` is the request's id and its trace the caller's
/// ([`RequestContext::command_headers`]).
/// Exported, its `send` span is a child of the request's, and the command
/// carries that span's context: the services' spans hang under it.
pub async fn send<C: Command>(state: &AppState, request: &RequestContext, command: &C, actor: &str) -> ApiResult<Uuid> {
    let mut headers = request.command_headers(C::NAME, actor);
    let (topic, key) = (state.kafka.topic(C::TOPIC.name), command.key());
    let span = orderflow_bus::trace::sending(&topic, &key, &headers.message_id, None);
    if let Some(traceparent) = trace::traceparent(&span) {
        headers.traceparent = traceparent;
    }
    let payload = state.codec.encode(command).await.map_err(|e| ApiError::unavailable("the schema registry", e))?;
    orderflow_bus::trace::sent(span, state.producer.send(&topic, &key, &payload, &headers.to_pairs()))
        .await
        .map_err(|e| ApiError::unavailable("the message broker", e))?;
    state.waiter.sent(headers.message_id, C::NAME);
    tracing::info!(
        command = C::NAME,
        message_id = %headers.message_id,
        correlation_id = %headers.correlation_id,
        %key,
        "command accepted"
    );
    Ok(headers.message_id)
}

/// The header naming the command behind a settled answer (a 202 says it in
/// its body): the GraphQL mutations read it, a client may log it.
pub const COMMAND_ID: &str = "command-id";

/// Marks `response` as the outcome of command `id` (`Command-Id`).
pub fn settled_by(mut response: Response, id: Uuid) -> Response {
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert(COMMAND_ID, value);
    }
    response
}

pub fn status_url(id: Uuid) -> String {
    format!("/api/v1/commands/{id}")
}

/// `202 Accepted` with the command id and where to ask about it.
pub fn accepted(id: Uuid) -> Response {
    let url = status_url(id);
    let body = crate::openapi::Accepted { command_id: id, status: "pending", status_url: url.clone() };
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The error a rejected or failed command maps to: the input's fault is a
/// 4xx, a command that failed in a service (and was kept for an operator)
/// is a 500 that says so.
pub fn rejection(status: &CommandStatus) -> ApiError {
    let reason = status.reason.as_deref().unwrap_or("REJECTED");
    let message = status.message.clone().unwrap_or_else(|| "the command was rejected".into());
    ApiError::refused(reason, message).with_details(json!({"command_id": status.command_id}))
}

/// Answers a write: 202 at once, or, if the client asked to wait, the
/// outcome once the read model shows it (`on_success` renders it from the
/// settled status, and may wait, until the deadline, for other read models
/// to catch up — answering 202 itself if they do not), the rejection, or
/// 202 when the wait runs out.
pub async fn respond<F, Fut>(state: &AppState, id: Uuid, wait: Option<u64>, on_success: F) -> ApiResult<Response>
where
    F: FnOnce(CommandStatus, tokio::time::Instant) -> Fut,
    Fut: Future<Output = ApiResult<Response>>,
{
    let Some(seconds) = wait else { return Ok(accepted(id)) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let settled = wait_until(state, id, deadline, || async move {
        Ok(crate::status::read(&state.pool, id).await?.filter(|found| found.status != "pending"))
    })
    .await?;
    match settled {
        Some(status) if status.status == "succeeded" => {
            let mut response = on_success(status, deadline).await?;
            response.headers_mut().insert("preference-applied", HeaderValue::from_static("wait"));
            Ok(settled_by(response, id))
        }
        Some(status) => Err(rejection(&status)),
        None => Ok(accepted(id)),
    }
}

/// Waits until `check` yields something, re-running it each time command
/// `id` is announced, or `None` at `deadline`. The request holds its waiting
/// place (taken on admission), not an in-flight slot, meanwhile; how long
/// the services took tells admission how many may wait at once.
pub async fn wait_until<T, F, Fut>(
    state: &AppState,
    id: Uuid,
    deadline: tokio::time::Instant,
    check: F,
) -> Result<Option<T>, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, sqlx::Error>>,
{
    crate::admission::release_while_waiting();
    let started = tokio::time::Instant::now();
    // Exported: the wait for the services, in the request's trace (no
    // span at all otherwise: nothing logs inside it).
    let span = if trace::exporting() {
        tracing::info_span!("wait", otel.name = tracing::field::Empty, otel.kind = tracing::field::Empty)
    } else {
        tracing::Span::none()
    };
    trace::export(&span, format_args!("wait for command"), Kind::Internal, None, || {
        vec![KeyValue::new("orderflow.command.id", id.to_string())]
    });
    let found = state.waiter.until(id, deadline, check).instrument(span.clone()).await?;
    trace::record(&span, || vec![KeyValue::new("orderflow.command.answered", found.is_some())]);
    state.admission.waited(started.elapsed(), found.is_some());
    Ok(found)
}

/// How long after its id was minted a command the read model does not know
/// yet still reads as `pending` rather than 404: longer than any healthy
/// projection lag, and shorter than anyone keeps polling for a typo.
pub const PENDING_WINDOW: Duration = Duration::from_secs(600);

/// Clocks of ingress replicas may disagree by this much.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Whether `id` may be a command sent within [`PENDING_WINDOW`] before
/// `now`. The ingress mints UUIDv7 command ids, which carry their time, so
/// every replica answers alike and nothing needs remembering.
pub fn recently_minted(id: Uuid, now: SystemTime) -> bool {
    if id.get_version() != Some(uuid::Version::SortRand) {
        return false;
    }
    let Some(timestamp) = id.get_timestamp() else { return false };
    let (seconds, nanos) = timestamp.to_unix();
    let minted = SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos);
    match now.duration_since(minted) {
        Ok(age) => age <= PENDING_WINDOW,
        Err(ahead) => ahead.duration() <= CLOCK_SKEW,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fresh_v7_ids_count_as_recently_minted() {
        let now = SystemTime::now();
        assert!(recently_minted(Uuid::now_v7(), now));
        assert!(!recently_minted(Uuid::now_v7(), now + PENDING_WINDOW + Duration::from_secs(1)));
        assert!(recently_minted(Uuid::now_v7(), now + PENDING_WINDOW - Duration::from_secs(1)));
        assert!(!recently_minted(Uuid::now_v7(), now - CLOCK_SKEW - Duration::from_secs(5)), "too far ahead");
        assert!(!recently_minted(Uuid::nil(), now));
        assert!(!recently_minted(Uuid::parse_str("0190a0a0-0000-7000-8000-000000000000").expect("uuid"), now));
        assert!(!recently_minted(Uuid::from_u128(0x0190a0a0_0000_4000_8000_000000000000), now), "v4");
    }
}
