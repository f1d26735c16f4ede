//! What recording one message does, inside the projection's batch
//! transaction (`search_path` = the generation's schema).
//!
//! Exactly once by `message_id`: a republished duplicate (a relay retry,
//! possibly after newer messages) finds its id recorded and changes nothing.
//! The offset advances in the same transaction (libs/projection), so a
//! crash never records a message twice or skips one.

use std::sync::Arc;

use orderflow_audit::chain::truncate_to_micros;
use orderflow_audit::{GENESIS, Record, canonical_json};
use orderflow_bus::{HandlerError, Headers, InboundMessage};
use orderflow_config::KafkaSettings;
use orderflow_contracts::{Codec, Decoded};
use orderflow_outbox::classify;
use orderflow_projection::{Applied, Definition, Projection, Routes};
use sqlx::PgConnection;

use orderflow_contracts::json::{Marks, redacted_json};

/// The projection's name: its generation schemas are `audit_gen_<n>`.
pub const NAME: &str = "audit";
/// The tables of one generation.
pub const TEMPLATE: &str = include_str!("../../../migrations/audit/generation.sql");
/// The tables readers see, as `audit.<table>`.
pub const TABLES: [&str; 4] = ["records", "heads", "checkpoints", "anchors"];

/// The audit log, fed by every `*.events` topic
/// ([`orderflow_contracts::event_topics`]).
#[derive(Debug)]
pub struct AuditProjection {
    definition: Definition,
    routes: Routes<Event>,
    checkpoint_every: i64,
    /// The fields this build's schemas mark sensitive: dropped also from
    /// messages whose (older) writer schema did not mark them yet.
    marks: Marks,
}

impl AuditProjection {
    pub fn new(codec: Arc<Codec>, kafka: &KafkaSettings, checkpoint_every: i64) -> Self {
        let routes = orderflow_contracts::event_topics()
            .iter()
            .fold(Routes::new(), |routes, t| routes.written(kafka.topic(t.name), &codec, Event::new));
        let definition = Definition {
            name: NAME.into(),
            template: TEMPLATE.into(),
            tables: TABLES.iter().map(|t| (*t).to_owned()).collect(),
            view_schema: orderflow_audit::VIEW_SCHEMA.into(),
            notify_channel: None,
        };
        Self { definition, routes, checkpoint_every: checkpoint_every.max(1), marks: Marks::of_this_build() }
    }
}

/// An event of any schema, as its writer wrote it, with its headers.
#[derive(Debug)]
pub struct Event {
    decoded: Decoded,
    headers: Headers,
}

impl Event {
    fn new(decoded: Decoded, headers: Headers) -> Self {
        Self { decoded, headers }
    }
}

impl Projection for AuditProjection {
    type Input = Event;

    fn definition(&self) -> &Definition {
        &self.definition
    }

    fn routes(&self) -> &Routes<Event> {
        &self.routes
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: Event,
        message: &InboundMessage,
    ) -> Result<Applied, HandlerError> {
        let Event { decoded, headers } = event;
        let seen: Option<i32> = sqlx::query_scalar("SELECT 1 FROM records WHERE message_id = $1")
            .bind(headers.message_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        if seen.is_some() {
            return Ok(Applied::nothing());
        }
        let payload = redacted_json(&decoded.schema, &decoded.value, &self.marks)
            .map_err(|e| HandlerError::Permanent(format!("{}: {e}", decoded.full_name).into()))?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM heads WHERE topic = $1 AND partition = $2 FOR UPDATE")
                .bind(&message.topic)
                .bind(message.partition)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
        let (last, prev_hash) = head.unwrap_or((0, GENESIS.to_owned()));
        let mut record = Record {
            topic: message.topic.clone(),
            partition: message.partition,
            seq: last + 1,
            source_offset: message.offset,
            message_id: headers.message_id,
            message_type: headers.message_type.clone(),
            aggregate_key: message.key.clone(),
            actor: headers.actor.clone(),
            correlation_id: headers.correlation_id.clone(),
            causation_id: headers.causation_id.clone(),
            occurred_at: truncate_to_micros(headers.occurred_at),
            payload: canonical_json(&payload),
            prev_hash,
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        sqlx::query(
            "INSERT INTO records (topic, partition, seq, source_offset, message_id, message_type, aggregate_key, actor,
                                  correlation_id, causation_id, occurred_at, payload, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&record.topic)
        .bind(record.partition)
        .bind(record.seq)
        .bind(record.source_offset)
        .bind(record.message_id)
        .bind(&record.message_type)
        .bind(&record.aggregate_key)
        .bind(&record.actor)
        .bind(&record.correlation_id)
        .bind(&record.causation_id)
        .bind(record.occurred_at)
        .bind(&record.payload)
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO heads (topic, partition, seq, hash) VALUES ($1, $2, $3, $4)
             ON CONFLICT (topic, partition) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
        )
        .bind(&record.topic)
        .bind(record.partition)
        .bind(record.seq)
        .bind(&record.hash)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if record.seq % self.checkpoint_every == 0 {
            sqlx::query("INSERT INTO checkpoints (topic, partition, seq, hash) VALUES ($1, $2, $3, $4)")
                .bind(&record.topic)
                .bind(record.partition)
                .bind(record.seq)
                .bind(&record.hash)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        Ok(Applied::nothing())
    }
}
