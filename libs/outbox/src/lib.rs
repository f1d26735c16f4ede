//! The transactional outbox and the idempotency inbox.
//!
//! Guarantee 1 (no dual writes): a service never publishes to Kafka itself.
//! It writes its state change, its [`inbox`] row and its [`OutboxMessage`]s
//! in **one** Postgres transaction; the [`Relay`] later publishes committed
//! outbox rows and marks them published only after the broker confirmed
//! them. A crash between the broker's ack and the mark republishes the rows
//! (same `message_id`), which every consumer's inbox absorbs.
//!
//! Guarantee 2 (exactly-once effects): [`inbox::claim`] records a message id
//! in the same transaction as the effect; a redelivered message finds its id
//! taken and changes nothing.
//!
//! Dead letters go through the outbox too ([`dead_letter`]): the inbox row
//! that marks the message as done and the dead letter commit together.
//!
//! The tables (`outbox`, `inbox`) are created by each service's own
//! migrations; their shape is documented in `migrations/README.md`.

mod dead_letter;
pub mod inbox;
mod relay;

pub use dead_letter::dead_letter;
pub use relay::{Relay, RelayOptions};

use orderflow_bus::HandlerError;
use sqlx::PgConnection;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Publish(#[from] orderflow_bus::ProducerError),
}

/// One record to publish once the surrounding transaction commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub topic: String,
    pub key: String,
    /// Already encoded (Confluent-framed Avro, or a dead letter's original bytes).
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutboxMessage {
    /// The dead letter of `message`: its original key, value and headers on
    /// `<topic>.dlq`, plus where it came from, which consumer gave up and why.
    pub fn dead_letter(message: &orderflow_bus::InboundMessage, group: &str, error: &str) -> Self {
        Self {
            topic: orderflow_bus::topics::dlq(&message.topic),
            key: message.key.clone().unwrap_or_default(),
            payload: message.payload.clone().unwrap_or_default(),
            headers: orderflow_bus::dead_letter_headers(
                &message.header_pairs,
                &message.topic,
                message.partition,
                message.offset,
                group,
                error,
            ),
        }
    }
}

/// `/health/ready` for a process that needs its database and the broker:
/// `probe` must succeed on the pool, and the broker must answer metadata.
pub fn readiness(
    pool: sqlx::PgPool,
    producer: orderflow_bus::Producer,
    probe: &'static str,
) -> std::sync::Arc<dyn orderflow_telemetry::ReadinessCheck> {
    use futures::FutureExt;
    std::sync::Arc::new(move || {
        let (pool, producer) = (pool.clone(), producer.clone());
        async move {
            sqlx::query(probe).execute(&pool).await.map_err(|e| format!("database: {e}"))?;
            producer.ping().await.map_err(|e| format!("kafka: {e}"))
        }
        .boxed()
    })
}

/// Writes `messages` in the caller's transaction and wakes the relay when
/// it commits.
pub async fn enqueue(tx: &mut PgConnection, messages: &[OutboxMessage]) -> Result<(), sqlx::Error> {
    for m in messages {
        let (names, values): (Vec<String>, Vec<Vec<u8>>) = m.headers.iter().cloned().unzip();
        sqlx::query(
            "INSERT INTO outbox (topic, message_key, payload, header_names, header_values) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&m.topic)
        .bind(&m.key)
        .bind(&m.payload)
        .bind(&names)
        .bind(&values)
        .execute(&mut *tx)
        .await?;
    }
    if !messages.is_empty() {
        // Delivered on commit only, so the relay never wakes for nothing.
        sqlx::query("SELECT pg_notify('outbox', '')").execute(&mut *tx).await?;
    }
    Ok(())
}

/// Whether a database error is worth retrying unchanged (the database is
/// down, restarting, or asked us to retry) or says the work itself is bad.
pub fn classify(error: sqlx::Error) -> HandlerError {
    let transient = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // connection exceptions, serialization failure, deadlock,
            // insufficient resources, operator intervention
            code.starts_with("08")
                || code == "40001"
                || code == "40P01"
                || code.starts_with("53")
                || code.starts_with("57")
        }),
        _ => false,
    };
    if transient { HandlerError::Transient(error.to_string()) } else { HandlerError::Permanent(error.to_string()) }
}
