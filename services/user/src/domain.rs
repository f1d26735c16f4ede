//! What each command does to the users table, and the events it yields.
//! Every function runs inside the caller's transaction.

use chrono::Utc;
use orderflow_contracts::users::{
    ChangeUserPassword, DeactivateUser, RegisterUser, UpdateUserProfile, UserCommandRejected, UserCredentials,
    UserDeactivated, UserPasswordChanged, UserProfileUpdated, UserRegistered, UserRegistrationRejected,
};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// An event to emit, on which topic kind.
#[derive(Debug)]
pub enum Effect {
    Registered(UserRegistered),
    RegistrationRejected(UserRegistrationRejected),
    ProfileUpdated(UserProfileUpdated),
    PasswordChanged(UserPasswordChanged),
    Deactivated(UserDeactivated),
    Rejected(UserCommandRejected),
    /// On `users.credentials` only.
    Credentials(UserCredentials),
}

/// A command that names something no service could act on.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("`{0}` is not a uuid")]
    BadUserId(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn user_id(raw: &str) -> Result<Uuid, DomainError> {
    Uuid::parse_str(raw).map_err(|_| DomainError::BadUserId(raw.to_owned()))
}

pub async fn register(
    tx: &mut PgConnection,
    cmd: &RegisterUser,
    admins: &[String],
) -> Result<Vec<Effect>, DomainError> {
    let id = user_id(&cmd.user_id)?;
    let email = cmd.email.to_lowercase();
    let roles: Vec<String> = if admins.iter().any(|a| a.eq_ignore_ascii_case(&email)) {
        vec!["user".into(), "admin".into()]
    } else {
        vec!["user".into()]
    };
    let now = Utc::now();
    // ON CONFLICT: a concurrent registration of the same email waits for the
    // first one's commit and then inserts nothing, without aborting.
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash, first_name, last_name, roles, active, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, true, 1, $7, $7) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&email)
    .bind(&cmd.password_hash)
    .bind(&cmd.first_name)
    .bind(&cmd.last_name)
    .bind(&roles)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        let id_taken: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let (reason, message) = if id_taken {
            ("USER_EXISTS", format!("a user with id {id} already exists"))
        } else {
            ("EMAIL_TAKEN", format!("the email {email} is already registered"))
        };
        return Ok(vec![Effect::RegistrationRejected(UserRegistrationRejected {
            user_id: cmd.user_id.clone(),
            email,
            reason: reason.into(),
            message,
        })]);
    }
    Ok(vec![
        Effect::Registered(UserRegistered {
            user_id: cmd.user_id.clone(),
            email: email.clone(),
            first_name: cmd.first_name.clone(),
            last_name: cmd.last_name.clone(),
            roles: roles.clone(),
            version: 1,
            registered_at: now.timestamp_millis(),
        }),
        Effect::Credentials(UserCredentials {
            user_id: cmd.user_id.clone(),
            email,
            password_hash: cmd.password_hash.clone(),
            roles,
            active: true,
            version: 1,
        }),
    ])
}

/// The locked current row of a user, or why the command is refused.
struct Current {
    id: Uuid,
    email: String,
    password_hash: String,
    first_name: String,
    last_name: String,
    roles: Vec<String>,
    version: i64,
}

async fn lock_active(
    tx: &mut PgConnection,
    raw_id: &str,
    command_type: &str,
) -> Result<Result<Current, Effect>, DomainError> {
    let id = user_id(raw_id)?;
    let row = sqlx::query(
        "SELECT email, password_hash, first_name, last_name, roles, active, version FROM users WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let reject = |reason: &str, message: String| {
        Effect::Rejected(UserCommandRejected {
            user_id: raw_id.to_owned(),
            command_type: command_type.to_owned(),
            reason: reason.to_owned(),
            message,
        })
    };
    let Some(row) = row else {
        return Ok(Err(reject("USER_NOT_FOUND", format!("no user with id {raw_id}"))));
    };
    if !row.get::<bool, _>("active") {
        return Ok(Err(reject("USER_DEACTIVATED", format!("user {raw_id} is deactivated"))));
    }
    Ok(Ok(Current {
        id,
        email: row.get("email"),
        password_hash: row.get("password_hash"),
        first_name: row.get("first_name"),
        last_name: row.get("last_name"),
        roles: row.get("roles"),
        version: row.get("version"),
    }))
}

pub async fn update_profile(tx: &mut PgConnection, cmd: &UpdateUserProfile) -> Result<Vec<Effect>, DomainError> {
    let current = match lock_active(tx, &cmd.user_id, "UpdateUserProfile").await? {
        Ok(current) => current,
        Err(rejection) => return Ok(vec![rejection]),
    };
    let first_name = cmd.first_name.clone().unwrap_or(current.first_name);
    let last_name = cmd.last_name.clone().unwrap_or(current.last_name);
    let version = current.version + 1;
    let now = Utc::now();
    sqlx::query("UPDATE users SET first_name = $2, last_name = $3, version = $4, updated_at = $5 WHERE id = $1")
        .bind(current.id)
        .bind(&first_name)
        .bind(&last_name)
        .bind(version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(vec![Effect::ProfileUpdated(UserProfileUpdated {
        user_id: cmd.user_id.clone(),
        first_name,
        last_name,
        version,
        updated_at: now.timestamp_millis(),
    })])
}

pub async fn change_password(tx: &mut PgConnection, cmd: &ChangeUserPassword) -> Result<Vec<Effect>, DomainError> {
    let current = match lock_active(tx, &cmd.user_id, "ChangeUserPassword").await? {
        Ok(current) => current,
        Err(rejection) => return Ok(vec![rejection]),
    };
    let version = current.version + 1;
    let now = Utc::now();
    sqlx::query("UPDATE users SET password_hash = $2, version = $3, updated_at = $4 WHERE id = $1")
        .bind(current.id)
        .bind(&cmd.password_hash)
        .bind(version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(vec![
        Effect::PasswordChanged(UserPasswordChanged {
            user_id: cmd.user_id.clone(),
            version,
            changed_at: now.timestamp_millis(),
        }),
        Effect::Credentials(UserCredentials {
            user_id: cmd.user_id.clone(),
            email: current.email,
            password_hash: cmd.password_hash.clone(),
            roles: current.roles,
            active: true,
            version,
        }),
    ])
}

pub async fn deactivate(tx: &mut PgConnection, cmd: &DeactivateUser) -> Result<Vec<Effect>, DomainError> {
    let current = match lock_active(tx, &cmd.user_id, "DeactivateUser").await? {
        Ok(current) => current,
        Err(rejection) => return Ok(vec![rejection]),
    };
    let version = current.version + 1;
    let now = Utc::now();
    sqlx::query("UPDATE users SET active = false, version = $2, updated_at = $3 WHERE id = $1")
        .bind(current.id)
        .bind(version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(vec![
        Effect::Deactivated(UserDeactivated {
            user_id: cmd.user_id.clone(),
            version,
            deactivated_at: now.timestamp_millis(),
        }),
        Effect::Credentials(UserCredentials {
            user_id: cmd.user_id.clone(),
            email: current.email,
            password_hash: current.password_hash,
            roles: current.roles,
            active: false,
            version,
        }),
    ])
}
