//! The users read models: `users` (from users.events) and `credentials`
//! (from users.credentials alone; only the login reads it).

use orderflow_bus::{HandlerError, Headers};
use orderflow_contracts::users::{CredentialsRecord, UserEvent};
use orderflow_projection::Applied;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projection::{db, millis, uuid};

/// The latest credentials of a user; whoever waits for the command that
/// caused them (a 201 promising a working login) re-checks on commit.
pub async fn credentials(
    tx: &mut PgConnection,
    headers: &Headers,
    record: &CredentialsRecord,
) -> Result<Applied, HandlerError> {
    let CredentialsRecord::Credentials(c) = record;
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
    .map_err(db)?;
    Ok(match Uuid::parse_str(&headers.causation_id) {
        Ok(command_id) => Applied::notify(command_id.to_string()),
        Err(_) => Applied::nothing(),
    })
}

/// Applies one users event.
pub async fn apply(tx: &mut PgConnection, event: &UserEvent) -> Result<Applied, HandlerError> {
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
            Ok(Applied::nothing())
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
            Ok(Applied::nothing())
        }
        UserEvent::PasswordChanged(e) => {
            sqlx::query("UPDATE users SET version = $2, updated_at = $3 WHERE id = $1 AND version < $2")
                .bind(uuid(&e.user_id)?)
                .bind(e.version)
                .bind(millis(e.changed_at))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            Ok(Applied::nothing())
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
            Ok(Applied::nothing())
        }
        // Nothing personal stays: the user is a tombstone (id, roles,
        // version), and every order of theirs keeps its items, amounts and
        // states, not where it went or what its notes said.
        UserEvent::Erased(e) => {
            let id = uuid(&e.user_id)?;
            sqlx::query(
                "UPDATE users SET email = '', first_name = '', last_name = '', active = false, erased_at = $3,
                   version = $2, updated_at = $3 WHERE id = $1 AND version < $2",
            )
            .bind(id)
            .bind(e.version)
            .bind(millis(e.erased_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            sqlx::query("UPDATE orders SET shipping_address = 'null'::jsonb, notes = NULL WHERE customer_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            Ok(Applied::nothing())
        }
        // A rejection changed nothing (its command's status is settled from
        // its headers, like every outcome).
        UserEvent::Rejected(_) | UserEvent::RetiredRegistrationRejected(_) | UserEvent::RetiredCommandRejected(_) => {
            Ok(Applied::nothing())
        }
    }
}
