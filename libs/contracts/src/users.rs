//! Messages of the users domain: `users.commands`, `users.events` and the
//! compacted `users.credentials`.

use serde::{Deserialize, Serialize};

use crate::outcomes::CommandRejected;
use crate::{Topic, commands_on, contract, family, schema_files};

/// Commands of the users domain (the ingress writes, the user service reads).
pub const COMMANDS: Topic = Topic::commands("users.commands");
/// Commands of the users domain that a consumer gave up on: the projector
/// settles them as failed.
pub const DEAD_COMMANDS: Topic = Topic::dead_letters("users.commands.dlq");
/// Events of the users domain: never a credential.
pub const EVENTS: Topic = Topic::events("users.events");
/// Password hashes travel only here: a compacted topic (latest credentials
/// per user) read by the credentials projection alone, so no hash ever
/// appears on a general event topic.
pub const CREDENTIALS: Topic = Topic::compacted("users.credentials");
/// Every topic of the users domain.
pub const TOPICS: &[Topic] = &[COMMANDS, EVENTS, CREDENTIALS];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterUser {
    pub user_id: String,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
}
contract!(RegisterUser, "orderflow.users.commands", "users", user_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateUserProfile {
    pub user_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}
contract!(UpdateUserProfile, "orderflow.users.commands", "users", user_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeUserPassword {
    pub user_id: String,
    pub password_hash: String,
}
contract!(ChangeUserPassword, "orderflow.users.commands", "users", user_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeactivateUser {
    pub user_id: String,
}
contract!(DeactivateUser, "orderflow.users.commands", "users", user_id);

/// Erase a user's personal data; the id stays, as a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EraseUser {
    pub user_id: String,
}
contract!(EraseUser, "orderflow.users.commands", "users", user_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub roles: Vec<String>,
    pub version: i64,
    /// Milliseconds since the epoch.
    pub registered_at: i64,
}
contract!(UserRegistered, "orderflow.users.events", "users", user_id, version, subject = user_id);

/// Retired (see [`UserEvent`]): no longer published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistrationRejected {
    pub user_id: String,
    pub email: String,
    pub reason: String,
    pub message: String,
}
contract!(UserRegistrationRejected, "orderflow.users.events", "users", user_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfileUpdated {
    pub user_id: String,
    pub first_name: String,
    pub last_name: String,
    pub version: i64,
    pub updated_at: i64,
}
contract!(UserProfileUpdated, "orderflow.users.events", "users", user_id, version, subject = user_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPasswordChanged {
    pub user_id: String,
    pub version: i64,
    pub changed_at: i64,
}
contract!(UserPasswordChanged, "orderflow.users.events", "users", user_id, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDeactivated {
    pub user_id: String,
    pub version: i64,
    pub deactivated_at: i64,
}
contract!(UserDeactivated, "orderflow.users.events", "users", user_id, version);

/// A user's personal data is gone: whoever kept any of it drops it (and
/// keeps it dropped on replay, whatever order the topics replay in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserErased {
    pub user_id: String,
    pub version: i64,
    pub erased_at: i64,
}
contract!(UserErased, "orderflow.users.events", "users", user_id, version);

/// Retired (see [`UserEvent`]): no longer published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCommandRejected {
    pub user_id: String,
    pub command_type: String,
    pub reason: String,
    pub message: String,
}
contract!(UserCommandRejected, "orderflow.users.events", "users", user_id);

/// The latest credentials of a user (compacted topic, never a general one).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCredentials {
    pub user_id: String,
    pub email: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub active: bool,
    pub version: i64,
}
contract!(UserCredentials, "orderflow.users.credentials", "users", user_id, version, subject = user_id);

/// The hash stays out of `Debug`, so no log line can carry it.
impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("roles", &self.roles)
            .field("active", &self.active)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

family!(UserCommand {
    Register(RegisterUser),
    UpdateProfile(UpdateUserProfile),
    ChangePassword(ChangeUserPassword),
    Deactivate(DeactivateUser),
    Erase(EraseUser),
});

family!(UserEvent {
    Registered(UserRegistered),
    ProfileUpdated(UserProfileUpdated),
    PasswordChanged(UserPasswordChanged),
    Deactivated(UserDeactivated),
    Erased(UserErased),
    Rejected(CommandRejected),
    // Retired: rejections before the kit published [`CommandRejected`];
    // still read, so that older topics replay.
    RetiredRegistrationRejected(UserRegistrationRejected),
    RetiredCommandRejected(UserCommandRejected),
});

family!(CredentialsRecord { Credentials(UserCredentials) });

impl UserCommand {
    pub fn user_id(&self) -> &str {
        match self {
            UserCommand::Register(c) => &c.user_id,
            UserCommand::UpdateProfile(c) => &c.user_id,
            UserCommand::ChangePassword(c) => &c.user_id,
            UserCommand::Deactivate(c) => &c.user_id,
            UserCommand::Erase(c) => &c.user_id,
        }
    }
}

commands_on!(COMMANDS => RegisterUser, UpdateUserProfile, ChangeUserPassword, DeactivateUser, EraseUser);

schema_files!(
    "users":
    RegisterUser,
    UpdateUserProfile,
    ChangeUserPassword,
    DeactivateUser,
    EraseUser,
    UserRegistered,
    UserRegistrationRejected,
    UserProfileUpdated,
    UserPasswordChanged,
    UserDeactivated,
    UserErased,
    UserCommandRejected,
    UserCredentials,
);
