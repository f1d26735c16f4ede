//! What each users command means: pure decisions over the current state of
//! one user, testable without a database. [`crate::store`] loads and saves
//! the state; the service kit does everything else.

use chrono::{DateTime, Utc};
use orderflow_contracts::users::{
    self, ChangeUserPassword, DeactivateUser, RegisterUser, UpdateUserProfile, UserCommand, UserCommandRejected,
    UserCredentials, UserDeactivated, UserPasswordChanged, UserProfileUpdated, UserRegistered,
    UserRegistrationRejected,
};
use orderflow_contracts::{Family, Reason};
use orderflow_runtime::{Emit, Refusal};
use uuid::Uuid;

/// The state of one user, as the user service stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub roles: Vec<String>,
    pub active: bool,
    /// Incremented by every change; events carry it so projections can
    /// ignore what they already applied.
    pub version: i64,
}

/// What a command does to an existing user.
#[derive(Debug)]
pub enum Outcome {
    /// Save `user` and publish `events`.
    Changed { user: User, events: Vec<Emit> },
    /// Change nothing; publish the rejection.
    Rejected(Emit),
}

/// Why a registration could not insert its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    IdTaken,
    EmailTaken,
}

/// A user id inside a command; anything else is a refusal (the ingress
/// only sends uuids, so this is a malformed or foreign command).
pub fn user_id(raw: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(raw).map_err(|_| Refusal::new(Reason::InvalidUserId, format!("`{raw}` is not a user id")))
}

fn credentials(user: &User) -> Emit {
    Emit::new(
        users::CREDENTIALS,
        UserCredentials {
            user_id: user.id.to_string(),
            email: user.email.clone(),
            password_hash: user.password_hash.clone(),
            roles: user.roles.clone(),
            active: user.active,
            version: user.version,
        },
    )
}

fn rejected(user_id: &str, command_type: &str, reason: Reason, message: String) -> Emit {
    Emit::new(
        users::EVENTS,
        UserCommandRejected {
            user_id: user_id.to_owned(),
            command_type: command_type.to_owned(),
            reason: reason.as_str().to_owned(),
            message,
        },
    )
}

/// The rejection event for a command the service refused: a registration
/// has its own (its email is what a client would change).
pub fn refused(command: &UserCommand, refusal: &Refusal) -> Emit {
    match command {
        UserCommand::Register(cmd) => Emit::new(
            users::EVENTS,
            UserRegistrationRejected {
                user_id: cmd.user_id.clone(),
                email: cmd.email.to_lowercase(),
                reason: refusal.reason.as_str().to_owned(),
                message: refusal.message.clone(),
            },
        ),
        other => rejected(other.user_id(), other.name(), refusal.reason, refusal.message.clone()),
    }
}

/// A new user (version 1), with the `admin` role if the email is a
/// bootstrap admin's.
pub fn register(cmd: &RegisterUser, id: Uuid, admins: &[String], now: DateTime<Utc>) -> (User, Vec<Emit>) {
    let email = cmd.email.to_lowercase();
    let mut roles = vec!["user".to_owned()];
    if admins.iter().any(|a| a.eq_ignore_ascii_case(&email)) {
        roles.push("admin".into());
    }
    let user = User {
        id,
        email,
        password_hash: cmd.password_hash.clone(),
        first_name: cmd.first_name.clone(),
        last_name: cmd.last_name.clone(),
        roles,
        active: true,
        version: 1,
    };
    let registered = UserRegistered {
        user_id: cmd.user_id.clone(),
        email: user.email.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        roles: user.roles.clone(),
        version: 1,
        registered_at: now.timestamp_millis(),
    };
    let events = vec![Emit::new(users::EVENTS, registered), credentials(&user)];
    (user, events)
}

/// The rejection of a registration whose id or email is taken.
pub fn registration_conflict(cmd: &RegisterUser, conflict: Conflict) -> Emit {
    let email = cmd.email.to_lowercase();
    let (reason, message) = match conflict {
        Conflict::IdTaken => (Reason::UserExists, format!("a user with id {} already exists", cmd.user_id)),
        Conflict::EmailTaken => (Reason::EmailTaken, format!("the email {email} is already registered")),
    };
    Emit::new(
        users::EVENTS,
        UserRegistrationRejected { user_id: cmd.user_id.clone(), email, reason: reason.as_str().into(), message },
    )
}

/// The user a command may act on: it exists and is active.
fn active(current: Option<User>, raw_id: &str, command_type: &str) -> Result<User, Emit> {
    match current {
        None => Err(rejected(raw_id, command_type, Reason::UserNotFound, format!("no user with id {raw_id}"))),
        Some(user) if !user.active => {
            Err(rejected(raw_id, command_type, Reason::UserDeactivated, format!("user {raw_id} is deactivated")))
        }
        Some(user) => Ok(user),
    }
}

pub fn update_profile(current: Option<User>, cmd: &UpdateUserProfile, now: DateTime<Utc>) -> Outcome {
    let mut user = match active(current, &cmd.user_id, "UpdateUserProfile") {
        Ok(user) => user,
        Err(rejection) => return Outcome::Rejected(rejection),
    };
    if let Some(first_name) = &cmd.first_name {
        user.first_name.clone_from(first_name);
    }
    if let Some(last_name) = &cmd.last_name {
        user.last_name.clone_from(last_name);
    }
    user.version += 1;
    let event = UserProfileUpdated {
        user_id: cmd.user_id.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        version: user.version,
        updated_at: now.timestamp_millis(),
    };
    Outcome::Changed { events: vec![Emit::new(users::EVENTS, event)], user }
}

pub fn change_password(current: Option<User>, cmd: &ChangeUserPassword, now: DateTime<Utc>) -> Outcome {
    let mut user = match active(current, &cmd.user_id, "ChangeUserPassword") {
        Ok(user) => user,
        Err(rejection) => return Outcome::Rejected(rejection),
    };
    user.password_hash.clone_from(&cmd.password_hash);
    user.version += 1;
    let event =
        UserPasswordChanged { user_id: cmd.user_id.clone(), version: user.version, changed_at: now.timestamp_millis() };
    Outcome::Changed { events: vec![Emit::new(users::EVENTS, event), credentials(&user)], user }
}

pub fn deactivate(current: Option<User>, cmd: &DeactivateUser, now: DateTime<Utc>) -> Outcome {
    let mut user = match active(current, &cmd.user_id, "DeactivateUser") {
        Ok(user) => user,
        Err(rejection) => return Outcome::Rejected(rejection),
    };
    user.active = false;
    user.version += 1;
    let event =
        UserDeactivated { user_id: cmd.user_id.clone(), version: user.version, deactivated_at: now.timestamp_millis() };
    Outcome::Changed { events: vec![Emit::new(users::EVENTS, event), credentials(&user)], user }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(events: &[Emit]) -> Vec<&'static str> {
        events.iter().map(|e| e.message.name()).collect()
    }

    fn ada() -> (User, Vec<Emit>) {
        let cmd = RegisterUser {
            user_id: "0190a0a0-0000-7000-8000-000000000001".into(),
            email: "Ada@Example.com".into(),
            password_hash: "$argon2id$hash".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
        };
        let id = user_id(&cmd.user_id).expect("uuid");
        register(&cmd, id, &["ada@example.com".into()], Utc::now())
    }

    #[test]
    fn registration_lowercases_grants_bootstrap_admin_and_keeps_the_hash_off_events() {
        let (user, events) = ada();
        assert_eq!(user.email, "ada@example.com");
        assert_eq!(user.roles, ["user", "admin"]);
        assert_eq!(names(&events), ["UserRegistered", "UserCredentials"]);
        assert_eq!(events[0].topic, users::EVENTS);
        assert_eq!(events[1].topic, users::CREDENTIALS, "the hash travels only on the credentials topic");
    }

    #[test]
    fn changes_bump_the_version_and_refuse_missing_or_deactivated_users() {
        let (user, _) = ada();
        let id = user.id.to_string();
        let update = UpdateUserProfile { user_id: id.clone(), first_name: Some("Augusta".into()), last_name: None };
        let Outcome::Changed { user, events } = update_profile(Some(user), &update, Utc::now()) else {
            panic!("an active user can be updated")
        };
        assert_eq!((user.first_name.as_str(), user.last_name.as_str(), user.version), ("Augusta", "Lovelace", 2));
        assert_eq!(names(&events), ["UserProfileUpdated"]);

        let Outcome::Changed { user, events } =
            deactivate(Some(user), &DeactivateUser { user_id: id.clone() }, Utc::now())
        else {
            panic!("an active user can be deactivated")
        };
        assert_eq!((user.active, user.version), (false, 3));
        assert_eq!(names(&events), ["UserDeactivated", "UserCredentials"]);

        let again = change_password(
            Some(user),
            &ChangeUserPassword { user_id: id.clone(), password_hash: "x".into() },
            Utc::now(),
        );
        let Outcome::Rejected(rejection) = again else { panic!("a deactivated user cannot change") };
        assert!(format!("{:?}", rejection.message).contains("USER_DEACTIVATED"));
        let Outcome::Rejected(rejection) = update_profile(None, &update, Utc::now()) else { panic!("no user") };
        assert!(format!("{:?}", rejection.message).contains("USER_NOT_FOUND"));
    }

    #[test]
    fn a_malformed_id_is_a_refusal_that_settles_the_command() {
        let refusal = user_id("not-a-uuid").expect_err("refused");
        assert_eq!(refusal.reason, Reason::InvalidUserId);
        let deactivate = UserCommand::Deactivate(DeactivateUser { user_id: "not-a-uuid".into() });
        assert_eq!(refused(&deactivate, &refusal).message.name(), "UserCommandRejected");
        let register = UserCommand::Register(RegisterUser {
            user_id: "x".into(),
            email: "Ada@Example.com".into(),
            password_hash: "$argon2id$hash".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
        });
        assert_eq!(refused(&register, &refusal).message.name(), "UserRegistrationRejected");
    }
}
