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
//! Every change to an order's view (its own events, its payment's, its
//! stock's) is announced too, as [`order_changed`] keys: the ingress's
//! GraphQL subscriptions push an order's new state on them.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use orderflow_bus::{HandlerError, Headers, InboundMessage};
use orderflow_config::KafkaSettings;
use orderflow_contracts::inventory::InventoryEvent;
use orderflow_contracts::orders::OrderEvent;
use orderflow_contracts::payments::PaymentEvent;
use orderflow_contracts::users::{CredentialsRecord, UserEvent};
use orderflow_contracts::{Codec, inventory, orders, payments, users};
use orderflow_projection::{Applied, Definition, Projection, Routes};
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
pub const TABLES: [&str; 8] =
    ["users", "credentials", "commands", "orders", "payments", "order_details", "products", "order_stock"];
/// The ingress listens here (`orderflow_contracts::announcements`).
pub use orderflow_contracts::announcements::{CHANNEL, order_changed};

/// Every read model, fed by the events of every domain, the users
/// credentials and the command topics (for command statuses).
#[derive(Debug)]
pub struct ReadModels {
    definition: Definition,
    routes: Routes<Input>,
    #[cfg(feature = "failpoints")]
    kafka: KafkaSettings,
}

/// What the read models read, by topic ([`ReadModels::new`]).
#[derive(Debug)]
pub enum Input {
    User(UserEvent, Headers),
    Credentials(CredentialsRecord, Headers),
    Order(OrderEvent, Headers),
    Payment(PaymentEvent, Headers),
    Inventory(InventoryEvent, Headers),
    /// A command seen on its topic: its headers alone (the body, which may
    /// hold a hash, is not needed to know that a command is pending).
    Command(Headers),
    /// A command a consumer dead-lettered. Its headers are read when it is
    /// applied, not before: a dead letter may be one because its headers
    /// are broken, and it has no dead-letter topic of its own.
    DeadLetter,
}

impl ReadModels {
    pub fn new(codec: Arc<Codec>, kafka: KafkaSettings) -> Self {
        let topic = |t: orderflow_contracts::Topic| kafka.topic(t.name);
        let mut routes = Routes::new()
            .family(topic(users::EVENTS), &codec, Input::User)
            .family(topic(users::CREDENTIALS), &codec, Input::Credentials)
            .family(topic(orders::EVENTS), &codec, Input::Order)
            .family(topic(payments::EVENTS), &codec, Input::Payment)
            .family(topic(inventory::EVENTS), &codec, Input::Inventory);
        for commands in [users::COMMANDS, orders::COMMANDS, payments::COMMANDS, inventory::COMMANDS] {
            routes = routes.headers(topic(commands), Input::Command);
        }
        for dead in [users::DEAD_COMMANDS, orders::DEAD_COMMANDS, payments::DEAD_COMMANDS, inventory::DEAD_COMMANDS] {
            routes = routes.as_is(topic(dead), |_| Ok(Input::DeadLetter));
        }
        let definition = Definition {
            name: NAME.into(),
            template: TEMPLATE.into(),
            tables: TABLES.iter().map(|t| (*t).to_owned()).collect(),
            view_schema: VIEW_SCHEMA.into(),
            notify_channel: Some(CHANNEL.into()),
        };
        Self {
            definition,
            routes,
            #[cfg(feature = "failpoints")]
            kafka,
        }
    }

    /// Test only: the same projection with the credentials part stopped (it
    /// does not consume `users.credentials`; the rest goes on), to show what
    /// a client is told while the credentials read model lags behind.
    #[cfg(feature = "failpoints")]
    pub fn without_credentials(mut self) -> Self {
        self.routes = self.routes.without(&self.kafka.topic(users::CREDENTIALS.name));
        self
    }
}

impl Projection for ReadModels {
    type Input = Input;

    fn definition(&self) -> &Definition {
        &self.definition
    }

    fn routes(&self) -> &Routes<Input> {
        &self.routes
    }

    /// Applies `input`; the caller advances the offset in the same transaction.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        input: Input,
        source: &InboundMessage,
    ) -> Result<Applied, HandlerError> {
        let (applied, headers, event) = match input {
            Input::DeadLetter => return commands::failed(tx, source).await,
            Input::Command(headers) => return commands::pending(tx, &headers, source.key.as_deref()).await,
            Input::Credentials(record, headers) => return crate::users::credentials(tx, &headers, &record).await,
            Input::User(event, headers) => {
                (crate::users::apply(tx, &event).await?, headers, Some(legacy::Event::User(event)))
            }
            Input::Order(event, headers) => {
                (crate::orders::apply(tx, &headers, &event).await?, headers, Some(legacy::Event::Order(event)))
            }
            Input::Payment(event, headers) => {
                (crate::payments::apply(tx, &event).await?, headers, Some(legacy::Event::Payment(event)))
            }
            // Written since outcomes were on the bus: nothing legacy about it.
            Input::Inventory(event, headers) => (crate::products::apply(tx, &event).await?, headers, None),
        };
        // An event of any domain: the command whose outcome it carries.
        Ok(applied.and(commands::settled(tx, source, &headers, || event.and_then(|e| e.outcome())).await?))
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
