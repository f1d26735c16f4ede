//! Kafka for orderflow.
//!
//! - [`Headers`]: the contract's message headers (`message_id`,
//!   `message_type`, `correlation_id`, `causation_id`, `occurred_at`,
//!   `traceparent`, `actor`), readable with kcat.
//! - [`Producer`]: idempotent, `acks=all`; [`Producer::send`] returns only
//!   once the broker confirmed the record, never fire-and-forget.
//! - [`consumer`]: the one consumer every service and projection uses.
//!   Partitions are worked on concurrently, each by its own worker, in
//!   order; a run of one partition's messages is handed to the handler at
//!   once (one database transaction). Offsets live in the consumer group
//!   (stored only after the handler committed: at least once) or in the
//!   handler's own transaction ([`OffsetStore::Handler`]: exactly once).
//!   What to do on failure follows from the [`HandlerError`]: transient
//!   (retried, nothing advances), split (the run goes again in parts
//!   around the failing message), permanent or invalid (the message gets
//!   bounded retries with backoff, then is dead-lettered, and only then
//!   does its offset advance), not yet (its key is parked), stop (the
//!   consumer ends with the handler's error).
//! - [`admin`]: creating topics with the configured replication.
//! - [`lag`]: how far behind a reader is (watermarks, committed offsets,
//!   the age of the oldest record not read yet).
//! - [`failpoint`]: crash points for the crash tests (feature `failpoints`).

pub mod admin;
pub mod consumer;
pub mod failpoint;
mod headers;
pub mod lag;
mod producer;
pub mod trace;

pub use consumer::{
    ConsumerError, ConsumerOptions, Handled, HandlerError, InboundMessage, MessageHandler, OffsetStore, Source, Start,
    Wakeups,
};
pub use headers::{
    Cause, CommandOutcome, DeadLetterCause, HeaderError, Headers, Settled, dead_letter_headers, dlq, header_value,
    outcome,
};
pub use producer::{Producer, ProducerError};

/// The client settings every orderflow client shares: brokers, `client.id`
/// and the passthrough properties (SASL, TLS, ...).
pub fn client_config(settings: &orderflow_config::KafkaSettings) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers).set("client.id", &settings.client_id);
    for (name, value) in settings.librdkafka_properties() {
        config.set(name, value);
    }
    config
}

/// [`client_config`] plus what every consumer needs: manual offset storing
/// (an offset advances only after the work it covers is committed) and the
/// fetch wait and size of the settings.
pub fn consumer_config(settings: &orderflow_config::KafkaSettings) -> rdkafka::ClientConfig {
    let mut config = client_config(settings);
    config
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string())
        .set("fetch.min.bytes", settings.fetch_min_bytes.to_string())
        .set("session.timeout.ms", settings.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", settings.heartbeat_interval_ms.to_string())
        .set("max.poll.interval.ms", settings.max_poll_interval_ms.to_string());
    config
}
