//! Observability shared by every orderflow process.
//!
//! - [`init`]: structured logs (`tracing`), text for a terminal or JSON
//!   (`ORDERFLOW_LOG_FORMAT=json`) for a log pipeline, filtered by
//!   `RUST_LOG`; and, with `telemetry.otlp_endpoint` set, spans exported
//!   over OTLP ([`trace`]).
//! - [`ops_router`]: `/health/live`, `/health/ready` and `/metrics`
//!   (Prometheus text format) with a process-specific readiness check.
//! - [`serve`]: runs a router on an already bound listener until a
//!   cancellation token fires, so tests can start a process on port 0.

mod ops;
pub mod trace;

pub use ops::{ReadinessCheck, ops_router, serve};

use std::sync::Once;

use orderflow_config::TelemetrySettings;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

static INIT: Once = Once::new();

/// Installs the global tracing subscriber once, as process `service`: logs
/// filtered by `RUST_LOG` (else `default_filter`) and, when `settings`
/// name an OTLP endpoint, the spans marked for export, whatever `RUST_LOG`
/// says. Keep the returned [`trace::Exporter`] until the process ends: its
/// drop sends what is queued. Later calls are no-ops, so tests may call it
/// freely.
pub fn init(
    service: &str,
    default_filter: &str,
    settings: &TelemetrySettings,
) -> Result<trace::Exporter, opentelemetry_otlp::ExporterBuildError> {
    let mut result = Ok(trace::Exporter::default());
    INIT.call_once(|| {
        let provider = match trace::provider(service, settings) {
            Ok(provider) => provider,
            Err(error) => {
                result = Err(error);
                return;
            }
        };
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
        let json = std::env::var("ORDERFLOW_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
        // A second subscriber (another test in the same process) is not an
        // error worth failing on.
        let Some(provider) = provider else {
            // Logs only: one global filter, as cheap as it gets.
            let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
            let _ = if json { builder.json().try_init() } else { builder.try_init() };
            return;
        };
        // Logs as RUST_LOG says, and the spans marked for export whatever it
        // says: a filter per layer.
        let logs = if json {
            tracing_subscriber::fmt::layer().json().with_target(true).boxed()
        } else {
            tracing_subscriber::fmt::layer().with_target(true).boxed()
        };
        let spans = trace::layer(service, &provider);
        let _ = tracing_subscriber::registry().with(logs.with_filter(filter)).with(spans).try_init();
        let endpoint = settings.traces_url().map(|url| orderflow_config::redact_url(&url)).unwrap_or_default();
        tracing::info!(%endpoint, ratio = settings.sample_ratio, "exporting traces");
        result = Ok(trace::keep(provider));
    });
    result
}

/// [`init`] without export: logs only (tests, tools).
pub fn init_tracing(default_filter: &str) {
    let _ = init("orderflow", default_filter, &TelemetrySettings::default());
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
