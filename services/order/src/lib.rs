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
//! - [`rules`]: what each input means (pure decisions).
//! - [`store`]: loading and saving orders and customers.
//! - [`settings`]: the deadline and the grace for new customers.

pub mod rules;
pub mod settings;
pub mod store;

use std::time::Duration;

use chrono::Utc;
use orderflow_bus::Headers;
use orderflow_contracts::orders::{self, OrderCommand};
use orderflow_contracts::payments::{self, PaymentEvent};
use orderflow_contracts::users::{self, UserEvent};
use orderflow_contracts::{Family, Reason, Topic};
use orderflow_runtime::{DomainError, Emit, Inbound, Refusal, Scheduled, Service};
use sqlx::PgConnection;

pub use settings::{Rules, Settings};

use crate::rules::{Moved, Origin, Outcome, Status, Timing};

orderflow_contracts::union_family!(OrderInput {
    Command(OrderCommand),
    User(UserEvent),
    Payment(PaymentEvent),
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
    async fn on_command(
        &self,
        tx: &mut PgConnection,
        input: &Inbound<'_, OrderInput>,
        command: &OrderCommand,
    ) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let (raw_id, to) = match command {
            OrderCommand::Place(cmd) => {
                let customer_id = rules::id("customer_id", &cmd.customer_id)?;
                let customer = store::customer(tx, customer_id).await?;
                if customer.is_none() && now - input.headers.occurred_at < self.grace {
                    return Err(DomainError::NotYet(format!("customer {customer_id} is not known here yet")));
                }
                let origin = Origin {
                    command_id: input.headers.message_id,
                    correlation_id: input.headers.correlation_id.clone(),
                    traceparent: input.headers.traceparent.clone(),
                };
                return match rules::place(cmd, customer, origin, now, self.deadline)? {
                    Outcome::Changed { order, events } => {
                        if store::insert(tx, &order).await? {
                            Ok(events)
                        } else {
                            let message = format!("an order with id {} exists already", cmd.order_id);
                            Ok(vec![rules::rejected(&cmd.order_id, "PlaceOrder", Reason::OrderExists, message)])
                        }
                    }
                    Outcome::Rejected(rejection) => Ok(vec![rejection]),
                    Outcome::Ignored(_) => Ok(Vec::new()),
                    Outcome::NotYet(why) => Err(DomainError::NotYet(why)),
                };
            }
            OrderCommand::Cancel(cmd) => (&cmd.order_id, Status::Cancelled),
            OrderCommand::Ship(cmd) => (&cmd.order_id, Status::Shipped),
            OrderCommand::Deliver(cmd) => (&cmd.order_id, Status::Delivered),
        };
        let current = store::load_for_update(tx, rules::id("order_id", raw_id)?).await?;
        let timing = Timing { now, sent_at: input.headers.occurred_at, capture_grace: self.capture_grace };
        self.save(tx, rules::command(current, raw_id, command.name(), to, timing)).await
    }

    async fn on_payment(&self, tx: &mut PgConnection, event: &PaymentEvent) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let outcome = match event {
            PaymentEvent::Authorized(e) => {
                let current = store::load_for_update(tx, rules::id("order_id", &e.order_id)?).await?;
                rules::payment_authorized(current, rules::id("payment_id", &e.payment_id)?, now)
            }
            PaymentEvent::Declined(e) => {
                let current = store::load_for_update(tx, rules::id("order_id", &e.order_id)?).await?;
                rules::payment_declined(current, &e.message, now)
            }
            // The money, for the shipping guard: recorded on the order,
            // publishing nothing. (A void follows a cancellation: nothing
            // changes for the order.)
            PaymentEvent::Captured(e) => {
                let current = store::load_for_update(tx, rules::id("order_id", &e.order_id)?).await?;
                rules::money_moved(current, Moved::Captured { amount: e.amount }, e.version)
            }
            PaymentEvent::Refunded(e) => {
                let current = store::load_for_update(tx, rules::id("order_id", &e.order_id)?).await?;
                rules::money_moved(current, Moved::Refunded { total: e.refunded_total }, e.version)
            }
            _ => return Ok(Vec::new()),
        };
        self.save(tx, outcome).await
    }

    async fn on_user(&self, tx: &mut PgConnection, event: &UserEvent) -> Result<Vec<Emit>, DomainError> {
        match event {
            UserEvent::Registered(e) => {
                store::save_customer(tx, rules::id("user_id", &e.user_id)?, true, e.version).await?
            }
            UserEvent::Deactivated(e) => {
                store::save_customer(tx, rules::id("user_id", &e.user_id)?, false, e.version).await?;
            }
            _ => {}
        }
        Ok(Vec::new())
    }

    async fn save(&self, tx: &mut PgConnection, outcome: Outcome) -> Result<Vec<Emit>, DomainError> {
        match outcome {
            Outcome::Changed { order, events } => {
                store::update(tx, &order, Utc::now()).await?;
                Ok(events)
            }
            Outcome::Rejected(rejection) => Ok(vec![rejection]),
            Outcome::Ignored(why) => {
                tracing::info!(why, "input changes nothing");
                Ok(Vec::new())
            }
            Outcome::NotYet(why) => Err(DomainError::NotYet(why)),
        }
    }
}

impl Service for OrderService {
    type Domain = Rules;
    type Input = OrderInput;
    const PUBLISHES: &'static [Topic] = &[orders::EVENTS];
    const CONSUMES: &'static [Topic] = &[orders::COMMANDS, users::EVENTS, payments::EVENTS];

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("../../migrations/orders")
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

    async fn handle(&self, tx: &mut PgConnection, input: &Inbound<'_, OrderInput>) -> Result<Vec<Emit>, DomainError> {
        match &input.message {
            OrderInput::Command(command) => self.on_command(tx, input, command).await,
            OrderInput::Payment(event) => self.on_payment(tx, event).await,
            OrderInput::User(event) => self.on_user(tx, event).await,
        }
    }

    fn rejection(&self, input: &Inbound<'_, OrderInput>, refusal: &Refusal) -> Option<Emit> {
        // Only commands have someone waiting for an answer.
        let OrderInput::Command(command) = &input.message else { return None };
        Some(rules::rejected(&command.key(), command.name(), refusal.reason, refusal.message.clone()))
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
            if let Outcome::Changed { order, events } = rules::payment_timed_out(order, now) {
                store::update(tx, &order, now).await?;
                tracing::info!(order_id = %order.id, "payment deadline passed; order cancelled");
                let cause = Headers {
                    message_id: origin.command_id,
                    message_type: "PlaceOrder".into(),
                    correlation_id: origin.correlation_id,
                    causation_id: origin.command_id.to_string(),
                    occurred_at: now,
                    traceparent: origin.traceparent,
                    actor: "system".into(),
                };
                scheduled.push(Scheduled { cause, emits: events });
            }
        }
        Ok(scheduled)
    }
}
