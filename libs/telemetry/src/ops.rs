use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `/health/ready` asks: `Ok` when the process can do its work (its
/// database and broker answer), otherwise a short reason.
pub trait ReadinessCheck: Send + Sync + 'static {
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

impl<F> ReadinessCheck for F
where
    F: Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
{
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        (self)()
    }
}

/// `/health/live`, `/health/ready` and `/metrics`.
pub fn ops_router(ready: Arc<dyn ReadinessCheck>) -> Router {
    let ready_for_metrics = Arc::clone(&ready);
    Router::new()
        .route("/health/live", get(|| async { axum::Json(serde_json::json!({"status": "live"})) }))
        .route(
            "/health/ready",
            get(move || {
                let ready = Arc::clone(&ready);
                async move {
                    match ready.check().await {
                        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready"}))),
                        Err(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(serde_json::json!({"status": "not_ready", "reason": reason})),
                        ),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let ready = Arc::clone(&ready_for_metrics);
                async move { metrics(ready.as_ref()).await }
            }),
        )
}

static READY: std::sync::LazyLock<prometheus::IntGauge> = std::sync::LazyLock::new(|| {
    crate::register(
        prometheus::IntGauge::new(
            "orderflow_process_ready",
            "1 when /health/ready would answer 200 (asked at each scrape), 0 when not",
        )
        .expect("gauge"),
    )
});

/// The metrics, with the readiness asked now (an alert on a process that
/// is up but not ready needs it as a series).
async fn metrics(ready: &dyn ReadinessCheck) -> Response {
    READY.set(i64::from(ready.check().await.is_ok()));
    let families = prometheus::gather();
    let mut body = Vec::new();
    match TextEncoder::new().encode(&families, &mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics could not be encoded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets
/// in-flight requests finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}
