//! The payment service: its rules, its provider, its state, and the wiring
//! to the kit.
//!
//! Reacts to `orders.events` — authorizes a placed order's total, captures
//! once the order is confirmed, voids or refunds once it is cancelled — and
//! takes `payments.commands` (an admin's refund). Each input is one
//! transaction of the `payments` database: inbox row, change, outbox rows
//! (`payments.events`, keyed by the order id). docs/orders.md has the saga.
//!
//! - [`rules`]: what each input means (pure decisions).
//! - [`provider`]: the payment-provider trait and the built-in provider.
//! - [`store`]: loading and saving payments.

pub mod provider;
pub mod rules;
pub mod settings;
pub mod store;

use std::sync::Arc;

use chrono::Utc;
use orderflow_contracts::Topic;
use orderflow_contracts::orders::{self, OrderEvent};
use orderflow_contracts::payments::{self, PaymentCommand};
use orderflow_runtime::{DomainError, Emit, Inbound, Refusal, Service};
use sqlx::PgConnection;
use uuid::Uuid;

pub use settings::{Rules, Settings};

use crate::provider::{BuiltinProvider, PaymentProvider, ProviderError};
use crate::rules::{Action, Outcome, Payment};

orderflow_contracts::union_family!(PaymentInput {
    Command(PaymentCommand),
    Order(OrderEvent),
});

/// The payment service's rules, run by the kit.
#[derive(Debug, Clone)]
pub struct PaymentService {
    provider: Arc<dyn PaymentProvider>,
}

impl PaymentService {
    /// The service with another provider (a real one, or a test's).
    pub fn with_provider(provider: Arc<dyn PaymentProvider>) -> Self {
        Self { provider }
    }

    fn order_id(raw: &str) -> Result<Uuid, Refusal> {
        Uuid::parse_str(raw).map_err(|_| Refusal::new("INVALID_ID", format!("order_id `{raw}` is not a uuid")))
    }

    async fn on_order(&self, tx: &mut PgConnection, event: &OrderEvent) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let outcome = match event {
            OrderEvent::Placed(placed) => {
                let (order_id, customer_id) = rules::order_ids(placed)?;
                if store::load_for_update(tx, order_id).await?.is_some() {
                    return Ok(Vec::new()); // one payment per order
                }
                let decision = self
                    .provider
                    .authorize(rules::payment_id(order_id), placed.total, &placed.currency)
                    .await
                    .map_err(unavailable)?;
                rules::opened(placed, order_id, customer_id, decision, now)
            }
            OrderEvent::Confirmed(e) => {
                rules::capture(store::load_for_update(tx, Self::order_id(&e.order_id)?).await?, now)
            }
            OrderEvent::Cancelled(e) => {
                rules::release(store::load_for_update(tx, Self::order_id(&e.order_id)?).await?, now)
            }
            OrderEvent::Shipped(_) | OrderEvent::Delivered(_) | OrderEvent::Rejected(_) => return Ok(Vec::new()),
        };
        self.save(tx, outcome).await
    }

    /// Makes the provider call a decision needs, then saves it. A failed
    /// call rolls the transaction back and is retried (idempotently).
    async fn save(&self, tx: &mut PgConnection, outcome: Outcome) -> Result<Vec<Emit>, DomainError> {
        match outcome {
            Outcome::Changed { payment, action, events } => {
                if let Some(action) = &action {
                    self.act(&payment, action).await.map_err(unavailable)?;
                }
                store::save(tx, &payment, action.as_ref(), Utc::now()).await?;
                Ok(events)
            }
            Outcome::Rejected(rejection) => Ok(vec![rejection]),
            Outcome::Ignored(why) => {
                tracing::info!(why, "input changes nothing");
                Ok(Vec::new())
            }
        }
    }

    async fn act(&self, payment: &Payment, action: &Action) -> Result<(), ProviderError> {
        match action {
            Action::Capture { amount } => self.provider.capture(payment.id, *amount).await,
            Action::Void => self.provider.void(payment.id).await,
            Action::Refund { refund_id, amount, .. } => self.provider.refund(payment.id, *refund_id, *amount).await,
        }
    }
}

/// A provider failure: the input can be acted on later.
fn unavailable(error: ProviderError) -> DomainError {
    DomainError::NotYet(error.to_string())
}

impl Service for PaymentService {
    type Domain = Rules;
    type Input = PaymentInput;
    const PUBLISHES: &'static [Topic] = &[payments::EVENTS];
    const CONSUMES: &'static [Topic] = &[payments::COMMANDS, orders::EVENTS];

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("../../migrations/payments")
    }

    fn new(settings: &Settings) -> Self {
        Self::with_provider(Arc::new(BuiltinProvider { decline_above: settings.domain.decline_above }))
    }

    async fn handle(&self, tx: &mut PgConnection, input: &Inbound<'_, PaymentInput>) -> Result<Vec<Emit>, DomainError> {
        match &input.message {
            PaymentInput::Order(event) => self.on_order(tx, event).await,
            PaymentInput::Command(PaymentCommand::Refund(cmd)) => {
                let current = store::load_for_update(tx, Self::order_id(&cmd.order_id)?).await?;
                let outcome = rules::requested_refund(current, cmd, input.headers.message_id, Utc::now());
                self.save(tx, outcome).await
            }
        }
    }

    fn rejection(&self, input: &Inbound<'_, PaymentInput>, refusal: &Refusal) -> Option<Emit> {
        // Only commands have someone waiting for an answer.
        let PaymentInput::Command(PaymentCommand::Refund(cmd)) = &input.message else { return None };
        Some(rules::rejected(cmd, &refusal.reason, refusal.message.clone()))
    }
}
