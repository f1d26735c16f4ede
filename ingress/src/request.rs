//! Who a request is, for the logs and the bus: its `X-Request-Id` and the
//! caller's W3C trace context.
//!
//! The request id (the client's, when it sends a valid one, else a fresh
//! UUIDv7) is the `correlation_id` of every command the request sends, so
//! the command, its events and every log line about them carry it; it is a
//! field of the request's span and comes back in the response's
//! `X-Request-Id`. A valid `traceparent` puts the command in the caller's
//! trace; `Headers::caused` then carries that trace through every service's
//! events.

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orderflow_bus::Headers;
use orderflow_telemetry::trace::{self, KeyValue, Kind};
use tracing::Instrument;

use crate::error::ApiError;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The longest request id accepted: room for any id scheme in use (UUIDs,
/// ULIDs, a load balancer's hex ids), and small enough for every header of
/// every message it is copied onto.
pub const MAX_REQUEST_ID: usize = 128;

/// The request's identity, put into its extensions by [`identify`].
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's `X-Request-Id`, or one minted here.
    pub request_id: String,
    /// The caller's `traceparent`, when it sent a valid one.
    pub traceparent: Option<String>,
}

impl RequestContext {
    /// A context of our own, for a request that did not pass [`identify`].
    pub fn fresh() -> Self {
        Self { request_id: uuid::Uuid::now_v7().to_string(), traceparent: None }
    }

    /// The headers of a command this request sends: correlated by the
    /// request id, and a child span of the caller's trace (a new trace
    /// without one).
    pub fn command_headers(&self, message_type: &str, actor: &str) -> Headers {
        let mut headers = Headers::new_root(message_type, actor);
        headers.correlation_id = self.request_id.clone();
        if let Some(parent) = &self.traceparent {
            headers.traceparent = orderflow_telemetry::trace::child_traceparent(parent);
        }
        headers
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestContext>().cloned().unwrap_or_else(RequestContext::fresh))
    }
}

/// Whether `id` may be used as a request id: 1 to [`MAX_REQUEST_ID`]
/// characters of letters, digits and `-_.:+=/@`, nothing a log line or a
/// header could be confused by.
pub fn valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:+=/@".contains(&b))
}

/// Middleware: reads (or mints) the request id and the trace context, runs
/// the request in a span that carries them, and answers with the request
/// id. A request id that is malformed or too long is refused (400) rather
/// than silently replaced, so the client learns its ids go nowhere; a
/// malformed `traceparent` is ignored (W3C: start a new trace).
pub async fn identify(mut request: Request, next: Next) -> Response {
    let given = request.headers().get(&REQUEST_ID).map(|v| v.to_str().ok().filter(|id| valid_request_id(id)));
    let request_id = match given {
        None => uuid::Uuid::now_v7().to_string(),
        Some(Some(id)) => id.to_owned(),
        Some(None) => {
            let error = ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST_ID",
                format!("X-Request-Id must be 1 to {MAX_REQUEST_ID} characters of letters, digits and -_.:+=/@"),
            );
            return with_request_id(error.into_response(), &uuid::Uuid::now_v7().to_string());
        }
    };
    let traceparent = request
        .headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .filter(|t| orderflow_telemetry::trace::valid_traceparent(t))
        .map(str::to_owned);
    let trace_id = traceparent.as_deref().and_then(|t| t.split('-').nth(1)).unwrap_or("").to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        trace_id = %trace_id,
        method = %request.method(),
        path = %request.uri().path(),
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    server_span(&span, &request, &request_id, traceparent.as_deref());
    request.extensions_mut().insert(RequestContext { request_id: request_id.clone(), traceparent });
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    trace::record(&span, || vec![KeyValue::new("http.response.status_code", i64::from(status.as_u16()))]);
    if status.is_server_error() {
        trace::failed(&span, status);
    }
    with_request_id(response, &request_id)
}

/// Makes the request's span (exported) an HTTP server span after the
/// OpenTelemetry conventions: `POST /api/v1/orders`, a child of the
/// caller's span when it sent a `traceparent`. Routing has run (this is a
/// layer of the router), so the route template is known.
fn server_span(span: &tracing::Span, request: &Request, request_id: &str, traceparent: Option<&str>) {
    let method = request.method().as_str();
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let name = std::fmt::from_fn(|f| match route {
        Some(route) => write!(f, "{method} {route}"),
        None => f.write_str(method),
    });
    trace::export(span, format_args!("{name}"), Kind::Server, traceparent, || {
        let mut attributes = vec![
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("url.path", request.uri().path().to_owned()),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("orderflow.request_id", request_id.to_owned()),
        ];
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route.to_owned()));
        }
        attributes
    });
}

fn with_request_id(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_and_plain() {
        assert!(valid_request_id("0190a0a0-0000-7000-8000-000000000000"));
        assert!(valid_request_id("lb:abc.def_1/2+3=4@x"));
        assert!(valid_request_id(&"a".repeat(MAX_REQUEST_ID)));
        assert!(!valid_request_id(&"a".repeat(MAX_REQUEST_ID + 1)));
        assert!(!valid_request_id(""));
        for bad in ["a b", "a\"b", "a\nb", "ä", "a;b", "<script>"] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_command_continues_the_callers_trace_under_the_request_id() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = RequestContext { request_id: "req-1".into(), traceparent: Some(parent.into()) };
        let headers = context.command_headers("RegisterUser", "anonymous");
        assert_eq!(headers.correlation_id, "req-1");
        assert_eq!(headers.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(headers.traceparent, parent, "a span of its own");
        assert_eq!(headers.causation_id, headers.message_id.to_string());
        let fresh = RequestContext::fresh().command_headers("RegisterUser", "anonymous");
        assert_eq!(fresh.trace_id().len(), 32);
    }
}
