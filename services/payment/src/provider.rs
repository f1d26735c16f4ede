//! The payment provider: where money really moves. A trait, so a real
//! provider (an HTTP API) replaces the built-in one without touching the
//! rules. Every call carries an idempotency key derived from the order
//! (the payment id) or the refund, so a call repeated after a crash or a
//! redelivery moves money once.
//!
//! The service never calls the provider inside a partition's transaction:
//! a decision that needs a call names it ([`ProviderCall`]), the kit's
//! effector makes it (`orderflow_runtime::effects`), and the decision is
//! taken again with the answer.

use futures::future::BoxFuture;
use orderflow_runtime::effects::{EffectError, EffectRequest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::rules::{Action, Payment};

/// One call to the provider, as recorded for the effector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum ProviderCall {
    Authorize { payment_id: Uuid, amount: i64, currency: String },
    Capture { payment_id: Uuid, amount: i64 },
    Void { payment_id: Uuid },
    Refund { payment_id: Uuid, refund_id: Uuid, amount: i64 },
}

impl ProviderCall {
    /// The call an action on `payment` needs.
    pub fn of(payment: &Payment, action: &Action) -> Self {
        let payment_id = payment.id;
        match action {
            Action::Capture { amount } => Self::Capture { payment_id, amount: *amount },
            Action::Void => Self::Void { payment_id },
            Action::Refund { refund_id, amount, .. } => {
                Self::Refund { payment_id, refund_id: *refund_id, amount: *amount }
            }
        }
    }

    /// What it is called in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Authorize { .. } => "authorize",
            Self::Capture { .. } => "capture",
            Self::Void { .. } => "void",
            Self::Refund { .. } => "refund",
        }
    }

    /// Its id in the kit's effects: one per call, whatever the redelivery
    /// (the authorization's is the payment id; a refund's, the refund id).
    pub fn id(&self) -> Uuid {
        match self {
            Self::Authorize { payment_id, .. } => *payment_id,
            Self::Capture { payment_id, .. } => Uuid::new_v5(payment_id, b"capture"),
            Self::Void { payment_id } => Uuid::new_v5(payment_id, b"void"),
            Self::Refund { refund_id, .. } => *refund_id,
        }
    }

    pub fn request(&self) -> EffectRequest {
        EffectRequest::new(self.id(), self.kind(), serde_json::to_value(self).expect("a provider call is plain data"))
    }

    /// Makes the call; an authorization answers with its [`Authorization`],
    /// the others with `null`.
    pub async fn make(&self, provider: &dyn PaymentProvider) -> Result<serde_json::Value, EffectError> {
        let failed = |e: ProviderError| EffectError(e.to_string());
        match self {
            Self::Authorize { payment_id, amount, currency } => {
                let answer = provider.authorize(*payment_id, *amount, currency).await.map_err(failed)?;
                Ok(serde_json::to_value(answer).expect("an authorization is plain data"))
            }
            Self::Capture { payment_id, amount } => {
                provider.capture(*payment_id, *amount).await.map_err(failed).map(|()| serde_json::Value::Null)
            }
            Self::Void { payment_id } => {
                provider.void(*payment_id).await.map_err(failed).map(|()| serde_json::Value::Null)
            }
            Self::Refund { payment_id, refund_id, amount } => provider
                .refund(*payment_id, *refund_id, *amount)
                .await
                .map_err(failed)
                .map(|()| serde_json::Value::Null),
        }
    }
}

/// What the provider said to an authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Authorization {
    Authorized { reference: String },
    Declined { reason: String, message: String },
}

/// The provider could not be reached or failed: worth retrying later
/// (the call is idempotent).
#[derive(Debug, thiserror::Error)]
#[error("payment provider: {0}")]
pub struct ProviderError(pub String);

pub trait PaymentProvider: Send + Sync + std::fmt::Debug + 'static {
    /// Reserves `amount` minor units of `currency` for payment `payment_id`.
    fn authorize(
        &self,
        payment_id: Uuid,
        amount: i64,
        currency: &str,
    ) -> BoxFuture<'_, Result<Authorization, ProviderError>>;
    /// Takes `amount` of the authorization.
    fn capture(&self, payment_id: Uuid, amount: i64) -> BoxFuture<'_, Result<(), ProviderError>>;
    /// Releases an authorization that will not be captured.
    fn void(&self, payment_id: Uuid) -> BoxFuture<'_, Result<(), ProviderError>>;
    /// Gives back `amount` of a capture; `refund_id` is its idempotency key.
    fn refund(&self, payment_id: Uuid, refund_id: Uuid, amount: i64) -> BoxFuture<'_, Result<(), ProviderError>>;
}

/// The built-in, deterministic provider: it declines any amount above
/// `decline_above` (`AMOUNT_ABOVE_LIMIT`) and authorizes the rest; every
/// capture, void and refund succeeds. Its reference is `builtin-<payment id>`.
#[derive(Debug, Clone)]
pub struct BuiltinProvider {
    pub decline_above: i64,
}

impl PaymentProvider for BuiltinProvider {
    fn authorize(
        &self,
        payment_id: Uuid,
        amount: i64,
        currency: &str,
    ) -> BoxFuture<'_, Result<Authorization, ProviderError>> {
        let outcome = if amount > self.decline_above {
            Authorization::Declined {
                reason: "AMOUNT_ABOVE_LIMIT".into(),
                message: format!("{amount} {currency} is above the limit of {} {currency}", self.decline_above),
            }
        } else {
            Authorization::Authorized { reference: format!("builtin-{payment_id}") }
        };
        Box::pin(async move { Ok(outcome) })
    }

    fn capture(&self, _payment_id: Uuid, _amount: i64) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn void(&self, _payment_id: Uuid) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn refund(&self, _payment_id: Uuid, _refund_id: Uuid, _amount: i64) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
}
