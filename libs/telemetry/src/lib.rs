//! Observability shared by every orderflow process.
//!
//! - [`init_tracing`]: structured logs (`tracing`), text for a terminal or
//!   JSON (`ORDERFLOW_LOG_FORMAT=json`) for a log pipeline, filtered by
//!   `RUST_LOG`.
//! - [`ops_router`]: `/health/live`, `/health/ready` and `/metrics`
//!   (Prometheus text format) with a process-specific readiness check.
//! - [`serve`]: runs a router on an already bound listener until a
//!   cancellation token fires, so tests can start a process on port 0.

mod ops;

pub use ops::{ReadinessCheck, ops_router, serve};

use std::sync::Once;

use tracing_subscriber::EnvFilter;

static INIT: Once = Once::new();

/// Installs the global tracing subscriber once; later calls are no-ops, so
/// tests may call it freely.
pub fn init_tracing(default_filter: &str) {
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
        let json = std::env::var("ORDERFLOW_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
        // A second subscriber (another test in the same process) is not an error worth failing on.
        let _ = if json { builder.json().try_init() } else { builder.try_init() };
    });
}

/// Registers a metric with the process-wide default registry, tolerating a
/// second registration of the same metric (several service instances in one
/// test process share the registry).
pub fn register<M>(metric: M) -> M
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let _ = prometheus::default_registry().register(Box::new(metric.clone()));
    metric
}

/// Cancels `token` on SIGINT or SIGTERM, starting a graceful shutdown.
pub async fn cancel_on_signal(token: tokio_util::sync::CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            token.cancel();
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
    token.cancel();
}
