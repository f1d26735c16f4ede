//! The transactional outbox and the idempotency inbox.
//!
//! Guarantee 1 (no dual writes): a service never publishes to Kafka itself.
//! It writes its state change, its [`inbox`] rows and its [`OutboxMessage`]s
//! in **one** Postgres transaction; the [`Relay`] later publishes committed
//! outbox rows and marks them published only after the broker confirmed
//! them. A crash between the broker's ack and the mark republishes the rows
//! (same `message_id`), which every consumer's inbox absorbs.
//!
//! Guarantee 2 (exactly-once effects): [`inbox::claim`] records message ids
//! in the same transaction as the effect; a redelivered message finds its
//! id taken and changes nothing.
//!
//! Dead letters go through the outbox too ([`dead_letter`]): the inbox row
//! that marks the message as done and the dead letter commit together.
//!
//! Calls to outside systems are recorded in the [`effects`] table, run
//! outside any partition's transaction by the kit's effector.
//!
//! The tables (`outbox`, `inbox`, `effects`) belong to this crate: [`migrate`] applies
//! `libs/outbox/migrations` to a service's database, tracked in a
//! migrations table of its own so the service's migrations stay its own.

mod dead_letter;
pub mod effects;
pub mod inbox;
mod relay;

pub use dead_letter::dead_letter;
pub use relay::{Relay, RelayOptions};

use orderflow_bus::HandlerError;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Publish(#[from] orderflow_bus::ProducerError),
    #[error("the outbox relay lost its leadership (its lock connection failed): {0}")]
    LostLeadership(sqlx::Error),
}

/// Creates or upgrades the `outbox`, `inbox` and `effects` tables.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_orderflow_outbox_migrations");
    migrator.run(pool).await
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
    pub fn dead_letter(message: &orderflow_bus::InboundMessage, group: &str, error: &HandlerError) -> Self {
        Self {
            topic: orderflow_contracts::topics::dlq(&message.topic),
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

/// Writes `messages` in the caller's transaction (one statement) and wakes
/// the relay when it commits (one `NOTIFY`, delivered on commit only, so
/// the relay never wakes for nothing).
pub async fn enqueue(tx: &mut PgConnection, messages: &[OutboxMessage]) -> Result<(), sqlx::Error> {
    // Five parameters a row; Postgres takes at most 65535 per statement.
    for chunk in messages.chunks(10_000) {
        let mut insert: QueryBuilder<Postgres> =
            QueryBuilder::new("INSERT INTO outbox (topic, message_key, payload, header_names, header_values) ");
        insert.push_values(chunk, |mut row, m| {
            let (names, values): (Vec<String>, Vec<Vec<u8>>) = m.headers.iter().cloned().unzip();
            row.push_bind(&m.topic).push_bind(&m.key).push_bind(&m.payload).push_bind(names).push_bind(values);
        });
        insert.build().execute(&mut *tx).await?;
    }
    if !messages.is_empty() {
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
            // insufficient resources, operator intervention (which includes
            // statement timeouts: 57014)
            code.starts_with("08")
                || code == "40001"
                || code == "40P01"
                || code.starts_with("53")
                || code.starts_with("57")
        }),
        _ => false,
    };
    // Data exceptions (class 22: a NUL in a text, a value out of range, a
    // string too long) are the input's fault, not ours.
    let invalid = matches!(&error, sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("22")));
    if transient {
        HandlerError::Transient(Box::new(error))
    } else if invalid {
        HandlerError::Invalid(Box::new(error))
    } else {
        HandlerError::Permanent(Box::new(error))
    }
}

/// What an outbox holds that is not published yet.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Backlog {
    /// Rows waiting, parked ones included.
    pub unpublished: i64,
    /// Rows the relay parked.
    pub parked: i64,
    /// Age of the oldest waiting row that is not parked.
    pub oldest_seconds: Option<f64>,
}

/// The backlog of the outbox `conn` reaches (the relay's gauges, the
/// operator's CLI).
pub async fn backlog(conn: &mut sqlx::PgConnection) -> Result<Backlog, sqlx::Error> {
    let (unpublished, parked, oldest_seconds): (i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE parked_at IS NOT NULL),
                EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL))::float8
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Backlog { unpublished, parked, oldest_seconds })
}

/// A row the relay parked after it kept failing to publish (the later rows
/// of its key wait behind it).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Parked {
    pub id: i64,
    pub topic: String,
    pub message_key: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub parked_at: chrono::DateTime<chrono::Utc>,
}

/// The parked rows, oldest first.
pub async fn parked(pool: &PgPool) -> Result<Vec<Parked>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, topic, message_key, attempts, last_error, parked_at FROM outbox
         WHERE parked_at IS NOT NULL AND published_at IS NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await
}

/// Releases parked row `id` and every parked row of its key (they wait
/// behind it, in order), once the cause is fixed: the relay tries them
/// again from their first attempt. How many rows were released (0: `id`
/// is not parked).
pub async fn unpark(pool: &PgPool, id: i64) -> Result<u64, sqlx::Error> {
    let released = sqlx::query(
        "UPDATE outbox SET parked_at = NULL, attempts = 0
         WHERE published_at IS NULL AND parked_at IS NOT NULL
           AND (topic, message_key) = (SELECT topic, message_key FROM outbox
                                       WHERE id = $1 AND parked_at IS NOT NULL AND published_at IS NULL)",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(released.rows_affected())
}
