//! The inventory service: its rules, its state, and the wiring to the kit.
//!
//! Consumes `inventory.commands` (create a product, update it, adjust its
//! stock); for each command the kit commits, in one transaction of the
//! `inventory` database, the inbox row, the change to `products` and the
//! resulting events in the outbox, which its relay publishes on
//! `inventory.events`. Every message about a product is keyed by its sku:
//! one product's changes are applied in order, by one worker, and its row
//! is locked while they are (`FOR UPDATE`), so two replicas never race.
//!
//! - [`commands`]: the commands as the rules read them (sku, money, counts checked).
//! - [`rules`]: what each command means (pure decisions).
//! - [`store`]: loading and saving products.
//! - [`settings`]: the service's own settings.

pub mod commands;
pub mod rules;
pub mod settings;
pub mod store;

use chrono::Utc;
use orderflow_contracts::Topic;
use orderflow_contracts::inventory::{self, InventoryCommand};
use orderflow_runtime::{Decision, DomainError, Emit, Inbound, Service};
use sqlx::PgConnection;

pub use settings::{Rules, Settings};

use crate::commands::Command;

/// The inventory service's rules, run by the kit.
#[derive(Debug, Clone, Default)]
pub struct InventoryService;

impl Service for InventoryService {
    type Domain = Rules;
    type Input = InventoryCommand;
    type Message = Command;
    const PUBLISHES: &'static [Topic] = &[inventory::EVENTS];
    const EVENTS: Topic = inventory::EVENTS;
    const CONSUMES: &'static [Topic] = &[inventory::COMMANDS];

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("../../migrations/inventory")
    }

    fn new(_: &Settings) -> Self {
        Self
    }

    async fn handle(&self, tx: &mut PgConnection, input: &Inbound<'_, Command>) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let (sku, change) = match input.message {
            Command::Create(new) => {
                let (product, events) = rules::create(new, now);
                return if store::insert(tx, &product, now).await? {
                    Ok(events)
                } else {
                    Err(rules::sku_taken(new).into())
                };
            }
            Command::Change { sku, change } => (sku, change),
        };
        let current = store::load_for_update(tx, sku).await?;
        match rules::change(current, sku, change, now)? {
            Decision::Changed { state: product, events } => {
                store::update(tx, &product, now).await?;
                Ok(events)
            }
            Decision::Unchanged(_) => Ok(Vec::new()),
        }
    }
}
