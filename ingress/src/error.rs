//! The one error shape of the API:
//! `{"error": {"code": "SNAKE_CASE", "message": "...", "details": ...}}`.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// SNAKE_CASE, stable: clients switch on it.
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Value,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), details: Value::Null, retry_after: None }
    }

    /// Tells the client how many seconds to wait before trying again.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn validation(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED", format!("{field}: {problem}"))
            .with_details(json!({ "field": field, "problem": problem }))
    }

    /// A query parameter out of range (400, naming it).
    pub fn bad_query(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::new(StatusCode::BAD_REQUEST, "INVALID_QUERY", format!("{field}: {problem}"))
            .with_details(json!({ "field": field, "problem": problem }))
    }

    /// A path parameter that does not fit (400, naming it).
    pub fn bad_path(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PATH", format!("{field}: {problem}"))
            .with_details(json!({ "field": field, "problem": problem }))
    }

    /// A refusal for one of the contracts' reasons, answered with the
    /// status of its kind (the same mapping whether the ingress refuses
    /// early or a service rejected the command).
    pub fn refused(reason: &str, message: impl Into<String>) -> Self {
        use orderflow_contracts::reason::{Kind, Reason};
        // A name this build does not know (a newer service) is a
        // client-side refusal.
        let status = match Reason::parse(reason).map(Reason::kind) {
            Some(Kind::Invalid) | None => StatusCode::UNPROCESSABLE_ENTITY,
            Some(Kind::Conflict) => StatusCode::CONFLICT,
            Some(Kind::NotFound) => StatusCode::NOT_FOUND,
            Some(Kind::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
            Some(Kind::Failed) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, reason.to_owned(), message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", what)
    }

    /// A failure of ours: logged here, once, and answered without internals.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, context, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "something went wrong on our side")
    }

    /// A dependency (broker, read models) is unavailable: worth retrying.
    pub fn unavailable(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::warn!(%error, context, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            format!("{context} is unavailable; retry later"),
        )
        .with_retry_after(1)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::unavailable("the read model", error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::openapi::ErrorBody {
            error: crate::openapi::ErrorDetail { code: self.code, message: self.message, details: self.details },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}
