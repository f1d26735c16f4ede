//! The inventory service: its rules, its state, and the wiring to the kit.
//!
//! Consumes `inventory.commands` (create a product, update it, adjust its
//! stock) and `orders.events` (an order placed holds its lines, confirmed
//! sells them, cancelled puts them up for sale again); for each the kit
//! commits, in one transaction of the `inventory` database, the inbox row,
//! the change and the resulting events in the outbox, which its relay
//! publishes on `inventory.events`. Commands are keyed by sku, order events
//! by order: an order spans products, so products are row-locked while
//! they change (`FOR UPDATE`, in sku order: two orders never wait on each
//! other in a cycle), and no lock is wider than the products an input
//! names.
//!
//! - [`input`]: what it reads, as the rules read it (sku, money, counts checked).
//! - [`rules`]: what each command means to a product (pure decisions).
//! - [`reservations`]: what an order does to stock (pure decisions).
//! - [`store`]: loading and saving products and reservations.
//! - [`settings`]: the service's own settings.

pub mod input;
pub mod reservations;
pub mod rules;
pub mod settings;
pub mod store;

use chrono::Utc;
use orderflow_contracts::Topic;
use orderflow_contracts::inventory;
use orderflow_runtime::{Decided, Decision, DomainError, Emit, Inbound, Service};
use sqlx::PgConnection;

pub use settings::{Rules, Settings};

use crate::input::{Input, InventoryInput};
use crate::reservations::Stock;

/// The inventory service's rules, run by the kit.
#[derive(Debug, Clone, Default)]
pub struct InventoryService;

impl Service for InventoryService {
    type Domain = Rules;
    type Input = InventoryInput;
    type Message = Input;
    const PUBLISHES: &'static [Topic] = &[inventory::EVENTS];
    const EVENTS: Topic = inventory::EVENTS;
    const CONSUMES: &'static [Topic] = orderflow_contracts::topology::INVENTORY_SERVICE.consumes;

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("../../migrations/inventory")
    }

    /// An event of a type it reads past is acknowledged without a transaction.
    fn acts_on(&self, message: &Input) -> bool {
        !matches!(message, Input::Other(_))
    }

    fn new(_: &Settings) -> Self {
        Self
    }

    /// Locks every product the run's inputs name — the lines of the orders
    /// it reserves, the products the reservations it sells or releases
    /// hold, the products it changes — in sku order, in one statement:
    /// each input then finds its rows locked already, and two runs never
    /// wait on each other in a cycle. (Each order locking its own products
    /// in sku order was not enough: a run held one order's locks while it
    /// took the next one's, and runs deadlocked under load.)
    async fn prepare(&self, tx: &mut PgConnection, messages: &[&Input]) -> Result<(), sqlx::Error> {
        let (mut skus, mut orders) = (Vec::new(), Vec::new());
        for message in messages {
            match message {
                Input::Reserve(placement) => skus.extend(placement.lines.iter().map(|l| l.sku.as_str())),
                Input::Change { sku, .. } => skus.push(sku.as_str()),
                Input::Commit { order } | Input::Release { order, .. } => orders.push(order.0),
                Input::Create(_) | Input::Other(_) => {}
            }
        }
        store::lock_run(tx, &skus, &orders).await
    }

    async fn handle(&self, tx: &mut PgConnection, input: &Inbound<'_, Input>) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let (sku, change) = match input.message {
            Input::Create(new) => {
                let (product, events) = rules::create(new, now);
                return if store::insert(tx, &product, now).await? {
                    Ok(events)
                } else {
                    Err(rules::sku_taken(new).into())
                };
            }
            Input::Change { sku, change } => (sku, change),
            Input::Reserve(placement) => {
                let existing = store::reservation(tx, placement.order).await?;
                let skus: Vec<&str> = placement.lines.iter().map(|l| l.sku.as_str()).collect();
                let products = store::lock_products(tx, &skus).await?;
                let decided = reservations::reserve(placement, existing.as_ref(), &products, now);
                return save_stock(tx, decided, now).await;
            }
            Input::Commit { order } => {
                let (reservation, products) = load_reservation(tx, *order).await?;
                return save_stock(tx, reservations::commit(reservation, &products, now), now).await;
            }
            Input::Release { order, reason } => {
                let (reservation, products) = load_reservation(tx, *order).await?;
                return save_stock(tx, reservations::release(reservation, &products, reason, now), now).await;
            }
            Input::Other(_) => return Ok(Vec::new()),
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

/// An order's reservation (locked) and its products (locked, in sku order).
async fn load_reservation(
    tx: &mut PgConnection,
    order: orderflow_contracts::ids::OrderId,
) -> Result<(Option<reservations::Reservation>, reservations::Products), sqlx::Error> {
    let reservation = store::reservation(tx, order).await?;
    let skus: Vec<&str> = reservation.iter().flat_map(|r| r.lines.iter().map(|(sku, _)| sku.as_str())).collect();
    let products = store::lock_products(tx, &skus).await?;
    Ok((reservation, products))
}

async fn save_stock(
    tx: &mut PgConnection,
    decided: Decided<Stock>,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<Emit>, DomainError> {
    match decided? {
        Decision::Changed { state, events } => {
            store::save(tx, &state, now).await?;
            Ok(events)
        }
        // (A republished OrderPlaced, an order that holds nothing.)
        Decision::Unchanged(_) => Ok(Vec::new()),
    }
}
