//! A response sent before its request's body was read says
//! `Connection: close`.
//!
//! Many answers come before the body is read: a refusal by admission (503),
//! a missing or revoked token (401), a rate limit (429). The server then
//! cannot reuse the connection (the rest of the body is still on it) and
//! closes it; a client that has already sent its next request on that
//! connection sees it dropped without an answer ("remote end closed
//! connection without response": seen with schemathesis's client). Saying
//! so in the response (RFC 9112 §9.6) lets the client open a fresh
//! connection for the next request instead. A body read to its end keeps
//! the connection reusable.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Middleware: see the module docs.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if http_body::Body::is_end_stream(&body) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let ended = Arc::new(AtomicBool::new(false));
    let body = Body::new(Watched { inner: body, ended: Arc::clone(&ended) });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if !ended.load(Ordering::Acquire) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it was read to its end.
struct Watched {
    inner: Body,
    ended: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/read", post(|body: String| async move { body }))
            .route("/unread", post(|| async { "refused before reading" }))
            .layer(axum::middleware::from_fn(close_if_body_unread))
    }

    async fn connection(path: &str, body: &'static str) -> Option<HeaderValue> {
        let request = Request::post(path).body(Body::from(body)).expect("request");
        app().oneshot(request).await.expect("response").headers().get(header::CONNECTION).cloned()
    }

    #[tokio::test]
    async fn only_an_answer_that_left_the_body_unread_closes_the_connection() {
        assert_eq!(connection("/unread", "a body").await, Some(HeaderValue::from_static("close")));
        assert_eq!(connection("/read", "a body").await, None, "a body read to its end keeps it open");
        assert_eq!(connection("/unread", "").await, None, "no body, nothing left on the connection");
    }
}
