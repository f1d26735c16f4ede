//! What each users command means: pure decisions over the current state of
//! one user, testable without a database (given/when/then, below).
//! [`crate::store`] loads and saves the state; the service kit does
//! everything else.

use chrono::{DateTime, Utc};
use orderflow_contracts::Reason;
use orderflow_contracts::ids::UserId;
use orderflow_contracts::users::{
    self, UserCredentials, UserDeactivated, UserErased, UserPasswordChanged, UserProfileUpdated, UserRegistered,
};
use orderflow_runtime::{Decided, Decision, Emit, Refusal};
use uuid::Uuid;

use crate::commands::{Change, Registration};

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
    /// Its personal data is gone (email, names and hash empty); nothing of
    /// it changes any more.
    pub erased: bool,
    /// Incremented by every change; events carry it so projections can
    /// ignore what they already applied.
    pub version: i64,
}

/// Why a registration could not insert its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    IdTaken,
    EmailTaken,
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

/// A new user (version 1), with the `admin` role if the email is a
/// bootstrap admin's. (Whether its id or email is taken, the store says:
/// [`registration_conflict`].)
pub fn register(registration: &Registration, admins: &[String], now: DateTime<Utc>) -> (User, Vec<Emit>) {
    let email = registration.email.as_str().to_owned();
    let mut roles = vec!["user".to_owned()];
    if admins.iter().any(|a| a.eq_ignore_ascii_case(&email)) {
        roles.push("admin".into());
    }
    let user = User {
        id: registration.id.0,
        email,
        password_hash: registration.password_hash.clone(),
        first_name: registration.first_name.clone(),
        last_name: registration.last_name.clone(),
        roles,
        active: true,
        erased: false,
        version: 1,
    };
    let registered = UserRegistered {
        user_id: user.id.to_string(),
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

/// Why a registration whose id or email is taken is refused.
pub fn registration_conflict(registration: &Registration, conflict: Conflict) -> Refusal {
    match conflict {
        Conflict::IdTaken => {
            Refusal::new(Reason::UserExists, format!("a user with id {} already exists", registration.id))
        }
        Conflict::EmailTaken => {
            Refusal::new(Reason::EmailTaken, format!("the email {} is already registered", registration.email))
        }
    }
}

/// What `change` does to existing user `id` (`current`, as loaded): it
/// must exist and not be erased, and be active unless it is being erased
/// (a deactivated user keeps the right to erasure).
pub fn change(current: Option<User>, id: UserId, change: &Change, now: DateTime<Utc>) -> Decided<User> {
    let mut user = match current {
        None => return Err(Refusal::new(Reason::UserNotFound, format!("no user with id {id}")).into()),
        Some(user) if user.erased => {
            return Err(Refusal::new(Reason::UserErased, format!("user {id} was erased")).into());
        }
        Some(user) if !user.active && *change != Change::Erase => {
            return Err(Refusal::new(Reason::UserDeactivated, format!("user {id} is deactivated")).into());
        }
        Some(user) => user,
    };
    user.version += 1;
    let (user_id, version, at) = (id.to_string(), user.version, now.timestamp_millis());
    let events = match change {
        Change::Profile { first_name, last_name } => {
            if let Some(first_name) = first_name {
                user.first_name.clone_from(first_name);
            }
            if let Some(last_name) = last_name {
                user.last_name.clone_from(last_name);
            }
            let (first_name, last_name) = (user.first_name.clone(), user.last_name.clone());
            let event = UserProfileUpdated { user_id, first_name, last_name, version, updated_at: at };
            vec![Emit::new(users::EVENTS, event)]
        }
        Change::Password { password_hash } => {
            user.password_hash.clone_from(password_hash);
            let event = UserPasswordChanged { user_id, version, changed_at: at };
            vec![Emit::new(users::EVENTS, event), credentials(&user)]
        }
        Change::Deactivate => {
            user.active = false;
            let event = UserDeactivated { user_id, version, deactivated_at: at };
            vec![Emit::new(users::EVENTS, event), credentials(&user)]
        }
        Change::Erase => {
            user = User {
                email: String::new(),
                password_hash: String::new(),
                first_name: String::new(),
                last_name: String::new(),
                active: false,
                erased: true,
                ..user
            };
            let event = UserErased { user_id, version, erased_at: at };
            // Credentials that match no login: the compacted topic's latest
            // record for the user holds nothing of them.
            vec![Emit::new(users::EVENTS, event), credentials(&user)]
        }
    };
    Ok(Decision::Changed { state: user, events })
}

#[cfg(test)]
mod tests {
    use orderflow_contracts::ids::Email;
    use orderflow_runtime::testing::given;

    use super::*;

    fn registration(email: &str) -> Registration {
        Registration {
            id: UserId(Uuid::now_v7()),
            email: Email::parse(email),
            password_hash: "$argon2id$hash".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
        }
    }

    fn ada() -> User {
        register(&registration("Ada@Example.com"), &[], Utc::now()).0
    }

    fn update(first_name: &str) -> Change {
        Change::Profile { first_name: Some(first_name.into()), last_name: None }
    }

    #[test]
    fn a_registration_is_a_user_at_version_1_whose_hash_travels_only_on_the_credentials_topic() {
        let (user, events) = register(&registration("Ada@Example.com"), &[], Utc::now());
        assert_eq!((user.email.as_str(), user.version, user.active), ("ada@example.com", 1, true));
        assert_eq!(user.roles, ["user"]);
        let names: Vec<_> = events.iter().map(|e| (e.message.name(), e.topic)).collect();
        assert_eq!(names, [("UserRegistered", users::EVENTS), ("UserCredentials", users::CREDENTIALS)]);
    }

    #[test]
    fn a_bootstrap_admin_registers_with_the_admin_role_whatever_the_case_of_the_email() {
        let (user, _) = register(&registration("Root@Example.com"), &["root@example.COM".into()], Utc::now());
        assert_eq!(user.roles, ["user", "admin"]);
    }

    #[test]
    fn a_taken_id_or_email_refuses_the_registration_naming_it() {
        let taken = registration("Ada@Example.com");
        let refusal = registration_conflict(&taken, Conflict::EmailTaken);
        assert_eq!((refusal.reason, refusal.message.contains("ada@example.com")), (Reason::EmailTaken, true));
        assert_eq!(registration_conflict(&taken, Conflict::IdTaken).reason, Reason::UserExists);
    }

    #[test]
    fn a_profile_update_changes_the_given_names_only_and_bumps_the_version() {
        let ada = ada();
        let id = UserId(ada.id);
        let (user, _) = given(Some(ada))
            .when(|u| change(u, id, &update("Augusta"), Utc::now()))
            .then_emits(&["UserProfileUpdated"]);
        assert_eq!((user.first_name.as_str(), user.last_name.as_str(), user.version), ("Augusta", "Lovelace", 2));
    }

    #[test]
    fn a_password_change_publishes_new_credentials() {
        let ada = ada();
        let id = UserId(ada.id);
        let password = Change::Password { password_hash: "$argon2id$new".into() };
        let (user, _) = given(Some(ada))
            .when(|u| change(u, id, &password, Utc::now()))
            .then_emits(&["UserPasswordChanged", "UserCredentials"]);
        assert_eq!((user.password_hash.as_str(), user.version), ("$argon2id$new", 2));
    }

    #[test]
    fn a_deactivated_user_logs_in_no_more_and_changes_no_more() {
        let ada = ada();
        let id = UserId(ada.id);
        let (user, _) = given(Some(ada))
            .when(|u| change(u, id, &Change::Deactivate, Utc::now()))
            .then_emits(&["UserDeactivated", "UserCredentials"]);
        assert_eq!((user.active, user.version), (false, 2));
        for again in [update("Augusta"), Change::Deactivate] {
            given(Some(user.clone())).when(|u| change(u, id, &again, Utc::now())).then_refused(Reason::UserDeactivated);
        }
    }

    #[test]
    fn an_erased_user_keeps_its_id_and_roles_and_nothing_personal_and_changes_no_more() {
        let mut ada = ada();
        ada.active = false; // a deactivated user may still be erased
        let id = UserId(ada.id);
        let (user, events) = given(Some(ada.clone()))
            .when(|u| change(u, id, &Change::Erase, Utc::now()))
            .then_emits(&["UserErased", "UserCredentials"]);
        assert_eq!(
            (user.id, &user.roles, user.version, user.erased, user.active),
            (ada.id, &ada.roles, 2, true, false)
        );
        for personal in [&user.email, &user.password_hash, &user.first_name, &user.last_name] {
            assert!(personal.is_empty(), "{user:?}");
        }
        let rendered = format!("{events:?}");
        for kept in ["ada@example.com", "Ada", "Lovelace", "$argon2id$hash"] {
            assert!(!rendered.contains(kept), "{kept} in {rendered}");
        }
        for again in [Change::Erase, update("Augusta"), Change::Deactivate] {
            given(Some(user.clone())).when(|u| change(u, id, &again, Utc::now())).then_refused(Reason::UserErased);
        }
    }

    #[test]
    fn a_command_for_no_user_is_refused() {
        let id = UserId(ada().id);
        given(None).when(|u| change(u, id, &update("Augusta"), Utc::now())).then_refused(Reason::UserNotFound);
    }
}
