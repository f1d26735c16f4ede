//! `users.commands` → one transaction: inbox row + users change + outbox rows.

use std::sync::Arc;

use orderflow_bus::topics::{USERS_CREDENTIALS, USERS_EVENTS};
use orderflow_bus::{HandlerError, Headers, InboundMessage, MessageHandler};
use orderflow_config::KafkaSettings;
use orderflow_contracts::users::UserCommand;
use orderflow_contracts::{Codec, CodecError, Contract};
use orderflow_outbox::inbox::{self, Outcome};
use orderflow_outbox::{OutboxMessage, classify, enqueue};
use sqlx::PgPool;

use crate::domain::{self, DomainError, Effect};

#[derive(Debug, Clone)]
pub struct CommandHandler {
    pub pool: PgPool,
    pub codec: Arc<Codec>,
    pub kafka: KafkaSettings,
    pub group: String,
    pub admins: Arc<Vec<String>>,
}

fn codec_error(error: CodecError) -> HandlerError {
    if error.is_transient() {
        HandlerError::Transient(error.to_string())
    } else {
        HandlerError::Permanent(error.to_string())
    }
}

fn domain_error(error: DomainError) -> HandlerError {
    match error {
        DomainError::Database(e) => classify(e),
        bad => HandlerError::Permanent(bad.to_string()),
    }
}

impl CommandHandler {
    async fn outbox_message<C: Contract>(
        &self,
        topic: &str,
        cause: &Headers,
        event: &C,
    ) -> Result<OutboxMessage, HandlerError> {
        Ok(OutboxMessage {
            topic: self.kafka.topic(topic),
            key: event.key(),
            payload: self.codec.encode(event).await.map_err(codec_error)?,
            headers: cause.caused(C::NAME).to_pairs(),
        })
    }

    async fn render(&self, cause: &Headers, effects: &[Effect]) -> Result<Vec<OutboxMessage>, HandlerError> {
        let mut out = Vec::with_capacity(effects.len());
        for effect in effects {
            out.push(match effect {
                Effect::Registered(e) => self.outbox_message(USERS_EVENTS, cause, e).await?,
                Effect::RegistrationRejected(e) => self.outbox_message(USERS_EVENTS, cause, e).await?,
                Effect::ProfileUpdated(e) => self.outbox_message(USERS_EVENTS, cause, e).await?,
                Effect::PasswordChanged(e) => self.outbox_message(USERS_EVENTS, cause, e).await?,
                Effect::Deactivated(e) => self.outbox_message(USERS_EVENTS, cause, e).await?,
                Effect::Rejected(e) => self.outbox_message(USERS_EVENTS, cause, e).await?,
                Effect::Credentials(e) => self.outbox_message(USERS_CREDENTIALS, cause, e).await?,
            });
        }
        Ok(out)
    }
}

impl MessageHandler for CommandHandler {
    async fn handle(&self, message: &InboundMessage) -> Result<(), HandlerError> {
        let headers = message.headers().map_err(|e| HandlerError::Permanent(e.to_string()))?;
        let command: UserCommand = self.codec.decode(message.payload.as_deref()).await.map_err(codec_error)?;
        if message.key.as_deref() != Some(command.user_id()) {
            return Err(HandlerError::Permanent(format!(
                "key {:?} is not the command's user id {}: per-user order cannot hold",
                message.key,
                command.user_id()
            )));
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let first_time =
            inbox::claim(&mut tx, &headers.message_id.to_string(), &message.topic, command.name(), Outcome::Handled)
                .await
                .map_err(classify)?;
        if !first_time {
            tracing::info!(message_id = %headers.message_id, "duplicate command ignored");
            return tx.rollback().await.map_err(classify);
        }
        let effects = match &command {
            UserCommand::Register(c) => domain::register(&mut tx, c, &self.admins).await,
            UserCommand::UpdateProfile(c) => domain::update_profile(&mut tx, c).await,
            UserCommand::ChangePassword(c) => domain::change_password(&mut tx, c).await,
            UserCommand::Deactivate(c) => domain::deactivate(&mut tx, c).await,
        }
        .map_err(domain_error)?;
        let messages = self.render(&headers, &effects).await?;
        enqueue(&mut tx, &messages).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        tracing::info!(
            command = command.name(),
            user_id = command.user_id(),
            message_id = %headers.message_id,
            events = ?messages.iter().map(|m| m.topic.as_str()).collect::<Vec<_>>(),
            "command handled"
        );
        Ok(())
    }

    async fn dead_letter(&self, message: &InboundMessage, error: &str) -> Result<(), HandlerError> {
        orderflow_outbox::dead_letter(&self.pool, message, error, &self.group).await.map_err(classify)
    }
}
