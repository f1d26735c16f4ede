//! Questions the ingress asks: a filtered search, newest first, and the
//! story of one request.
//!
//! **Pagination** is keyset on `(occurred_at, message_id)`, a total order
//! that a rebuild reproduces (no serial ids): a page starts strictly after
//! the cursor, so a record is returned once however many are added while a
//! client pages — a record added meanwhile shows up in a later page if it
//! sorts after the cursor, never twice and never displacing another.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Record;
use crate::order::causal_order;

/// Columns of [`Record`], in `audit.records`.
pub const COLUMNS: &str = "topic, partition, seq, source_offset, message_id, message_type, aggregate_key, actor, \
     correlation_id, causation_id, occurred_at, payload, prev_hash, hash";

/// What to search for; every part optional, all parts must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<String>,
    /// The aggregate id (Kafka key).
    pub entity: Option<String>,
    pub message_type: Option<String>,
    pub correlation_id: Option<String>,
    /// Occurred at or after.
    pub from: Option<DateTime<Utc>>,
    /// Occurred before.
    pub to: Option<DateTime<Utc>>,
}

/// Where the next page starts: after this record (in newest-first order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub occurred_at: DateTime<Utc>,
    pub message_id: Uuid,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a cursor this API gave out")]
pub struct BadCursor;

impl Cursor {
    pub fn after(record: &Record) -> Self {
        Self { occurred_at: record.occurred_at, message_id: record.message_id }
    }

    /// An opaque token: `<microseconds>_<message id>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.occurred_at.timestamp_micros(), self.message_id.simple())
    }

    pub fn decode(raw: &str) -> Result<Self, BadCursor> {
        let (micros, id) = raw.split_once('_').ok_or(BadCursor)?;
        let micros: i64 = micros.parse().map_err(|_| BadCursor)?;
        Ok(Self {
            occurred_at: DateTime::from_timestamp_micros(micros).ok_or(BadCursor)?,
            message_id: Uuid::parse_str(id).map_err(|_| BadCursor)?,
        })
    }
}

/// One page, newest first, and the cursor of the next one (`None`: this
/// was the last).
#[derive(Debug)]
pub struct Page {
    pub records: Vec<Record>,
    pub next: Option<Cursor>,
}

pub async fn search(pool: &PgPool, filter: &Filter, after: Option<Cursor>, limit: i64) -> Result<Page, sqlx::Error> {
    let mut records: Vec<Record> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit.records
         WHERE ($1::text IS NULL OR actor = $1)
           AND ($2::text IS NULL OR aggregate_key = $2)
           AND ($3::text IS NULL OR message_type = $3)
           AND ($4::text IS NULL OR correlation_id = $4)
           AND ($5::timestamptz IS NULL OR occurred_at >= $5)
           AND ($6::timestamptz IS NULL OR occurred_at < $6)
           AND ($7::timestamptz IS NULL OR (occurred_at, message_id) < ($7, $8::uuid))
         ORDER BY occurred_at DESC, message_id DESC
         LIMIT $9"
    )))
    .bind(&filter.actor)
    .bind(&filter.entity)
    .bind(&filter.message_type)
    .bind(&filter.correlation_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(after.map(|c| c.occurred_at))
    .bind(after.map(|c| c.message_id))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = records.len() as i64 > limit;
    records.truncate(limit as usize);
    let next = if more { records.last().map(Cursor::after) } else { None };
    Ok(Page { records, next })
}

/// The story of each of `entities` (aggregate ids, e.g. orders): every
/// record of every request that touched it, in causal order per request and
/// requests by time. One query for all of them, so a list of orders costs
/// what one does (the GraphQL `auditTrail` field's loader).
pub async fn trails(
    pool: &PgPool,
    entities: &[String],
) -> Result<std::collections::HashMap<String, Vec<(usize, Record)>>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Touched {
        entity: String,
        #[sqlx(flatten)]
        record: Record,
    }
    let rows: Vec<Touched> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH touched AS (
             SELECT DISTINCT aggregate_key AS entity, correlation_id FROM audit.records WHERE aggregate_key = ANY($1))
         SELECT t.entity, {} FROM touched t JOIN audit.records r ON r.correlation_id = t.correlation_id",
        COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
    )))
    .bind(entities)
    .fetch_all(pool)
    .await?;
    let mut by_entity: std::collections::HashMap<String, Vec<Record>> = std::collections::HashMap::new();
    for row in rows {
        by_entity.entry(row.entity).or_default().push(row.record);
    }
    Ok(by_entity
        .into_iter()
        .map(|(entity, records)| {
            let story = causal_order(
                records,
                |r| r.message_id.to_string(),
                |r| r.causation_id.clone(),
                |r| (r.occurred_at, r.message_id),
            );
            (entity, story)
        })
        .collect())
}

/// Every record of one request (correlation id) in causal order, with its
/// depth in the causation tree.
pub async fn correlation(pool: &PgPool, correlation_id: &str) -> Result<Vec<(usize, Record)>, sqlx::Error> {
    let records: Vec<Record> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM audit.records WHERE correlation_id = $1")))
            .bind(correlation_id)
            .fetch_all(pool)
            .await?;
    Ok(causal_order(
        records,
        |r| r.message_id.to_string(),
        |r| r.causation_id.clone(),
        |r| (r.occurred_at, r.message_id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = Cursor {
            occurred_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time"),
            message_id: Uuid::from_u128(42),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in ["", "x", "1_", "_abc", "12_not-a-uuid", "9999999999999999999_00000000000000000000000000000001"] {
            assert_eq!(Cursor::decode(bad), Err(BadCursor), "{bad}");
        }
    }
}
