use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{BorrowedHeaders, Header, Headers as _, OwnedHeaders};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The headers every orderflow message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers {
    /// Unique per message (uuid v7); the inbox key that makes redelivery harmless.
    pub message_id: Uuid,
    /// `RegisterUser`, `UserRegistered`, ...
    pub message_type: String,
    /// The id of the client request that started the chain.
    pub correlation_id: String,
    /// The message that caused this one (the command for an event).
    pub causation_id: String,
    pub occurred_at: DateTime<Utc>,
    /// W3C trace context.
    pub traceparent: String,
    /// The user id acting, or `system`.
    pub actor: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("header `{0}` is missing")]
    Missing(&'static str),
    #[error("header `{name}` is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
}

impl Headers {
    /// Headers of a message that starts a chain (a command from a client).
    pub fn new_root(message_type: &str, actor: &str) -> Self {
        let id = Uuid::now_v7();
        Self {
            message_id: id,
            message_type: message_type.to_owned(),
            correlation_id: id.to_string(),
            causation_id: id.to_string(),
            occurred_at: Utc::now(),
            traceparent: new_traceparent(),
            actor: actor.to_owned(),
        }
    }

    /// Headers of a message caused by `self` (an event caused by a command):
    /// same correlation, trace and actor.
    pub fn caused(&self, message_type: &str) -> Self {
        Self {
            message_id: Uuid::now_v7(),
            message_type: message_type.to_owned(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.message_id.to_string(),
            occurred_at: Utc::now(),
            traceparent: child_traceparent(&self.traceparent),
            actor: self.actor.clone(),
        }
    }

    pub fn to_pairs(&self) -> Vec<(String, Vec<u8>)> {
        vec![
            ("message_id".into(), self.message_id.to_string().into_bytes()),
            ("message_type".into(), self.message_type.clone().into_bytes()),
            ("correlation_id".into(), self.correlation_id.clone().into_bytes()),
            ("causation_id".into(), self.causation_id.clone().into_bytes()),
            ("occurred_at".into(), self.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true).into_bytes()),
            ("traceparent".into(), self.traceparent.clone().into_bytes()),
            ("actor".into(), self.actor.clone().into_bytes()),
        ]
    }

    /// Reads the contract headers out of raw header pairs.
    pub fn from_pairs(pairs: &[(String, Vec<u8>)]) -> Result<Self, HeaderError> {
        let get = |name: &'static str| -> Result<String, HeaderError> {
            let raw = pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v).ok_or(HeaderError::Missing(name))?;
            String::from_utf8(raw.clone()).map_err(|_| HeaderError::Invalid { name, problem: "not UTF-8".into() })
        };
        let message_id = get("message_id")?;
        let occurred_at = get("occurred_at")?;
        Ok(Self {
            message_id: Uuid::parse_str(&message_id)
                .map_err(|e| HeaderError::Invalid { name: "message_id", problem: e.to_string() })?,
            message_type: get("message_type")?,
            correlation_id: get("correlation_id")?,
            causation_id: get("causation_id")?,
            occurred_at: DateTime::parse_from_rfc3339(&occurred_at)
                .map_err(|e| HeaderError::Invalid { name: "occurred_at", problem: e.to_string() })?
                .with_timezone(&Utc),
            traceparent: get("traceparent")?,
            actor: get("actor")?,
        })
    }

    /// The W3C trace id (32 hex digits) of `traceparent`.
    pub fn trace_id(&self) -> &str {
        self.traceparent.split('-').nth(1).unwrap_or("")
    }
}

/// Header pairs of a Kafka message, in order.
pub fn pairs_of(headers: Option<&BorrowedHeaders>) -> Vec<(String, Vec<u8>)> {
    headers
        .map(|h| {
            h.iter()
                .map(|Header { key, value }| (key.to_owned(), value.map(<[u8]>::to_vec).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn to_owned_headers(pairs: &[(String, Vec<u8>)]) -> OwnedHeaders {
    pairs.iter().fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (key, value)| {
        h.insert(Header { key, value: Some(value) })
    })
}

/// Whose fault a dead letter is: the `dlq_cause` header. Whoever settles a
/// dead-lettered command (the projector) tells its client from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterCause {
    /// The message itself is bad (undecodable, broken headers, data the
    /// database refuses): the sender must change it.
    Invalid,
    /// Handling it failed for a reason of ours: kept for an operator.
    Failed,
}

impl DeadLetterCause {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterCause::Invalid => "invalid",
            DeadLetterCause::Failed => "failed",
        }
    }

    /// The cause a `dlq_cause` header names; a dead letter without one (or
    /// with an unknown one) counts as failed.
    pub fn parse(raw: &str) -> Self {
        if raw == "invalid" { DeadLetterCause::Invalid } else { DeadLetterCause::Failed }
    }
}

/// The names of the headers a dead letter adds to the original ones.
pub mod dlq {
    pub const ORIGINAL_TOPIC: &str = "dlq_original_topic";
    pub const ORIGINAL_PARTITION: &str = "dlq_original_partition";
    pub const ORIGINAL_OFFSET: &str = "dlq_original_offset";
    pub const CONSUMER_GROUP: &str = "dlq_consumer_group";
    pub const ERROR: &str = "dlq_error";
    pub const CAUSE: &str = "dlq_cause";
    pub const FAILED_AT: &str = "dlq_failed_at";
}

/// The value of header `name` among `pairs` (the last one, as Kafka
/// clients read headers), as text.
pub fn header_value<'a>(pairs: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(key, _)| key == name).and_then(|(_, value)| std::str::from_utf8(value).ok())
}

/// The headers of a dead letter: every original header, then where the
/// message came from, which consumer gave up, why, and whose fault it is.
pub fn dead_letter_headers(
    original: &[(String, Vec<u8>)],
    topic: &str,
    partition: i32,
    offset: i64,
    group: &str,
    error: &crate::HandlerError,
) -> Vec<(String, Vec<u8>)> {
    let mut pairs = original.to_vec();
    pairs.push((dlq::ORIGINAL_TOPIC.into(), topic.as_bytes().to_vec()));
    pairs.push((dlq::ORIGINAL_PARTITION.into(), partition.to_string().into_bytes()));
    pairs.push((dlq::ORIGINAL_OFFSET.into(), offset.to_string().into_bytes()));
    pairs.push((dlq::CONSUMER_GROUP.into(), group.as_bytes().to_vec()));
    pairs.push((dlq::ERROR.into(), error.reason().as_bytes().to_vec()));
    pairs.push((dlq::CAUSE.into(), error.dead_letter_cause().as_str().as_bytes().to_vec()));
    pairs.push((dlq::FAILED_AT.into(), Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true).into_bytes()));
    pairs
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

/// The same trace with a new span id; a malformed parent starts a new trace.
/// Public so the ingress can put a command into its caller's trace.
pub fn child_traceparent(parent: &str) -> String {
    let parts: Vec<&str> = parent.split('-').collect();
    if parts.len() == 4 && parts[1].len() == 32 {
        format!("00-{}-{}-{}", parts[1], random_hex(8), parts[3])
    } else {
        new_traceparent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_missing_headers() {
        let root = Headers::new_root("RegisterUser", "anonymous");
        let event = root.caused("UserRegistered");
        assert_eq!(event.correlation_id, root.correlation_id);
        assert_eq!(event.causation_id, root.message_id.to_string());
        assert_eq!(event.trace_id(), root.trace_id());
        assert_ne!(event.traceparent, root.traceparent);
        let pairs = event.to_pairs();
        let names: Vec<_> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["message_id", "message_type", "correlation_id", "causation_id", "occurred_at", "traceparent", "actor"]
        );
        let back = Headers::from_pairs(&pairs).expect("parse");
        assert_eq!(back.message_id, event.message_id);
        assert_eq!(Headers::from_pairs(&pairs[1..]), Err(HeaderError::Missing("message_id")));
    }
}
