use orderflow_bus::{HandlerError, InboundMessage};
use sqlx::PgPool;

use crate::inbox::{self, Outcome};
use crate::{OutboxMessage, enqueue};

/// Dead-letters `message`: one transaction records it in the inbox as done
/// and puts a copy on `<topic>.dlq` (original key, value and headers, plus
/// where it came from and why it failed) into the outbox.
pub async fn dead_letter(
    pool: &PgPool,
    message: &InboundMessage,
    error: &HandlerError,
    group: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let message_type = message.headers().map(|h| h.message_type).unwrap_or_else(|_| "unknown".into());
    if inbox::claim(&mut tx, &message.identity(), &message.topic, &message_type, Outcome::DeadLettered).await? {
        let letter = OutboxMessage::dead_letter(message, group, error);
        enqueue(&mut tx, &[letter]).await?;
        tracing::warn!(topic = %message.topic, offset = message.offset, %error, "message dead-lettered");
    }
    tx.commit().await
}
