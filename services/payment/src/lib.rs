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
use orderflow_contracts::orders::{self, OrderEvent};
use orderflow_contracts::payments::{self, PaymentCommand};
use orderflow_contracts::{Reason, Topic};
use orderflow_runtime::effects::{self, Called, Effect, EffectError};
use orderflow_runtime::{DomainError, Emit, Inbound, Refusal, Service};
use sqlx::PgConnection;
use uuid::Uuid;

pub use settings::{Rules, Settings};

use crate::provider::{Authorization, BuiltinProvider, PaymentProvider, ProviderCall};
use crate::rules::Outcome;

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
        Uuid::parse_str(raw).map_err(|_| Refusal::new(Reason::InvalidId, format!("order_id `{raw}` is not a uuid")))
    }

    async fn on_order(&self, tx: &mut PgConnection, event: &OrderEvent) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let outcome = match event {
            OrderEvent::Placed(placed) => {
                let (order_id, customer_id) = rules::order_ids(placed)?;
                if store::load_for_update(tx, order_id).await?.is_some() {
                    return Ok(Vec::new()); // one payment per order
                }
                let call = ProviderCall::Authorize {
                    payment_id: rules::payment_id(order_id),
                    amount: placed.total,
                    currency: placed.currency.clone(),
                };
                let decision = match effects::outcome(tx, call.request()).await? {
                    Called::Done(answer) => serde_json::from_value(answer).map_err(|e| {
                        Refusal::new(
                            Reason::ProviderAnswerInvalid,
                            format!("the recorded authorization is unreadable: {e}"),
                        )
                    })?,
                    // The budget is spent: the order cannot be paid now.
                    Called::Failed(error) => Authorization::Declined {
                        reason: Reason::ProviderUnavailable.as_str().into(),
                        message: format!("the payment provider could not authorize the payment: {error}"),
                    },
                };
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

    /// Saves a decision once the provider call it needs has been made
    /// (outside this transaction: [`effects::outcome`] parks the input
    /// until then). A call that failed its whole budget refuses the input:
    /// a refund command is rejected, an order event dead-lettered for an
    /// operator.
    async fn save(&self, tx: &mut PgConnection, outcome: Outcome) -> Result<Vec<Emit>, DomainError> {
        match outcome {
            Outcome::Changed { payment, action, events } => {
                if let Some(action) = &action {
                    let call = ProviderCall::of(&payment, action);
                    if let Called::Failed(error) = effects::outcome(tx, call.request()).await? {
                        let message = format!("the payment provider could not {}: {error}", call.kind());
                        return Err(Refusal::new(Reason::ProviderUnavailable, message).into());
                    }
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

    async fn perform(&self, effect: &Effect) -> Result<serde_json::Value, EffectError> {
        let call: ProviderCall = serde_json::from_value(effect.call.clone())
            .map_err(|e| EffectError(format!("the recorded call is not a provider call: {e}")))?;
        call.make(self.provider.as_ref()).await
    }

    fn rejection(&self, input: &Inbound<'_, PaymentInput>, refusal: &Refusal) -> Option<Emit> {
        // Only commands have someone waiting for an answer.
        let PaymentInput::Command(PaymentCommand::Refund(cmd)) = &input.message else { return None };
        Some(rules::rejected(cmd, refusal.reason, refusal.message.clone()))
    }
}
