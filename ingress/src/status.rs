//! Command statuses from the read model.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CommandStatus {
    pub command_id: Uuid,
    pub command_type: Option<String>,
    pub aggregate_id: Option<String>,
    #[serde(skip)]
    pub actor: Option<String>,
    /// pending, succeeded or rejected.
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The aggregate version a succeeded command produced.
    pub version: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
