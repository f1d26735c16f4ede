//! Traces out of the process, and the W3C trace context every message
//! carries in its `traceparent` header.
//!
//! With `telemetry.otlp_endpoint` set, [`init`] exports spans over
//! OTLP/HTTP. Only the spans that declare the fields `otel.name` and
//! `otel.kind` are exported: a request's server span, a message's producer
//! and consumer spans, the waiter's. [`export`] names them after the
//! OpenTelemetry semantic conventions, sets their attributes and hangs
//! them under the span whose `traceparent` a message carries, so one HTTP
//! write is one trace across every process it reaches. With export off,
//! [`export`] does nothing and [`traceparent`] is `None`: the spans are
//! the log context they always were, and messages carry a child span id of
//! their cause's trace ([`child_traceparent`]) as before.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use orderflow_config::TelemetrySettings;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use opentelemetry::KeyValue;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans leave the process: what tracing costs is only paid then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// An exported span's kind (OpenTelemetry's `SpanKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Answers a request (the ingress's HTTP span).
    Server,
    /// Calls another system and waits (a payment provider).
    Client,
    /// Creates or sends a message.
    Producer,
    /// Processes a message.
    Consumer,
    Internal,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
            Kind::Internal => "internal",
        }
    }
}

/// Makes `span` an exported span: named `name`, of `kind`, with the
/// attributes `attributes` gives, and — when `parent` (a `traceparent`) is
/// given — a child of that remote span rather than of its tracing parent.
/// `span` must declare `otel.name` and `otel.kind` (as
/// `tracing::field::Empty`) and not have been entered yet. With export
/// off this does nothing: neither the name nor the attributes are made.
pub fn export(
    span: &Span,
    name: fmt::Arguments<'_>,
    kind: Kind,
    parent: Option<&str>,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) {
    if !exporting() || span.is_disabled() {
        return;
    }
    span.record("otel.name", name.to_string());
    span.record("otel.kind", kind.as_str());
    if let Some(parent) = parent {
        let carrier = HashMap::from([("traceparent".to_owned(), parent.to_owned())]);
        // A malformed traceparent extracts as no parent: a trace of its own.
        let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
    }
    for attribute in attributes() {
        span.set_attribute(attribute.key, attribute.value);
    }
}

/// Adds attributes to an exported span (what is only known at its end: a
/// response's status); nothing with export off.
pub fn record(span: &Span, attributes: impl FnOnce() -> Vec<KeyValue>) {
    if exporting() {
        for attribute in attributes() {
            span.set_attribute(attribute.key, attribute.value);
        }
    }
}

/// Marks an exported span as failed, with why.
pub fn failed(span: &Span, why: impl fmt::Display) {
    if exporting() {
        span.set_status(opentelemetry::trace::Status::error(why.to_string()));
    }
}

/// The `traceparent` of `span` when it is exported: what a message sent
/// from it carries, so that its consumer's span becomes a child of it.
pub fn traceparent(span: &Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let context = span.context();
    let span = context.span();
    let found = span.span_context();
    found.is_valid().then(|| format!("00-{}-{}-{:02x}", found.trace_id(), found.span_id(), found.trace_flags().to_u8()))
}

/// The `traceparent` a message sent from `span` carries, in the trace of
/// `cause` (the `traceparent` of what caused it): `span`'s own when it is
/// exported, else a new span id in `cause`'s trace.
pub fn outgoing(span: &Span, cause: &str) -> String {
    traceparent(span).unwrap_or_else(|| child_traceparent(cause))
}

/// Whether `value` is a W3C `traceparent` of version 00: lower-case hex
/// fields of 2, 32, 16 and 2 digits, trace and parent ids not all zero.
pub fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if *version == "00" && hex(trace, 32) && nonzero(trace) && hex(parent, 16) && nonzero(parent) && hex(flags, 2))
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new W3C `traceparent` (version 00, sampled).
pub fn new_traceparent() -> String {
    format!("00-{}-{}-01", random_hex(16), random_hex(8))
}

/// The same trace with a new span id (and the same sampling decision); a
/// malformed parent starts a new trace.
pub fn child_traceparent(parent: &str) -> String {
    let parts: Vec<&str> = parent.split('-').collect();
    if parts.len() == 4 && parts[1].len() == 32 {
        format!("00-{}-{}-{}", parts[1], random_hex(8), parts[3])
    } else {
        new_traceparent()
    }
}

/// Exports spans while it lives; dropping it sends what is still queued
/// (a process keeps it until it exits).
#[derive(Debug, Default)]
pub struct Exporter {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "spans still queued for export were lost");
            }
        }
    }
}

/// The OTLP pipeline `settings` ask for, as `service`: `None` when export
/// is off.
pub(crate) fn provider(
    service: &str,
    settings: &TelemetrySettings,
) -> Result<Option<SdkTracerProvider>, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
    let Some(url) = settings.traces_url() else { return Ok(None) };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_timeout(std::time::Duration::from_secs(10))
        .with_headers(HashMap::new())
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource)
            .build(),
    ))
}

/// The layer that exports the spans marked for it, and warnings and
/// errors as events on them.
pub(crate) fn layer<S>(
    service: &str,
    provider: &SdkTracerProvider,
) -> impl tracing_subscriber::Layer<S> + Send + Sync + use<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    use tracing_subscriber::Layer as _;
    // Marked spans are INFO: the hint keeps DEBUG and TRACE call sites off.
    let marked = tracing_subscriber::filter::filter_fn(|meta| {
        if meta.is_span() { meta.fields().field("otel.kind").is_some() } else { *meta.level() <= tracing::Level::WARN }
    })
    .with_max_level_hint(tracing::level_filters::LevelFilter::INFO);
    EXPORTING.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service.to_owned()))
        .with_threads(false)
        .with_filter(marked)
}

/// Keeps `provider` in `exporter`.
pub(crate) fn keep(provider: SdkTracerProvider) -> Exporter {
    Exporter { provider: Some(provider) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_follow_w3c() {
        assert!(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(!valid_traceparent(bad), "{bad:?}");
        }
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let child = child_traceparent(parent);
        assert!(valid_traceparent(&child));
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && child.ends_with("-00"));
        assert_ne!(child, parent);
        assert!(valid_traceparent(&child_traceparent("garbage")));
    }

    #[test]
    fn with_export_off_spans_carry_no_context() {
        let span = tracing::info_span!("input", otel.name = tracing::field::Empty, otel.kind = tracing::field::Empty);
        export(
            &span,
            format_args!("process t"),
            Kind::Consumer,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            || panic!("attributes are not made with export off"),
        );
        assert_eq!(traceparent(&span), None);
        assert!(
            outgoing(&span, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
    }
}
