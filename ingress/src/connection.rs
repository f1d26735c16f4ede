//! What to do with a request body the handler did not read.
//!
//! Many answers come before the body is read: a refusal by admission (503),
//! a missing or revoked token (401), a rate limit (429). The rest of the
//! body is still on the connection. hyper polls it once after the answer
//! and closes the connection, silently, if that did not finish it: a client
//! that sends its body apart from its headers (Python's `http.client` does)
//! and reuses the connection then sees it dropped without an answer
//! ("remote end closed connection without response", seen with
//! schemathesis). So this layer finishes the job: the unread rest of a body
//! is read and dropped, up to [`DRAIN_BYTES`] and [`DRAIN_FOR`], and the
//! connection stays reusable; a body larger or slower than that gets
//! `Connection: close` (RFC 9112 §9.6), so the client opens a fresh one.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;

/// The most of an unread body read and dropped to keep its connection.
pub const DRAIN_BYTES: usize = 64 * 1024;
/// How long the rest of an unread body may take to arrive.
pub const DRAIN_FOR: Duration = Duration::from_millis(100);

/// Middleware: see the module docs.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if http_body::Body::is_end_stream(&body) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let (give_back, unread) = oneshot::channel();
    let body = Body::new(Watched { inner: body, ended: false, give_back: Some(give_back) });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    // The body comes back if it was dropped unread; read to its end, it does
    // not (the sender goes without sending).
    let drained = tokio::time::timeout(DRAIN_FOR, async {
        match unread.await {
            Ok(rest) => drain(rest).await,
            Err(_) => true,
        }
    })
    .await
    .unwrap_or(false);
    if !drained {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads `body` to its end if it is at most [`DRAIN_BYTES`].
async fn drain(mut body: Body) -> bool {
    use http_body_util::BodyExt;
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        read += frame.data_ref().map_or(0, Bytes::len);
        if read > DRAIN_BYTES {
            return false;
        }
    }
    true
}

/// A request body that gives its unread rest back when dropped before its
/// end.
struct Watched {
    inner: Body,
    ended: bool,
    give_back: Option<oneshot::Sender<Body>>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(give_back) = self.give_back.take()
            && !self.ended
        {
            let _ = give_back.send(std::mem::take(&mut self.inner));
        }
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended = true;
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
    async fn an_unread_body_is_drained_to_keep_the_connection_unless_it_is_too_large() {
        assert_eq!(connection("/unread", "a body").await, None, "drained: the connection stays reusable");
        assert_eq!(connection("/read", "a body").await, None, "a body read to its end keeps it open");
        assert_eq!(connection("/unread", "").await, None, "no body, nothing left on the connection");
        let large: &'static str = Box::leak("x".repeat(DRAIN_BYTES + 1).into_boxed_str());
        assert_eq!(connection("/unread", large).await, Some(HeaderValue::from_static("close")), "too large to drain");
    }

    #[tokio::test]
    async fn a_body_that_does_not_come_closes_the_connection() {
        let (_sender, body) = futures_channel_body();
        let request = Request::post("/unread").body(body).expect("request");
        let response = app().oneshot(request).await.expect("response");
        assert_eq!(response.headers().get(header::CONNECTION), Some(&HeaderValue::from_static("close")));
    }

    /// A body whose data never arrives while the sender is held.
    fn futures_channel_body() -> (tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let stream = tokio_stream_from(receiver);
        (sender, Body::from_stream(stream))
    }

    fn tokio_stream_from(
        mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }
}
