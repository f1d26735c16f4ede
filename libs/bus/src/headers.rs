use chrono::{DateTime, SecondsFormat, Utc};
use orderflow_telemetry::trace::{child_traceparent, new_traceparent};
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
        self.cause().caused(message_type)
    }

    /// What a message caused by this one takes from it.
    pub fn cause(&self) -> Cause {
        Cause {
            message_id: self.message_id,
            correlation_id: self.correlation_id.clone(),
            traceparent: self.traceparent.clone(),
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

/// What a command came to, on the headers of every event it caused
/// directly (stamped by the service kit): whoever keeps command statuses
/// settles any command of any domain from these alone, without knowing
/// which event answers which command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The command's `message_type` (the event's `causation_id` is its id).
    pub command_type: String,
    /// The command's key: the entity it was about. On the wire only when
    /// it is not the event's own key (it almost always is).
    pub command_key: String,
    pub settled: Settled,
}

/// How a command ended, as its events' headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// With the aggregate version it produced, if its events carry one.
    Succeeded { version: Option<i64> },
    /// With the reason (`SNAKE_CASE`, one of the contract's) and a message
    /// for the client.
    Rejected { reason: String, message: String },
}

/// The names of the outcome headers.
pub mod outcome {
    pub const OUTCOME: &str = "outcome";
    pub const COMMAND_TYPE: &str = "command_type";
    pub const COMMAND_KEY: &str = "command_key";
    pub const VERSION: &str = "aggregate_version";
    pub const REASON: &str = "reason";
    pub const MESSAGE: &str = "reason_message";
    pub const SUCCEEDED: &str = "succeeded";
    pub const REJECTED: &str = "rejected";
}

impl CommandOutcome {
    /// Appends the outcome headers of an event keyed `event_key` to
    /// `pairs`: as few as say it (every header is stored with every
    /// record).
    pub fn append_to(&self, pairs: &mut Vec<(String, Vec<u8>)>, event_key: &str) {
        let mut put = |name: &str, value: &str| pairs.push((name.to_owned(), value.as_bytes().to_vec()));
        put(outcome::COMMAND_TYPE, &self.command_type);
        if self.command_key != event_key {
            put(outcome::COMMAND_KEY, &self.command_key);
        }
        match &self.settled {
            Settled::Succeeded { version } => {
                put(outcome::OUTCOME, outcome::SUCCEEDED);
                if let Some(version) = version {
                    put(outcome::VERSION, &version.to_string());
                }
            }
            Settled::Rejected { reason, message } => {
                put(outcome::OUTCOME, outcome::REJECTED);
                put(outcome::REASON, reason);
                put(outcome::MESSAGE, message);
            }
        }
    }

    /// The outcome the headers of a message keyed `key` carry: `None` for
    /// a message no command caused directly (a saga step, a scheduled one).
    pub fn from_pairs(pairs: &[(String, Vec<u8>)], key: Option<&str>) -> Result<Option<Self>, HeaderError> {
        let Some(outcome) = header_value(pairs, outcome::OUTCOME) else { return Ok(None) };
        let get = |name: &'static str| header_value(pairs, name).map(str::to_owned).ok_or(HeaderError::Missing(name));
        let settled = match outcome {
            outcome::SUCCEEDED => Settled::Succeeded {
                version: header_value(pairs, outcome::VERSION)
                    .map(|v| {
                        v.parse().map_err(|_| HeaderError::Invalid {
                            name: outcome::VERSION,
                            problem: format!("`{v}` is not a version"),
                        })
                    })
                    .transpose()?,
            },
            outcome::REJECTED => Settled::Rejected { reason: get(outcome::REASON)?, message: get(outcome::MESSAGE)? },
            other => {
                return Err(HeaderError::Invalid {
                    name: outcome::OUTCOME,
                    problem: format!("unknown outcome `{other}`"),
                });
            }
        };
        let command_key = match header_value(pairs, outcome::COMMAND_KEY).or(key) {
            Some(key) => key.to_owned(),
            None => return Err(HeaderError::Missing(outcome::COMMAND_KEY)),
        };
        Ok(Some(Self { command_type: get(outcome::COMMAND_TYPE)?, command_key, settled }))
    }
}

/// What an event needs of the message it counts as caused by (for its
/// correlation id, causation id, trace and actor), when that message is
/// not at hand: a scheduled step remembers these of the command that
/// started its entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub message_id: Uuid,
    pub correlation_id: String,
    pub traceparent: String,
    pub actor: String,
}

impl Cause {
    /// Headers of a message caused by this one.
    pub fn caused(&self, message_type: &str) -> Headers {
        Headers {
            message_id: Uuid::now_v7(),
            message_type: message_type.to_owned(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.message_id.to_string(),
            occurred_at: Utc::now(),
            traceparent: child_traceparent(&self.traceparent),
            actor: self.actor.clone(),
        }
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

    #[test]
    fn an_outcome_round_trips_and_a_message_without_one_has_none() {
        let mut pairs = Headers::new_root("UserRegistered", "system").to_pairs();
        assert_eq!(CommandOutcome::from_pairs(&pairs, Some("o-1")), Ok(None));
        for settled in [
            Settled::Succeeded { version: Some(3) },
            Settled::Succeeded { version: None },
            Settled::Rejected { reason: "ILLEGAL_TRANSITION".into(), message: "order is SHIPPED".into() },
        ] {
            let outcome = CommandOutcome { command_type: "ShipOrder".into(), command_key: "o-1".into(), settled };
            let mut with = pairs.clone();
            outcome.append_to(&mut with, "o-1");
            assert!(header_value(&with, outcome::COMMAND_KEY).is_none(), "the event's own key is not repeated");
            assert_eq!(CommandOutcome::from_pairs(&with, Some("o-1")), Ok(Some(outcome.clone())));
            let mut other = pairs.clone();
            outcome.append_to(&mut other, "p-1");
            assert_eq!(CommandOutcome::from_pairs(&other, Some("p-1")), Ok(Some(outcome)), "another key is named");
        }
        pairs.push((outcome::OUTCOME.into(), b"maybe".to_vec()));
        let invalid = CommandOutcome::from_pairs(&pairs, Some("o-1"));
        assert!(matches!(invalid, Err(HeaderError::Invalid { name: "outcome", .. })));
    }
}
