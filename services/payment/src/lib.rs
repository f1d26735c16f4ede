//! The payment service: its rules, its provider, its state, and the wiring
//! to the kit.
//!
//! Reacts to `orders.events` — authorizes a placed order's total, captures
//! once the order is confirmed, voids or refunds once it is cancelled — and
//! takes `payments.commands` (an admin's refund). Each input is one
//! transaction of the `payments` database: inbox row, change, outbox rows
//! (`payments.events`, keyed by the order id). docs/orders.md has the saga.
//!
//! - [`input`]: what it reads, as the rules read it (ids parsed).
//! - [`rules`]: what each input means (pure decisions).
//! - [`provider`]: the payment-provider trait and the built-in provider.
//! - [`store`]: loading and saving payments.

pub mod input;
pub mod provider;
pub mod rules;
pub mod settings;
pub mod store;

use std::sync::Arc;

use chrono::Utc;
use orderflow_contracts::orders::OrderEvent;
use orderflow_contracts::payments::{self, PaymentCommand};
use orderflow_contracts::{Reason, Topic};
use orderflow_runtime::effects::{self, Called, Effect, EffectError};
use orderflow_runtime::{Decision, DomainError, Emit, Inbound, Refusal, Service};
use sqlx::PgConnection;

pub use settings::{Rules, Settings};

use crate::input::{Input, Placed};
use crate::provider::{Authorization, BuiltinProvider, PaymentProvider, ProviderCall};
use crate::rules::{Outcome, Step};

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

    fn authorization(placed: &Placed) -> ProviderCall {
        ProviderCall::Authorize {
            payment_id: rules::payment_id(placed.order.0),
            amount: placed.total,
            currency: placed.currency.clone(),
        }
    }

    /// A placed order: one payment, authorized for its total (the call is
    /// made outside this transaction: [`effects::outcome`] parks the input
    /// until it is).
    async fn open(&self, tx: &mut PgConnection, placed: &Placed) -> Result<Vec<Emit>, DomainError> {
        if store::load_for_update(tx, placed.order.0).await?.is_some() {
            return Ok(Vec::new()); // one payment per order
        }
        let decision = match effects::outcome(tx, Self::authorization(placed).request()).await? {
            Called::Done(answer) => serde_json::from_value(answer).map_err(|e| {
                Refusal::new(Reason::ProviderAnswerInvalid, format!("the recorded authorization is unreadable: {e}"))
            })?,
            // The budget is spent: the order cannot be paid now.
            Called::Failed(error) => Authorization::Declined {
                reason: Reason::ProviderUnavailable.as_str().into(),
                message: format!("the payment provider could not authorize the payment: {error}"),
            },
        };
        self.save(tx, rules::opened(placed, decision, Utc::now())).await
    }

    /// Saves a decision once the provider call it needs has been made
    /// (outside this transaction: [`effects::outcome`] parks the input
    /// until then). A call that failed its whole budget refuses the input:
    /// a refund command is rejected, an order event dead-lettered for an
    /// operator.
    async fn save(&self, tx: &mut PgConnection, outcome: Outcome) -> Result<Vec<Emit>, DomainError> {
        match outcome? {
            Decision::Changed { state: Step { payment, action }, events } => {
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
            Decision::Unchanged(why) => {
                tracing::info!(why, "input changes nothing");
                Ok(Vec::new())
            }
        }
    }
}

impl Service for PaymentService {
    type Domain = Rules;
    type Input = PaymentInput;
    type Message = Input;
    const PUBLISHES: &'static [Topic] = &[payments::EVENTS];
    const EVENTS: Topic = payments::EVENTS;
    const CONSUMES: &'static [Topic] = orderflow_contracts::topology::PAYMENT_SERVICE.consumes;

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("../../migrations/payments")
    }

    /// An event of a type it reads past is acknowledged without a transaction.
    fn acts_on(&self, message: &Input) -> bool {
        !matches!(message, Input::Other(_))
    }

    fn new(settings: &Settings) -> Self {
        Self::with_provider(Arc::new(BuiltinProvider { decline_above: settings.domain.decline_above }))
    }

    async fn handle(&self, tx: &mut PgConnection, input: &Inbound<'_, Input>) -> Result<Vec<Emit>, DomainError> {
        let now = Utc::now();
        let outcome = match input.message {
            Input::Placed(placed) => return self.open(tx, placed).await,
            Input::Confirmed { order } => rules::capture(store::load_for_update(tx, order.0).await?, now),
            Input::Cancelled { order } => rules::release(store::load_for_update(tx, order.0).await?, now),
            Input::Refund(refund) => {
                let current = store::load_for_update(tx, refund.order.0).await?;
                rules::requested_refund(current, refund, input.headers.message_id, now)
            }
            Input::Other(_) => return Ok(Vec::new()),
        };
        self.save(tx, outcome).await
    }

    /// A placed order's authorization, named from the order alone, so that
    /// it is usually answered before the order is handled (once).
    fn calls(&self, message: &Input) -> Vec<effects::EffectRequest> {
        match message {
            Input::Placed(placed) => vec![Self::authorization(placed).request()],
            _ => Vec::new(),
        }
    }

    async fn perform(&self, effect: &Effect) -> Result<serde_json::Value, EffectError> {
        let call: ProviderCall = serde_json::from_value(effect.call.clone())
            .map_err(|e| EffectError(format!("the recorded call is not a provider call: {e}")))?;
        call.make(self.provider.as_ref()).await
    }
}
