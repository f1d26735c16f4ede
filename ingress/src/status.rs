//! Command statuses from the read model.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema, async_graphql::SimpleObject)]
pub struct CommandStatus {
    pub command_id: Uuid,
    pub command_type: Option<String>,
    pub aggregate_id: Option<String>,
    #[serde(skip)]
    #[graphql(skip)]
    pub actor: Option<String>,
    /// pending, succeeded, rejected (by the domain's rules: `reason` says
    /// why) or failed (a consumer gave up on it: `reason` is
    /// `INVALID_COMMAND` or `COMMAND_FAILED`, and it was kept for an
    /// operator).
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The aggregate version a succeeded command produced.
    pub version: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CommandStatus {
    /// A command the read model has not seen yet: pending since its id was
    /// minted (a UUIDv7 carries that time).
    pub fn pending(id: Uuid) -> Self {
        let minted = id
            .get_timestamp()
            .map(|t| t.to_unix())
            .and_then(|(seconds, nanos)| DateTime::from_timestamp(i64::try_from(seconds).ok()?, nanos))
            .unwrap_or_else(Utc::now);
        Self {
            command_id: id,
            command_type: None,
            aggregate_id: None,
            actor: None,
            status: "pending".into(),
            reason: None,
            message: None,
            version: None,
            created_at: minted,
            updated_at: minted,
        }
    }
}

pub async fn read(pool: &PgPool, id: Uuid) -> Result<Option<CommandStatus>, sqlx::Error> {
    sqlx::query_as(
        "SELECT command_id, command_type, aggregate_id, actor, status, reason, message, version, created_at, updated_at
         FROM rm.commands WHERE command_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}
