//! Kafka for orderflow.
//!
//! - [`Headers`]: the contract's message headers (`message_id`,
//!   `message_type`, `correlation_id`, `causation_id`, `occurred_at`,
//!   `traceparent`, `actor`), readable with kcat.
//! - [`Producer`]: idempotent, `acks=all`; [`Producer::send`] returns only
//!   once the broker confirmed the record, never fire-and-forget.
//! - [`consumer`]: the at-least-once loop every service uses. The offset of
//!   a message is stored only after its handler committed its work; errors
//!   are either transient (retried, nothing advances) or permanent (bounded
//!   retries with backoff, then the handler dead-letters the message and
//!   only then does the offset advance). Shutdown finishes the message in
//!   hand and commits.
//! - [`admin`]: creating the topics the contract names.
//! - [`failpoint`]: crash points used by the crash tests.

pub mod admin;
pub mod consumer;
pub mod failpoint;
mod headers;
mod producer;
pub mod topics;

pub use consumer::{ConsumerOptions, HandlerError, InboundMessage, MessageHandler};
pub use headers::{HeaderError, Headers, dead_letter_headers};
pub use producer::{Producer, ProducerError};

/// The client settings every orderflow client shares.
pub fn client_config(settings: &orderflow_config::KafkaSettings) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers).set("client.id", "orderflow");
    config
}
