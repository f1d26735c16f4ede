//! A record and its place in its chain.
//!
//! **One chain per source partition** (`topic`, `partition`). The
//! projection consumes partitions concurrently and interleaves them in any
//! order, and a rebuild by replay interleaves them differently again; only
//! the order *within* a partition is fixed (it is the log). So a chain per
//! partition is reproduced bit for bit by every replay, where a single
//! global chain would depend on timing. `seq` numbers a chain's records
//! 1, 2, 3 ...; record `n` carries `prev_hash` = the hash of record `n-1`
//! (the first one [`GENESIS`]).
//!
//! The hash covers every column but itself and nothing that depends on when
//! or by whom the record was written (no insertion time, no generation), so
//! a replay yields the same hashes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One recorded message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    /// Its position in the chain of `(topic, partition)`, from 1.
    pub seq: i64,
    /// Where it was read: its offset in the source partition.
    pub source_offset: i64,
    pub message_id: Uuid,
    pub message_type: String,
    /// The Kafka key: the aggregate (entity) id.
    pub aggregate_key: Option<String>,
    pub actor: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub occurred_at: DateTime<Utc>,
    /// The decoded payload without its sensitive fields, as canonical JSON
    /// ([`canonical_json`]): stored as the exact text that was hashed.
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Microsecond precision: what Postgres keeps of a timestamp, so a value
/// read back hashes like the one written.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

fn text(out: &mut String, s: &str) {
    // JSON string escaping: no field can forge a separator.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
    out.push('\n');
}

impl Record {
    /// The hash this record must carry, given its `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let mut input = String::with_capacity(256 + self.payload.len());
        text(&mut input, &self.prev_hash);
        text(&mut input, &self.topic);
        input.push_str(&format!("{}\n{}\n{}\n", self.partition, self.seq, self.source_offset));
        text(&mut input, &self.message_id.to_string());
        text(&mut input, &self.message_type);
        match &self.aggregate_key {
            Some(key) => text(&mut input, key),
            None => input.push_str("null\n"),
        }
        text(&mut input, &self.actor);
        text(&mut input, &self.correlation_id);
        text(&mut input, &self.causation_id);
        input.push_str(&format!("{}\n", self.occurred_at.timestamp_micros()));
        input.push_str(&self.payload);
        hex::encode(Sha256::digest(input.as_bytes()))
    }

    /// The payload as JSON (it was stored canonical, so it parses).
    pub fn payload_json(&self) -> Value {
        serde_json::from_str(&self.payload).unwrap_or(Value::Null)
    }
}

/// JSON with object keys sorted and no whitespace, whatever the features of
/// `serde_json` in this build (`preserve_order` would keep insertion order):
/// the same value always gives the same text, so it can be hashed.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push(':');
                write_canonical(out, &map[key.as_str()]);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).unwrap_or_default()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(seq: i64, prev: &str) -> Record {
        let mut r = Record {
            topic: "users.events".into(),
            partition: 0,
            seq,
            source_offset: seq + 10,
            message_id: Uuid::from_u128(seq as u128),
            message_type: "UserRegistered".into(),
            aggregate_key: Some("u1".into()),
            actor: "anonymous".into(),
            correlation_id: "c".into(),
            causation_id: "c".into(),
            occurred_at: truncate_to_micros(Utc::now()),
            payload: canonical_json(&serde_json::json!({"user_id": "u1", "version": seq})),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": 1, "a": [{"z": null, "y": "x\n"}], "c": {"e": true, "d": 1.5}});
        assert_eq!(canonical_json(&value), r#"{"a":[{"y":"x\n","z":null}],"b":1,"c":{"d":1.5,"e":true}}"#);
    }

    #[test]
    fn every_column_is_covered_by_the_hash() {
        let base = record(3, GENESIS);
        let changes: [fn(&mut Record); 13] = [
            |r| r.prev_hash = "1".repeat(64),
            |r| r.topic = "orders.events".into(),
            |r| r.partition = 1,
            |r| r.seq = 4,
            |r| r.source_offset = 99,
            |r| r.message_id = Uuid::from_u128(77),
            |r| r.message_type = "UserDeactivated".into(),
            |r| r.aggregate_key = None,
            |r| r.actor = "system".into(),
            |r| r.correlation_id = "d".into(),
            |r| r.causation_id = "d".into(),
            |r| r.occurred_at += chrono::Duration::microseconds(1),
            |r| r.payload = "{}".into(),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut altered = base.clone();
            change(&mut altered);
            assert_ne!(altered.compute_hash(), base.hash, "change {i} went unnoticed");
        }
        assert_eq!(base.compute_hash(), base.hash, "deterministic");
    }
}
