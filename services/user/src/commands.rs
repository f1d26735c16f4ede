//! The users commands as the rules see them: ids and emails parsed once,
//! where the kit decodes a message. A command whose id is not a uuid is
//! refused here, before any rule runs.

use orderflow_contracts::Refusal;
use orderflow_contracts::ids::{Email, UserId};
use orderflow_contracts::users::UserCommand;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A new user.
    Register(Registration),
    /// A change to existing user `id`.
    Change { id: UserId, change: Change },
}

/// A `RegisterUser`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: UserId,
    pub email: Email,
    /// Argon2id, hashed by the ingress: a password never travels.
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
}

/// What a command changes of an existing user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `UpdateUserProfile`: the names given.
    Profile { first_name: Option<String>, last_name: Option<String> },
    /// `ChangeUserPassword`: the new hash.
    Password { password_hash: String },
    /// `DeactivateUser`.
    Deactivate,
    /// `EraseUser`: the personal data goes, the id stays.
    Erase,
}

impl TryFrom<UserCommand> for Command {
    type Error = Refusal;

    fn try_from(command: UserCommand) -> Result<Self, Refusal> {
        let id = UserId::parse("user_id", command.user_id())?;
        Ok(match command {
            UserCommand::Register(c) => Command::Register(Registration {
                id,
                email: Email::parse(&c.email),
                password_hash: c.password_hash,
                first_name: c.first_name,
                last_name: c.last_name,
            }),
            UserCommand::UpdateProfile(c) => {
                Command::Change { id, change: Change::Profile { first_name: c.first_name, last_name: c.last_name } }
            }
            UserCommand::ChangePassword(c) => {
                Command::Change { id, change: Change::Password { password_hash: c.password_hash } }
            }
            UserCommand::Deactivate(_) => Command::Change { id, change: Change::Deactivate },
            UserCommand::Erase(_) => Command::Change { id, change: Change::Erase },
        })
    }
}
