//! What recording one message does, inside the projection's batch
//! transaction (`search_path` = the generation's schema).
//!
//! Exactly once by `message_id`: a republished duplicate (a relay retry,
//! possibly after newer messages) finds its id recorded and changes nothing.
//! The offset advances in the same transaction (libs/projection), so a
//! crash never records a message twice or skips one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use orderflow_audit::chain::truncate_to_micros;
use orderflow_audit::{GENESIS, Record, canonical_json};
use orderflow_bus::{HandlerError, Headers, InboundMessage};
use orderflow_config::KafkaSettings;
use orderflow_contracts::{Codec, Decoded};
use orderflow_outbox::classify;
use orderflow_projection::{Applied, Definition, Item, Projection, Routes};
use sqlx::PgConnection;
use uuid::Uuid;

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
        let span = tracing::Span::current();
        self.apply_run(tx, vec![Item { input: event, source: message, span }]).await
    }

    /// A run's records in four statements, however many it holds: the ids
    /// already recorded, the heads of its chains (locked), then the records,
    /// the new heads and any checkpoints, each in one insert.
    async fn apply_run(&self, tx: &mut PgConnection, run: Vec<Item<'_, Event>>) -> Result<Applied, HandlerError> {
        let total = run.len();
        let ids: Vec<Uuid> = run.iter().map(|item| item.input.headers.message_id).collect();
        // Planned each time, not prepared: a generic plan made while the
        // records were few (every rebuild starts with none) scans them all,
        // and keeps doing so as they grow until autovacuum's next analyze
        // (15 ms a run after a minute of load, measured).
        let seen: Vec<Uuid> = sqlx::query_scalar("SELECT message_id FROM records WHERE message_id = ANY($1)")
            .bind(&ids)
            .persistent(false)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        let mut seen: HashSet<Uuid> = seen.into_iter().collect();
        let chains: BTreeSet<(&str, i32)> =
            run.iter().map(|item| (item.source.topic.as_str(), item.source.partition)).collect();
        let (topics, partitions): (Vec<&str>, Vec<i32>) = chains.iter().copied().unzip();
        let heads: Vec<(String, i32, i64, String)> = sqlx::query_as(
            "SELECT topic, partition, seq, hash FROM heads
             WHERE (topic, partition) IN (SELECT * FROM UNNEST($1::text[], $2::int[]))
             ORDER BY topic, partition FOR UPDATE",
        )
        .bind(&topics)
        .bind(&partitions)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let mut heads: HashMap<(String, i32), (i64, String)> =
            heads.into_iter().map(|(topic, partition, seq, hash)| ((topic, partition), (seq, hash))).collect();
        let mut records = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(total);
        for (position, Item { input: Event { decoded, headers }, source: message, span }) in run.into_iter().enumerate()
        {
            // A republished duplicate, recorded before or earlier in this run.
            if !seen.insert(headers.message_id) {
                continue;
            }
            let _entered = span.enter();
            let payload = redacted_json(&decoded.schema, &decoded.value, &self.marks).map_err(|e| {
                HandlerError::Permanent(format!("{}: {e}", decoded.full_name).into()).at(position, total)
            })?;
            let chain = (message.topic.clone(), message.partition);
            let (last, prev_hash) = heads.get(&chain).cloned().unwrap_or((0, GENESIS.to_owned()));
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
            heads.insert(chain, (record.seq, record.hash.clone()));
            drop(_entered);
            records.push(record);
            // Each message's span lasts until its record is written.
            spans.push(span);
        }
        if records.is_empty() {
            return Ok(Applied::nothing());
        }
        insert_records(tx, &records).await?;
        // The heads this run moved, and the checkpoints it passed.
        let mut moved: BTreeMap<(&str, i32), &Record> = BTreeMap::new();
        for record in &records {
            moved.insert((record.topic.as_str(), record.partition), record);
        }
        let moved: Vec<&Record> = moved.into_values().collect();
        let checkpoints: Vec<&Record> = records.iter().filter(|r| r.seq % self.checkpoint_every == 0).collect();
        insert_marks(
            tx,
            "heads",
            &moved,
            " ON CONFLICT (topic, partition) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
        )
        .await?;
        insert_marks(tx, "checkpoints", &checkpoints, "").await?;
        drop(spans);
        Ok(Applied::nothing())
    }
}

/// Writes where `rows` leave their chains (seq and hash) into `table`
/// (`heads` or `checkpoints`), in one statement; nothing when there are none.
async fn insert_marks(
    tx: &mut PgConnection,
    table: &str,
    rows: &[&Record],
    on_conflict: &str,
) -> Result<(), HandlerError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (topic, partition, seq, hash)
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::text[]){on_conflict}"
    )))
    .bind(rows.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.partition).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.hash.as_str()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .map_err(classify)?;
    Ok(())
}

/// Writes `records` in one statement.
async fn insert_records(tx: &mut PgConnection, records: &[Record]) -> Result<(), HandlerError> {
    fn column<'r, T>(records: &'r [Record], field: impl Fn(&'r Record) -> T) -> Vec<T> {
        records.iter().map(field).collect()
    }
    sqlx::query(
        "INSERT INTO records (topic, partition, seq, source_offset, message_id, message_type, aggregate_key, actor,
                              correlation_id, causation_id, occurred_at, payload, prev_hash, hash)
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::uuid[], $6::text[], $7::text[],
                              $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::text[],
                              $14::text[])",
    )
    .bind(column(records, |r| r.topic.as_str()))
    .bind(column(records, |r| r.partition))
    .bind(column(records, |r| r.seq))
    .bind(column(records, |r| r.source_offset))
    .bind(column(records, |r| r.message_id))
    .bind(column(records, |r| r.message_type.as_str()))
    .bind(column(records, |r| r.aggregate_key.as_deref()))
    .bind(column(records, |r| r.actor.as_str()))
    .bind(column(records, |r| r.correlation_id.as_str()))
    .bind(column(records, |r| r.causation_id.as_str()))
    .bind(column(records, |r| r.occurred_at))
    .bind(column(records, |r| r.payload.as_str()))
    .bind(column(records, |r| r.prev_hash.as_str()))
    .bind(column(records, |r| r.hash.as_str()))
    .execute(&mut *tx)
    .await
    .map_err(classify)?;
    Ok(())
}
