//! The read models: which topics feed them, and which part applies what.
//! Runs inside the projection's batch transaction with `search_path` set to
//! the generation's schema, so table names are unqualified.
//!
//! Every change is idempotent and order-safe: rows carry the version of the
//! last event applied and ignore anything not newer, command statuses are
//! upserts. A republished event (outbox relay crash) changes nothing.
//!
//! What a message settles is announced on [`CHANNEL`] when the batch
//! commits (the library sends one notification per transaction): the id of
//! the command whose outcome an event records, the command that caused a
//! credentials record (a 201 after a register promises a working login),
//! the command a consumer dead-lettered (settled as failed, from its dead
//! letter's headers),
//! and the command that placed an order when it leaves PENDING (a 201 after
//! `POST /orders` is the confirmed or cancelled order).

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use orderflow_bus::{HandlerError, InboundMessage};
use orderflow_config::KafkaSettings;
use orderflow_contracts::{Codec, orders, payments, users};
use orderflow_projection::{Applied, Definition, Projection};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{commands, legacy};

/// The projection's name: its generation schemas are `readmodels_gen_<n>`.
pub const NAME: &str = "readmodels";
/// Where the ingress reads: `rm.users`, `rm.orders`, ...
pub const VIEW_SCHEMA: &str = "rm";
/// The tables of one generation (not a migration: a template run per generation).
pub const TEMPLATE: &str = include_str!("../../../migrations/readmodels/generation.sql");
/// The tables (and views) readers see.
pub const TABLES: [&str; 6] = ["users", "credentials", "commands", "orders", "payments", "order_details"];
/// The ingress listens here; payloads are command ids (comma-separated), or
/// `*` after a generation switch.
pub const CHANNEL: &str = "command_status";

/// Every read model, fed by the events of every domain, the users
/// credentials and the command topics (for command statuses).
#[derive(Debug)]
pub struct ReadModels {
    codec: Arc<Codec>,
    kafka: KafkaSettings,
    definition: Definition,
}

impl ReadModels {
    pub fn new(codec: Arc<Codec>, kafka: KafkaSettings) -> Self {
        let topics = [
            users::EVENTS,
            users::CREDENTIALS,
            users::COMMANDS,
            orders::EVENTS,
            orders::COMMANDS,
            payments::EVENTS,
            payments::COMMANDS,
            users::DEAD_COMMANDS,
            orders::DEAD_COMMANDS,
            payments::DEAD_COMMANDS,
        ];
        let definition = Definition {
            name: NAME.into(),
            topics: topics.iter().map(|t| kafka.topic(t.name)).collect(),
            template: TEMPLATE.into(),
            tables: TABLES.iter().map(|t| (*t).to_owned()).collect(),
            view_schema: VIEW_SCHEMA.into(),
            notify_channel: Some(CHANNEL.into()),
        };
        Self { codec, kafka, definition }
    }

    /// Test only: the same projection with the credentials part stopped (it
    /// does not consume `users.credentials`; the rest goes on), to show what
    /// a client is told while the credentials read model lags behind.
    #[cfg(feature = "failpoints")]
    pub fn without_credentials(mut self) -> Self {
        let credentials = self.kafka.topic(users::CREDENTIALS.name);
        self.definition.topics.retain(|t| *t != credentials);
        self
    }

    fn is(&self, message: &InboundMessage, topic: orderflow_contracts::Topic) -> bool {
        message.topic == self.kafka.topic(topic.name)
    }
}

impl Projection for ReadModels {
    fn definition(&self) -> &Definition {
        &self.definition
    }

    /// Applies `message`; the caller advances the offset in the same transaction.
    async fn apply(&self, tx: &mut PgConnection, message: &InboundMessage) -> Result<Applied, HandlerError> {
        if [users::DEAD_COMMANDS, orders::DEAD_COMMANDS, payments::DEAD_COMMANDS]
            .into_iter()
            .any(|t| self.is(message, t))
        {
            // Before the headers are checked: a dead letter may be one
            // because its headers are broken, and has no DLQ of its own.
            return commands::failed(tx, message).await;
        }
        let headers = message.headers()?;
        let payload = message.payload.as_deref();
        let (applied, event) = if self.is(message, users::EVENTS) {
            let event = self.codec.decode(payload).await?;
            (crate::users::apply(tx, &event).await?, legacy::Event::User(event))
        } else if self.is(message, users::CREDENTIALS) {
            return crate::users::credentials(tx, &headers, &self.codec.decode(payload).await?).await;
        } else if self.is(message, orders::EVENTS) {
            let event = self.codec.decode(payload).await?;
            (crate::orders::apply(tx, &headers, &event).await?, legacy::Event::Order(event))
        } else if self.is(message, payments::EVENTS) {
            let event = self.codec.decode(payload).await?;
            (crate::payments::apply(tx, &event).await?, legacy::Event::Payment(event))
        } else if [users::COMMANDS, orders::COMMANDS, payments::COMMANDS].into_iter().any(|t| self.is(message, t)) {
            // Only the headers: the command body (which may hold a hash) is
            // not needed to know that a command is pending.
            return commands::pending(tx, &headers, message.key.as_deref()).await;
        } else {
            return Err(HandlerError::Permanent(format!("the projector does not read {}", message.topic).into()));
        };
        // An event of any domain: the command whose outcome it carries.
        Ok(applied.and(commands::settled(tx, message, &headers, || event.outcome()).await?))
    }
}

pub(crate) fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_else(Utc::now)
}

pub(crate) fn uuid(raw: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(raw).map_err(|_| HandlerError::Permanent(format!("`{raw}` is not a uuid").into()))
}

/// A database failure, classified (transient or permanent).
pub(crate) fn db(error: sqlx::Error) -> HandlerError {
    orderflow_outbox::classify(error)
}
