//! The user service: its rules, its state, and the wiring to the kit.
//!
//! Consumes `users.commands`; for each command the kit commits, in one
//! transaction of the `users` database, the inbox row, the change to
//! `users` and the resulting events in the outbox, which its relay
//! publishes: `UserRegistered`, `UserProfileUpdated`, ... on `users.events`
//! (no credentials there), the latest credentials on `users.credentials`.
//!
//! - [`rules`]: what each command means (pure decisions).
//! - [`store`]: loading and saving users.
//! - [`settings`]: the service's own setting (bootstrap admins).

pub mod rules;
pub mod settings;
pub mod store;

use chrono::Utc;
use orderflow_contracts::Topic;
use orderflow_contracts::users::{self, UserCommand};
use orderflow_runtime::{DomainError, Emit, Inbound, Refusal, Service};
use sqlx::PgConnection;

pub use settings::{Rules, Settings};

use crate::rules::Outcome;

/// The user service's rules, run by the kit.
#[derive(Debug, Clone)]
pub struct UserService {
    admins: Vec<String>,
}

impl Service for UserService {
    type Domain = Rules;
    type Input = UserCommand;
    const PUBLISHES: &'static [Topic] = &[users::EVENTS, users::CREDENTIALS];
    const CONSUMES: &'static [Topic] = &[users::COMMANDS];

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("../../migrations/users")
    }

    fn new(settings: &Settings) -> Self {
        Self { admins: settings.domain.bootstrap_admins.clone() }
    }

    async fn handle(&self, tx: &mut PgConnection, input: &Inbound<'_, UserCommand>) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let outcome = match &input.message {
            UserCommand::Register(cmd) => {
                let id = rules::user_id(&cmd.user_id)?;
                let (user, events) = rules::register(cmd, id, &self.admins, now);
                return Ok(match store::insert(tx, &user, now).await? {
                    None => events,
                    Some(conflict) => vec![rules::registration_conflict(cmd, conflict)],
                });
            }
            UserCommand::UpdateProfile(cmd) => {
                let current = store::load_for_update(tx, rules::user_id(&cmd.user_id)?).await?;
                rules::update_profile(current, cmd, now)
            }
            UserCommand::ChangePassword(cmd) => {
                let current = store::load_for_update(tx, rules::user_id(&cmd.user_id)?).await?;
                rules::change_password(current, cmd, now)
            }
            UserCommand::Deactivate(cmd) => {
                let current = store::load_for_update(tx, rules::user_id(&cmd.user_id)?).await?;
                rules::deactivate(current, cmd, now)
            }
        };
        match outcome {
            Outcome::Changed { user, events } => {
                store::update(tx, &user, now).await?;
                Ok(events)
            }
            Outcome::Rejected(rejection) => Ok(vec![rejection]),
        }
    }

    fn rejection(&self, input: &Inbound<'_, UserCommand>, refusal: &Refusal) -> Option<Emit> {
        Some(rules::refused(&input.message, refusal))
    }
}
