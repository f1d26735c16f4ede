//! Applying one message to the current generation. Runs inside the runner's
//! transaction with `search_path` set to the generation's schema, so table
//! names here are unqualified.
//!
//! Every change is idempotent and order-safe: users rows carry the version
//! of the last event applied and ignore anything not newer, command statuses
//! are upserts. A republished event (outbox relay crash) changes nothing.

use chrono::{DateTime, TimeZone, Utc};

use orderflow_bus::{HandlerError, Headers, InboundMessage};
use orderflow_config::KafkaSettings;
use orderflow_contracts::users::{CredentialsRecord, UserEvent};
use orderflow_contracts::{Codec, CodecError};
use sqlx::PgConnection;
use uuid::Uuid;

fn codec_error(error: CodecError) -> HandlerError {
    if error.is_transient() {
        HandlerError::Transient(error.to_string())
    } else {
        HandlerError::Permanent(error.to_string())
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_else(Utc::now)
}

fn uuid(raw: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(raw).map_err(|_| HandlerError::Permanent(format!("`{raw}` is not a uuid")))
}

/// Applies `message`; the caller advances the offset in the same transaction.
pub async fn apply(
    tx: &mut PgConnection,
    codec: &Codec,
    kafka: &KafkaSettings,
    message: &InboundMessage,
) -> Result<(), HandlerError> {
    let headers = message.headers().map_err(|e| HandlerError::Permanent(e.to_string()))?;
    if message.topic == kafka.topic(orderflow_contracts::users::EVENTS.name) {
        let event: UserEvent = codec.decode(message.payload.as_deref()).await.map_err(codec_error)?;
        apply_event(tx, &headers, &event).await
    } else if message.topic == kafka.topic(orderflow_contracts::users::CREDENTIALS.name) {
        let CredentialsRecord::Credentials(c) = codec.decode(message.payload.as_deref()).await.map_err(codec_error)?;
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
        notify(tx, &headers.causation_id).await
    } else if message.topic == kafka.topic(orderflow_contracts::users::COMMANDS.name) {
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
        Ok(())
    } else {
        Err(HandlerError::Permanent(format!("the projector does not read {}", message.topic)))
    }
}

async fn apply_event(tx: &mut PgConnection, headers: &Headers, event: &UserEvent) -> Result<(), HandlerError> {
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
            settle(tx, headers, ("RegisterUser", &e.user_id), "succeeded", None, None).await
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
            settle(tx, headers, ("UpdateUserProfile", &e.user_id), "succeeded", None, None).await
        }
        UserEvent::PasswordChanged(e) => {
            sqlx::query("UPDATE users SET version = $2, updated_at = $3 WHERE id = $1 AND version < $2")
                .bind(uuid(&e.user_id)?)
                .bind(e.version)
                .bind(millis(e.changed_at))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            settle(tx, headers, ("ChangeUserPassword", &e.user_id), "succeeded", None, None).await
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
            settle(tx, headers, ("DeactivateUser", &e.user_id), "succeeded", None, None).await
        }
        UserEvent::RegistrationRejected(e) => {
            settle(tx, headers, ("RegisterUser", &e.user_id), "rejected", Some(&e.reason), Some(&e.message)).await
        }
        UserEvent::CommandRejected(e) => {
            settle(tx, headers, (&e.command_type, &e.user_id), "rejected", Some(&e.reason), Some(&e.message)).await
        }
    }
}

/// Records the outcome of the command that caused an event, and tells the
/// ingress (NOTIFY is delivered when the transaction commits). The event
/// names its command (type, aggregate, actor), so the status is complete
/// even when the event is projected before the command itself is seen.
async fn settle(
    tx: &mut PgConnection,
    headers: &Headers,
    (command_type, aggregate_id): (&str, &str),
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> Result<(), HandlerError> {
    let Ok(command_id) = Uuid::parse_str(&headers.causation_id) else {
        return Ok(()); // caused by no command (e.g. a system job): nothing to settle
    };
    sqlx::query(
        "INSERT INTO commands (command_id, command_type, aggregate_id, actor, status, reason, message, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (command_id) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,
           message = EXCLUDED.message, updated_at = EXCLUDED.updated_at",
    )
    .bind(command_id)
    .bind(command_type)
    .bind(aggregate_id)
    .bind(&headers.actor)
    .bind(status)
    .bind(reason)
    .bind(message)
    .bind(headers.occurred_at)
    .execute(&mut *tx)
    .await
    .map_err(orderflow_outbox::classify)?;
    notify(tx, &command_id.to_string()).await
}

/// Tells the ingress that something about `command_id` changed; delivered
/// when the transaction commits.
async fn notify(tx: &mut PgConnection, command_id: &str) -> Result<(), HandlerError> {
    sqlx::query("SELECT pg_notify('command_status', $1)")
        .bind(command_id)
        .execute(&mut *tx)
        .await
        .map_err(orderflow_outbox::classify)?;
    Ok(())
}
