//! The spans of messages, after the OpenTelemetry messaging conventions:
//! processing one (`process {topic}`, a consumer span continuing the trace
//! of the message's `traceparent`), creating one (`create {topic}`, whose
//! context the message carries) and sending one (`send {topic}`). Every
//! consumer, producer and relay takes its spans from here, so a message's
//! path reads the same in every process.
//!
//! With trace export off these are the log context they always were (the
//! message's topic, offset, id, correlation and trace id on every line its
//! handling logs); nothing about them is exported or computed.

use orderflow_telemetry::trace::{self, KeyValue, Kind};
use tracing::Span;
use tracing::field::Empty;

use crate::InboundMessage;
use crate::headers::{Headers, header_value};

/// The span of processing `message` in consumer group `group`: every
/// line its handling logs carries the message's identity, and, exported,
/// it is a child of the span that created the message.
pub fn processing(message: &InboundMessage, group: &str) -> Span {
    let pairs = &message.header_pairs;
    let traceparent = header_value(pairs, "traceparent");
    let message_id = header_value(pairs, "message_id").unwrap_or_default();
    let span = tracing::info_span!(
        "input",
        topic = %message.topic,
        partition = message.partition,
        offset = message.offset,
        message_id = %message_id,
        correlation_id = %header_value(pairs, "correlation_id").unwrap_or_default(),
        trace_id = %traceparent.and_then(|t| t.split('-').nth(1)).unwrap_or_default(),
        otel.name = Empty,
        otel.kind = Empty,
    );
    trace::export(&span, format_args!("process {}", message.topic), Kind::Consumer, traceparent, || {
        let mut attributes = vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("messaging.destination.name", message.topic.clone()),
            KeyValue::new("messaging.destination.partition.id", message.partition.to_string()),
            KeyValue::new("messaging.kafka.offset", message.offset),
            KeyValue::new("messaging.consumer.group.name", group.to_owned()),
            KeyValue::new("messaging.message.id", message_id.to_owned()),
        ];
        if let Some(key) = &message.key {
            attributes.push(KeyValue::new("messaging.kafka.message.key", key.clone()));
        }
        if let Some(kind) = header_value(pairs, "message_type") {
            attributes.push(KeyValue::new("orderflow.message.type", kind.to_owned()));
        }
        attributes
    });
    span
}

/// Gives `headers` (of a message to `topic` keyed `key`, being written to
/// an outbox) the context of a `create {topic}` span: a child of `from`
/// (the processing of what caused it), or, without one (scheduled work),
/// of the span `headers.traceparent`'s cause named. Its consumers' spans
/// and its relay's send span become children of it. With export off the
/// headers keep the child span id [`Headers::caused`] gave them.
pub fn creating(headers: &mut Headers, cause: &str, topic: &str, key: &str, from: Option<&Span>) {
    if !trace::exporting() {
        return;
    }
    let span = match from {
        Some(from) => tracing::info_span!(parent: from, "create", otel.name = Empty, otel.kind = Empty),
        None => tracing::info_span!(parent: None, "create", otel.name = Empty, otel.kind = Empty),
    };
    let parent = if from.is_none() { Some(cause) } else { None };
    trace::export(&span, format_args!("create {topic}"), Kind::Producer, parent, || {
        vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "create"),
            KeyValue::new("messaging.operation.name", "create"),
            KeyValue::new("messaging.destination.name", topic.to_owned()),
            KeyValue::new("messaging.message.id", headers.message_id.to_string()),
            KeyValue::new("messaging.kafka.message.key", key.to_owned()),
            KeyValue::new("orderflow.message.type", headers.message_type.clone()),
        ]
    });
    if let Some(traceparent) = trace::traceparent(&span) {
        headers.traceparent = traceparent;
    }
}

/// The span of a relay publishing a message (`headers`, to `topic` keyed
/// `key`): a child of the span that created it. `Span::none()` with
/// export off, before reading a header.
pub fn relaying(topic: &str, key: &str, headers: &[(String, Vec<u8>)]) -> Span {
    if !trace::exporting() {
        return Span::none();
    }
    let message_id = header_value(headers, "message_id").unwrap_or_default();
    sending(topic, key, &message_id, header_value(headers, "traceparent"))
}

/// The span of sending one message to `topic` keyed `key`: a child of
/// `parent` (a `traceparent`) or of the current span (a request sending
/// its command, whose context the command then carries). `Span::none()`
/// with export off.
pub fn sending(topic: &str, key: &str, message_id: &dyn std::fmt::Display, parent: Option<&str>) -> Span {
    if !trace::exporting() {
        return Span::none();
    }
    let span = tracing::info_span!("send", otel.name = Empty, otel.kind = Empty);
    trace::export(&span, format_args!("send {topic}"), Kind::Producer, parent, || {
        vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "send"),
            KeyValue::new("messaging.operation.name", "send"),
            KeyValue::new("messaging.destination.name", topic.to_owned()),
            KeyValue::new("messaging.message.id", message_id.to_string()),
            KeyValue::new("messaging.kafka.message.key", key.to_owned()),
        ]
    });
    span
}

/// Sends (`send`, a send's future) in `span`, and marks the span failed
/// when the send fails.
pub async fn sent<T, E: std::fmt::Display>(span: Span, send: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    use tracing::Instrument as _;
    let result = send.instrument(span.clone()).await;
    if let Err(error) = &result {
        trace::failed(&span, error);
    }
    result
}
