//! Command statuses (`GET /api/v1/commands/{id}`): pending when the command
//! is seen on its topic, settled by any event whose headers carry its
//! outcome (the service kit stamps them on what a command caused, whatever
//! the domain), or failed when a consumer dead-lettered it (nothing
//! accepted stays pending). Headers alone: this part knows no event and no
//! command by name.

use orderflow_bus::{
    CommandOutcome, DeadLetterCause, HandlerError, Headers, InboundMessage, Settled, dlq, header_value,
};
use orderflow_contracts::failure;
use orderflow_projection::Applied;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projection::db;

/// Records a command seen on its topic as pending (unless it is settled).
pub async fn pending(tx: &mut PgConnection, headers: &Headers, key: Option<&str>) -> Result<Applied, HandlerError> {
    sqlx::query(
        "INSERT INTO commands (command_id, command_type, aggregate_id, actor, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $5)
         ON CONFLICT (command_id) DO UPDATE SET command_type = EXCLUDED.command_type,
           aggregate_id = EXCLUDED.aggregate_id, actor = EXCLUDED.actor, created_at = EXCLUDED.created_at",
    )
    .bind(headers.message_id)
    .bind(&headers.message_type)
    .bind(key)
    .bind(&headers.actor)
    .bind(headers.occurred_at)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    Ok(Applied::nothing())
}

/// How a command ended.
#[derive(Debug)]
enum Ended<'a> {
    /// With the aggregate version it produced, if its events carry one:
    /// the credentials record of the same command carries that version
    /// too, so a client can be told when the login has caught up.
    Succeeded(Option<i64>),
    /// With the reason and a message.
    Rejected(&'a str, &'a str),
    /// Dead-lettered by a consumer: with the reason
    /// ([`orderflow_contracts::Reason::InvalidCommand`] or
    /// [`orderflow_contracts::Reason::CommandFailed`]) and a message for the
    /// client.
    Failed(&'a str, &'a str),
}

/// Settles the command whose outcome an event's headers carry (the
/// command is the event's `causation_id`), or, for an event written before
/// outcomes were on the bus (no outcome headers), the one `legacy` says it
/// answered; an event with neither (a saga step, a scheduled one) settles
/// nothing. Outcome headers this build cannot read (a newer producer's)
/// settle nothing either, with a warning: the event itself is still
/// applied.
pub async fn settled(
    tx: &mut PgConnection,
    message: &InboundMessage,
    headers: &Headers,
    legacy: impl FnOnce() -> Option<CommandOutcome>,
) -> Result<Applied, HandlerError> {
    let outcome = match CommandOutcome::from_pairs(&message.header_pairs, message.key.as_deref()) {
        Ok(stamped) => stamped.or_else(legacy),
        Err(error) => {
            tracing::warn!(topic = %message.topic, offset = message.offset, %error, "unreadable outcome headers settle nothing");
            None
        }
    };
    let Some(outcome) = outcome else { return Ok(Applied::nothing()) };
    let ended = match &outcome.settled {
        Settled::Succeeded { version } => Ended::Succeeded(*version),
        Settled::Rejected { reason, message } => Ended::Rejected(reason, message),
    };
    settle(tx, headers, (&outcome.command_type, &outcome.command_key), ended).await
}

/// Records the outcome of the command `headers.causation_id`, and
/// announces it (the library notifies once the transaction commits). The
/// outcome names its command (type, key, actor), so the status is complete
/// even when the event is projected before the command itself is seen.
async fn settle(
    tx: &mut PgConnection,
    headers: &Headers,
    (command_type, aggregate_id): (&str, &str),
    outcome: Ended<'_>,
) -> Result<Applied, HandlerError> {
    let Ok(command_id) = Uuid::parse_str(&headers.causation_id) else {
        return Ok(Applied::nothing()); // names no command anyone could wait for
    };
    let (status, version, reason, message) = match outcome {
        Ended::Succeeded(version) => ("succeeded", version, None, None),
        Ended::Rejected(reason, message) => ("rejected", None, Some(reason), Some(message)),
        Ended::Failed(reason, message) => ("failed", None, Some(reason), Some(message)),
    };
    sqlx::query(
        "INSERT INTO commands (command_id, command_type, aggregate_id, actor, status, reason, message, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
         ON CONFLICT (command_id) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,
           message = EXCLUDED.message, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
         -- A dead letter never undoes an outcome: a command an operator
         -- replayed from its DLQ and that then succeeded stays succeeded,
         -- whichever of the two a rebuild reads first.
         WHERE EXCLUDED.status <> 'failed' OR commands.status IN ('pending', 'failed')",
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
    .map_err(db)?;
    Ok(Applied::notify(command_id.to_string()))
}

/// Settles a command that a consumer dead-lettered (a message on a
/// `<domain>.commands.dlq` topic) as failed, from its headers alone: the
/// original ones name the command, `dlq_cause` says whether the command
/// itself was at fault. The message says what the client can do, never the
/// internal error (which stays on the dead letter for an operator).
///
/// It never fails on a broken dead letter (one whose own headers are what
/// broke it): that one names no command anyone could wait for, and a
/// dead-letter topic has no dead-letter topic of its own.
pub async fn failed(tx: &mut PgConnection, letter: &InboundMessage) -> Result<Applied, HandlerError> {
    let Ok(headers) = letter.headers() else {
        tracing::warn!(topic = %letter.topic, offset = letter.offset, "a dead letter without readable headers settles nothing");
        return Ok(Applied::nothing());
    };
    let pairs = &letter.header_pairs;
    let cause = DeadLetterCause::parse(header_value(pairs, dlq::CAUSE).unwrap_or_default());
    let source = header_value(pairs, dlq::ORIGINAL_TOPIC).unwrap_or(&letter.topic);
    let (reason, message) = failure::of_dead_command(cause == DeadLetterCause::Invalid, &headers.message_type, source);
    // The command's own id: a dead letter keeps the original headers, so
    // the command is its `message_id` (what settle reads as the cause).
    let failed_at = header_value(pairs, dlq::FAILED_AT)
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .map_or(headers.occurred_at, |at| at.with_timezone(&chrono::Utc));
    let as_cause = Headers { causation_id: headers.message_id.to_string(), occurred_at: failed_at, ..headers.clone() };
    let key = letter.key.as_deref().unwrap_or_default();
    settle(tx, &as_cause, (&headers.message_type, key), Ended::Failed(reason.as_str(), &message)).await
}
