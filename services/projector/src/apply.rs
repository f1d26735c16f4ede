//! The users read models: what applying one message changes. Runs inside
//! the projection's batch transaction with `search_path` set to the
//! generation's schema, so table names here are unqualified.
//!
//! Every change is idempotent and order-safe: users rows carry the version
//! of the last event applied and ignore anything not newer, command statuses
//! are upserts. A republished event (outbox relay crash) changes nothing.
//!
//! What a message settles is announced on [`CHANNEL`] when the batch
//! commits (the library sends one notification per transaction): the id of
//! the command whose outcome an event records, and the command that caused
//! a credentials record (a 201 after a register promises a working login).

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use orderflow_bus::{HandlerError, Headers, InboundMessage};
use orderflow_config::KafkaSettings;
use orderflow_contracts::Codec;
use orderflow_contracts::users::{self, CredentialsRecord, UserEvent};
use orderflow_projection::{Applied, Definition, Projection};
use sqlx::PgConnection;
use uuid::Uuid;

/// The projection's name: its generation schemas are `users_gen_<n>`.
pub const NAME: &str = "users";
/// Where the ingress reads: `rm.users`, `rm.credentials`, `rm.commands`.
pub const VIEW_SCHEMA: &str = "rm";
/// The tables of one generation (not a migration: a template run per generation).
pub const TEMPLATE: &str = include_str!("../../../migrations/readmodels/generation.sql");
/// The tables readers see.
pub const TABLES: [&str; 3] = ["users", "credentials", "commands"];
/// The ingress listens here; payloads are command ids (comma-separated), or
/// `*` after a generation switch.
pub const CHANNEL: &str = "command_status";

/// The users read models, fed by `users.events`, `users.credentials` and
/// `users.commands`.
#[derive(Debug)]
pub struct UsersProjection {
    codec: Arc<Codec>,
    kafka: KafkaSettings,
    definition: Definition,
}

impl UsersProjection {
    pub fn new(codec: Arc<Codec>, kafka: KafkaSettings) -> Self {
        let definition = Definition {
            name: NAME.into(),
            topics: [users::EVENTS, users::CREDENTIALS, users::COMMANDS].iter().map(|t| kafka.topic(t.name)).collect(),
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
}

impl Projection for UsersProjection {
    fn definition(&self) -> &Definition {
        &self.definition
    }

    async fn apply(&self, tx: &mut PgConnection, message: &InboundMessage) -> Result<Applied, HandlerError> {
        apply(tx, &self.codec, &self.kafka, message).await
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_else(Utc::now)
}

fn uuid(raw: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(raw).map_err(|_| HandlerError::Permanent(format!("`{raw}` is not a uuid")))
}

/// Applies `message`; the caller advances the offset in the same transaction.
async fn apply(
    tx: &mut PgConnection,
    codec: &Codec,
    kafka: &KafkaSettings,
    message: &InboundMessage,
) -> Result<Applied, HandlerError> {
    let headers = message.headers().map_err(|e| HandlerError::Permanent(e.to_string()))?;
    if message.topic == kafka.topic(orderflow_contracts::users::EVENTS.name) {
        let event: UserEvent = codec.decode(message.payload.as_deref()).await.map_err(HandlerError::from)?;
        apply_event(tx, &headers, &event).await
    } else if message.topic == kafka.topic(orderflow_contracts::users::CREDENTIALS.name) {
        let CredentialsRecord::Credentials(c) =
            codec.decode(message.payload.as_deref()).await.map_err(HandlerError::from)?;
        sqlx::query(
            "INSERT INTO credentials (user_id, email, password_hash, roles, active, version) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, password_hash = EXCLUDED.password_hash,
               roles = EXCLUDED.roles, active = EXCLUDED.active, version = EXCLUDED.version
             WHERE credentials.version < EXCLUDED.version",
        )
        .bind(uuid(&c.user_id)?)
        .bind(&c.email)
        .bind(&c.password_hash)
        .bind(&c.roles)
        .bind(c.active)
        .bind(c.version)
        .execute(&mut *tx)
        .await
        .map_err(orderflow_outbox::classify)?;
        // Whoever waits for this command (a 201 promising a working login)
        // re-checks when this commits.
        Ok(match Uuid::parse_str(&headers.causation_id) {
            Ok(command_id) => Applied::notify(command_id.to_string()),
            Err(_) => Applied::nothing(),
        })
    } else if message.topic == kafka.topic(users::COMMANDS.name) {
        // Only the headers: the command body (which may hold a hash) is not
        // needed to know that a command is pending.
        sqlx::query(
            "INSERT INTO commands (command_id, command_type, aggregate_id, actor, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $5)
             ON CONFLICT (command_id) DO UPDATE SET command_type = EXCLUDED.command_type,
               aggregate_id = EXCLUDED.aggregate_id, actor = EXCLUDED.actor, created_at = EXCLUDED.created_at",
        )
        .bind(headers.message_id)
        .bind(&headers.message_type)
        .bind(&message.key)
        .bind(&headers.actor)
        .bind(headers.occurred_at)
        .execute(&mut *tx)
        .await
        .map_err(orderflow_outbox::classify)?;
        Ok(Applied::nothing())
    } else {
        Err(HandlerError::Permanent(format!("the projector does not read {}", message.topic)))
    }
}

async fn apply_event(tx: &mut PgConnection, headers: &Headers, event: &UserEvent) -> Result<Applied, HandlerError> {
    let db = orderflow_outbox::classify;
    match event {
        UserEvent::Registered(e) => {
            sqlx::query(
                "INSERT INTO users (id, email, first_name, last_name, roles, active, version, registered_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, true, $6, $7, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(uuid(&e.user_id)?)
            .bind(&e.email)
            .bind(&e.first_name)
            .bind(&e.last_name)
            .bind(&e.roles)
            .bind(e.version)
            .bind(millis(e.registered_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            settle(tx, headers, ("RegisterUser", &e.user_id), Settled::Succeeded(e.version)).await
        }
        UserEvent::ProfileUpdated(e) => {
            sqlx::query(
                "UPDATE users SET first_name = $2, last_name = $3, version = $4, updated_at = $5 WHERE id = $1 AND version < $4",
            )
            .bind(uuid(&e.user_id)?)
            .bind(&e.first_name)
            .bind(&e.last_name)
            .bind(e.version)
            .bind(millis(e.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            settle(tx, headers, ("UpdateUserProfile", &e.user_id), Settled::Succeeded(e.version)).await
        }
        UserEvent::PasswordChanged(e) => {
            sqlx::query("UPDATE users SET version = $2, updated_at = $3 WHERE id = $1 AND version < $2")
                .bind(uuid(&e.user_id)?)
                .bind(e.version)
                .bind(millis(e.changed_at))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            settle(tx, headers, ("ChangeUserPassword", &e.user_id), Settled::Succeeded(e.version)).await
        }
        UserEvent::Deactivated(e) => {
            sqlx::query(
                "UPDATE users SET active = false, version = $2, updated_at = $3 WHERE id = $1 AND version < $2",
            )
            .bind(uuid(&e.user_id)?)
            .bind(e.version)
            .bind(millis(e.deactivated_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            settle(tx, headers, ("DeactivateUser", &e.user_id), Settled::Succeeded(e.version)).await
        }
        UserEvent::RegistrationRejected(e) => {
            settle(tx, headers, ("RegisterUser", &e.user_id), Settled::Rejected(&e.reason, &e.message)).await
        }
        UserEvent::CommandRejected(e) => {
            settle(tx, headers, (&e.command_type, &e.user_id), Settled::Rejected(&e.reason, &e.message)).await
        }
    }
}

/// How a command ended.
enum Settled<'a> {
    /// With the aggregate version it produced: the credentials record of
    /// the same command carries that version too, so a client can be told
    /// when the login has caught up.
    Succeeded(i64),
    /// With the reason and a message.
    Rejected(&'a str, &'a str),
}

/// Records the outcome of the command that caused an event, and announces
/// it (the library notifies once the transaction commits). The event names
/// its command (type, aggregate, actor), so the status is complete even
/// when the event is projected before the command itself is seen.
async fn settle(
    tx: &mut PgConnection,
    headers: &Headers,
    (command_type, aggregate_id): (&str, &str),
    outcome: Settled<'_>,
) -> Result<Applied, HandlerError> {
    let Ok(command_id) = Uuid::parse_str(&headers.causation_id) else {
        return Ok(Applied::nothing()); // caused by no command (e.g. a system job): nothing to settle
    };
    let (status, version, reason, message) = match outcome {
        Settled::Succeeded(version) => ("succeeded", Some(version), None, None),
        Settled::Rejected(reason, message) => ("rejected", None, Some(reason), Some(message)),
    };
    sqlx::query(
        "INSERT INTO commands (command_id, command_type, aggregate_id, actor, status, reason, message, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
         ON CONFLICT (command_id) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,
           message = EXCLUDED.message, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at",
    )
    .bind(command_id)
    .bind(command_type)
    .bind(aggregate_id)
    .bind(&headers.actor)
    .bind(status)
    .bind(reason)
    .bind(message)
    .bind(version)
    .bind(headers.occurred_at)
    .execute(&mut *tx)
    .await
    .map_err(orderflow_outbox::classify)?;
    Ok(Applied::notify(command_id.to_string()))
}
