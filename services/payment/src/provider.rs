//! The payment provider: where money really moves. A trait, so a real
//! provider (an HTTP API) replaces the built-in one without touching the
//! rules. Every call carries an idempotency key derived from the order
//! (the payment id) or the refund, so a call repeated after a crash or a
//! redelivery moves money once.

use futures::future::BoxFuture;
use uuid::Uuid;

/// What the provider said to an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
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
