//! Loading and saving users, inside the kit's transaction.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::rules::{Conflict, User};

/// The user, locked for the rest of the transaction (so two replicas
/// never change one user at once).
pub async fn load_for_update(tx: &mut PgConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COALESCE(email, '') AS email, password_hash, first_name, last_name, roles, active,
           erased_at IS NOT NULL AS erased, version
         FROM users WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|row| User {
        id,
        email: row.get("email"),
        password_hash: row.get("password_hash"),
        first_name: row.get("first_name"),
        last_name: row.get("last_name"),
        roles: row.get("roles"),
        active: row.get("active"),
        erased: row.get("erased"),
        version: row.get("version"),
    }))
}

/// Inserts a new user, or says which uniqueness it would break. ON
/// CONFLICT: a concurrent registration of the same email waits for the
/// first one's commit and then inserts nothing, without aborting.
pub async fn insert(tx: &mut PgConnection, user: &User, now: DateTime<Utc>) -> Result<Option<Conflict>, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash, first_name, last_name, roles, active, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT DO NOTHING",
    )
    .bind(user.id)
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(&user.first_name)
    .bind(&user.last_name)
    .bind(&user.roles)
    .bind(user.active)
    .bind(user.version)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let id_taken: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(user.id)
        .fetch_one(&mut *tx)
        .await?;
    Ok(Some(if id_taken { Conflict::IdTaken } else { Conflict::EmailTaken }))
}

/// Saves a changed user; an erased one keeps no email (and, with the
/// rest of its personal data already empty, the time it was erased).
pub async fn update(tx: &mut PgConnection, user: &User, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = $2, first_name = $3, last_name = $4, roles = $5, active = $6,
           version = $7, updated_at = $8,
           email = CASE WHEN $9 THEN NULL ELSE email END,
           erased_at = CASE WHEN $9 THEN COALESCE(erased_at, $8) ELSE erased_at END
         WHERE id = $1",
    )
    .bind(user.id)
    .bind(&user.password_hash)
    .bind(&user.first_name)
    .bind(&user.last_name)
    .bind(&user.roles)
    .bind(user.active)
    .bind(user.version)
    .bind(now)
    .bind(user.erased)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
