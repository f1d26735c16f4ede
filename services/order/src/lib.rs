//! The order service: its rules, its state, and the wiring to the kit.
//!
//! Consumes `orders.commands` (place, cancel, ship, deliver), `users.events`
//! (who may order) and `payments.events` (the saga's answers, and the
//! captures and refunds that decide whether an order may ship); for each the
//! kit commits, in one transaction of the `orders` database, the inbox row,
//! the change and the resulting events in the outbox, which its relay
//! publishes on `orders.events`. A scheduled scan cancels PENDING orders
//! whose payment deadline passed (`PAYMENT_TIMEOUT`). docs/orders.md has
//! the saga and its state diagrams.
//!
//! - [`input`]: what it reads, as the rules read it (ids parsed).
//! - [`rules`]: what each input means (pure decisions).
//! - [`store`]: loading and saving orders and customers.
//! - [`settings`]: the deadline and the grace for new customers.

pub mod input;
pub mod rules;
pub mod settings;
pub mod store;

use std::time::Duration;

use chrono::Utc;
use orderflow_bus::Cause;
use orderflow_contracts::inventory::InventoryEvent;
use orderflow_contracts::orders::{self, OrderCommand};
use orderflow_contracts::payments::PaymentEvent;
use orderflow_contracts::users::UserEvent;
use orderflow_contracts::{Reason, Topic};
use orderflow_runtime::{Decision, DomainError, Emit, Inbound, PersonalData, Refusal, Scheduled, Service};
use sqlx::PgConnection;

pub use settings::{Rules, Settings};

use crate::input::{Input, Placement};
use crate::rules::{Origin, Outcome, Timing};
orderflow_contracts::union_family!(OrderInput {
    Command(OrderCommand),
    User(UserEvent),
    Payment(PaymentEvent),
    Stock(InventoryEvent),
});

/// Orders whose deadline passed handled per scheduled transaction at most.
const OVERDUE_BATCH: i64 = 200;

/// The order service's rules, run by the kit.
#[derive(Debug, Clone)]
pub struct OrderService {
    deadline: chrono::Duration,
    check_every: Duration,
    grace: chrono::Duration,
    capture_grace: chrono::Duration,
}

impl OrderService {
    /// A `PlaceOrder`: the customer must be known here (within a grace, it
    /// may still be on its way) and the order id new.
    async fn place(
        &self,
        tx: &mut PgConnection,
        input: &Inbound<'_, Input>,
        cmd: &Placement,
    ) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let customer = store::customer(tx, cmd.customer.0).await?;
        if customer.is_none() && now - input.headers.occurred_at < self.grace {
            return Err(DomainError::NotYet(format!("customer {} is not known here yet", cmd.customer)));
        }
        let origin = Origin {
            command_id: input.headers.message_id,
            correlation_id: input.headers.correlation_id.clone(),
            traceparent: input.headers.traceparent.clone(),
        };
        match rules::place(cmd, customer, origin, now, self.deadline)? {
            Decision::Changed { state: order, events } => {
                if store::insert(tx, &order).await? {
                    Ok(events)
                } else {
                    let message = format!("an order with id {} exists already", cmd.id);
                    Err(Refusal::new(Reason::OrderExists, message).into())
                }
            }
            Decision::Unchanged(_) => Ok(Vec::new()),
        }
    }

    async fn save(&self, tx: &mut PgConnection, outcome: Outcome) -> Result<Vec<Emit>, DomainError> {
        match outcome? {
            Decision::Changed { state: order, events } => {
                store::update(tx, &order, Utc::now()).await?;
                Ok(events)
            }
            Decision::Unchanged(why) => {
                tracing::info!(why, "input changes nothing");
                Ok(Vec::new())
            }
        }
    }
}

impl Service for OrderService {
    type Domain = Rules;
    type Input = OrderInput;
    type Message = Input;
    const PUBLISHES: &'static [Topic] = &[orders::EVENTS];
    const EVENTS: Topic = orders::EVENTS;
    const CONSUMES: &'static [Topic] = orderflow_contracts::topology::ORDER_SERVICE.consumes;
    /// An order's address is its customer's: sealed with their key.
    const PERSONAL_DATA: PersonalData = PersonalData::Seals;

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("../../migrations/orders")
    }

    /// An event of a type it reads past is acknowledged without a transaction.
    fn acts_on(&self, message: &Input) -> bool {
        !matches!(message, Input::Other(_))
    }

    fn new(settings: &Settings) -> Self {
        let rules = &settings.domain;
        let seconds = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1_000_000));
        Self {
            deadline: seconds(rules.payment_deadline_secs),
            check_every: Duration::from_millis(rules.deadline_check_ms),
            grace: seconds(rules.customer_grace_secs),
            capture_grace: seconds(rules.capture_grace_secs),
        }
    }

    async fn handle(&self, tx: &mut PgConnection, input: &Inbound<'_, Input>) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let outcome = match input.message {
            Input::Place(cmd) => return self.place(tx, input, cmd).await,
            Input::Move { id, to } => {
                let timing = Timing { now, sent_at: input.headers.occurred_at, capture_grace: self.capture_grace };
                rules::command(store::load_for_update(tx, id.0).await?, &id.to_string(), *to, timing)
            }
            Input::Authorized { order, payment } => {
                rules::payment_authorized(store::load_for_update(tx, order.0).await?, *payment, now)
            }
            Input::Declined { order, message } => {
                rules::payment_declined(store::load_for_update(tx, order.0).await?, message, now)
            }
            Input::StockHeld { order } => rules::stock_held(store::load_for_update(tx, order.0).await?, now),
            Input::NotInStock { order, reason, message } => {
                rules::stock_not_held(store::load_for_update(tx, order.0).await?, reason, message, now)
            }
            // The money, for the shipping guard: recorded on the order,
            // publishing nothing.
            Input::Paid { order, moved, version } => {
                rules::money_moved(store::load_for_update(tx, order.0).await?, *moved, *version)
            }
            Input::Customer { id, active, version } => {
                store::save_customer(tx, id.0, *active, *version).await?;
                return Ok(Vec::new());
            }
            Input::Erased { id, version } => {
                store::save_customer(tx, id.0, false, *version).await?;
                store::erase_customer(tx, id.0).await?;
                return Ok(Vec::new());
            }
            // (A void follows a cancellation: nothing changes for the order.)
            Input::Other(_) => return Ok(Vec::new()),
        };
        self.save(tx, outcome).await
    }

    fn schedule(&self) -> Option<Duration> {
        Some(self.check_every)
    }

    /// Cancels PENDING orders whose payment deadline passed, as caused by
    /// the command that placed each (same correlation and trace; the
    /// actor is `system`).
    async fn due(&self, tx: &mut PgConnection) -> Result<Vec<Scheduled>, DomainError> {
        let now = Utc::now();
        let mut scheduled = Vec::new();
        for order in store::overdue(tx, OVERDUE_BATCH).await? {
            let origin = order.origin.clone();
            if let Ok(Decision::Changed { state: order, events }) = rules::payment_timed_out(order, now) {
                store::update(tx, &order, now).await?;
                tracing::info!(order_id = %order.id, "payment deadline passed; order cancelled");
                let cause = Cause {
                    message_id: origin.command_id,
                    correlation_id: origin.correlation_id,
                    traceparent: origin.traceparent,
                    actor: "system".into(),
                };
                scheduled.push(Scheduled { cause, emits: events });
            }
        }
        Ok(scheduled)
    }
}
