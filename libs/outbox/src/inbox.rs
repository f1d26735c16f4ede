//! The idempotency inbox: one row per handled message id.

use sqlx::PgConnection;

/// How a message was finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Handled,
    DeadLettered,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Records `message_id` in the caller's transaction. `false` means the
/// message was handled before: the caller must change nothing else (and
/// should commit or roll back, then acknowledge the message).
pub async fn claim(
    tx: &mut PgConnection,
    message_id: &str,
    topic: &str,
    message_type: &str,
    outcome: Outcome,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (message_id, topic, message_type, outcome) VALUES ($1, $2, $3, $4)
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(message_id)
    .bind(topic)
    .bind(message_type)
    .bind(outcome.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
