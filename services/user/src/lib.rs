//! The user service: its rules, its state, and the wiring to the kit.
//!
//! Consumes `users.commands`; for each command the kit commits, in one
//! transaction of the `users` database, the inbox row, the change to
//! `users` and the resulting events in the outbox, which its relay
//! publishes: `UserRegistered`, `UserProfileUpdated`, ... on `users.events`
//! (no credentials there), the latest credentials on `users.credentials`.
//!
//! - [`commands`]: the commands as the rules read them (ids parsed).
//! - [`rules`]: what each command means (pure decisions).
//! - [`store`]: loading and saving users.
//! - [`settings`]: the service's own setting (bootstrap admins).

pub mod commands;
pub mod rules;
pub mod settings;
pub mod store;

use chrono::Utc;
use orderflow_contracts::Topic;
use orderflow_contracts::users::{self, UserCommand};
use orderflow_runtime::{Decision, DomainError, Emit, Inbound, PersonalData, Service};
use sqlx::PgConnection;

pub use settings::{Rules, Settings};

use crate::commands::{Change, Command};

/// Users erased by this process (their data keys destroyed).
static ERASURES: std::sync::LazyLock<prometheus::IntCounter> = std::sync::LazyLock::new(|| {
    prometheus::register_int_counter!(
        "orderflow_erasures_total",
        "Users erased: their data emptied and their data key destroyed."
    )
    .expect("the erasures counter is registered once")
});

/// The user service's rules, run by the kit.
#[derive(Debug, Clone)]
pub struct UserService {
    admins: Vec<String>,
}

impl Service for UserService {
    type Domain = Rules;
    type Input = UserCommand;
    type Message = Command;
    const PUBLISHES: &'static [Topic] = &[users::EVENTS, users::CREDENTIALS];
    const EVENTS: Topic = users::EVENTS;
    const CONSUMES: &'static [Topic] = orderflow_contracts::topology::USER_SERVICE.consumes;
    /// It keeps every user's data key, and destroys it on erasure.
    const PERSONAL_DATA: PersonalData = PersonalData::Keeper;

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("../../migrations/users")
    }

    fn new(settings: &Settings) -> Self {
        Self { admins: settings.domain.bootstrap_admins.clone() }
    }

    async fn handle(&self, tx: &mut PgConnection, input: &Inbound<'_, Command>) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let (id, change) = match input.message {
            Command::Register(registration) => {
                let (user, events) = rules::register(registration, &self.admins, now);
                return match store::insert(tx, &user, now).await? {
                    None => Ok(events),
                    Some(conflict) => Err(rules::registration_conflict(registration, conflict).into()),
                };
            }
            Command::Change { id, change } => (*id, change),
        };
        let current = store::load_for_update(tx, id.0).await?;
        match rules::change(current, id, change, now)? {
            Decision::Changed { state: user, events } => {
                store::update(tx, &user, now).await?;
                if *change == Change::Erase {
                    // With the key gone, every sealed value of theirs, on
                    // every topic and in every copy, is unreadable.
                    orderflow_keys::destroy(tx, &id.to_string()).await?;
                    ERASURES.inc();
                }
                Ok(events)
            }
            Decision::Unchanged(_) => Ok(Vec::new()),
        }
    }
}
