//! What each input means to a payment: pure decisions over the current
//! state of one order's payment, testable without a database or provider.
//! A decision that moves money names the provider call ([`Action`]) the
//! service makes before it saves the new state; the call is idempotent, so
//! a retry after a crash moves money once.
//!
//! One payment per order, whatever the redelivery: its id is derived from
//! the order id ([`payment_id`]). Money never goes back twice: a refund is
//! at most what was captured minus what was refunded.

use chrono::{DateTime, Utc};
use orderflow_contracts::Reason;
use orderflow_contracts::orders::OrderPlaced;
use orderflow_contracts::payments::{
    self, ORDER_CANCELLED, PaymentAuthorized, PaymentCaptured, PaymentCommandRejected, PaymentDeclined,
    PaymentRefunded, PaymentVoided, REQUESTED, RefundPayment,
};
use orderflow_runtime::{Emit, Refusal};
use uuid::Uuid;

use crate::provider::Authorization;

/// Names the payment ids of orders (UUIDv5 of the order id).
const PAYMENT_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7266_6c6f_7770_6179_6d65_6e74);

/// The one payment id of an order.
pub fn payment_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&PAYMENT_NAMESPACE, order_id.as_bytes())
}

/// The id (and provider idempotency key) of a refund: the automatic one of
/// a cancelled order, or the one a command asked for.
pub fn refund_id(payment_id: Uuid, cause: &str) -> Uuid {
    Uuid::new_v5(&payment_id, cause.as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Authorized,
    Declined,
    Captured,
    PartiallyRefunded,
    Refunded,
    Voided,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Authorized => "AUTHORIZED",
            Status::Declined => "DECLINED",
            Status::Captured => "CAPTURED",
            Status::PartiallyRefunded => "PARTIALLY_REFUNDED",
            Status::Refunded => "REFUNDED",
            Status::Voided => "VOIDED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        use Status::*;
        [Authorized, Declined, Captured, PartiallyRefunded, Refunded, Voided].into_iter().find(|s| s.as_str() == raw)
    }
}

/// The state of one order's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub status: Status,
    pub captured: i64,
    pub refunded: i64,
    pub provider_reference: Option<String>,
    pub version: i64,
}

impl Payment {
    /// What can still be refunded.
    pub fn refundable(&self) -> i64 {
        self.captured - self.refunded
    }
}

/// The provider call a decision needs before its state is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Capture { amount: i64 },
    Void,
    Refund { refund_id: Uuid, amount: i64, reason: &'static str },
}

#[derive(Debug)]
pub enum Outcome {
    /// Call the provider (if any action), then save and publish.
    Changed {
        payment: Payment,
        action: Option<Action>,
        events: Vec<Emit>,
    },
    Rejected(Emit),
    Ignored(&'static str),
}

fn id(field: &str, raw: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(raw).map_err(|_| Refusal::new(Reason::InvalidId, format!("{field} `{raw}` is not a uuid")))
}

/// The ids of a placed order: (order, customer).
pub fn order_ids(placed: &OrderPlaced) -> Result<(Uuid, Uuid), Refusal> {
    Ok((id("order_id", &placed.order_id)?, id("customer_id", &placed.customer_id)?))
}

/// A new payment for a placed order, as the provider decided.
pub fn opened(
    placed: &OrderPlaced,
    order_id: Uuid,
    customer_id: Uuid,
    decision: Authorization,
    now: DateTime<Utc>,
) -> Outcome {
    let id = payment_id(order_id);
    let mut payment = Payment {
        id,
        order_id,
        customer_id,
        amount: placed.total,
        currency: placed.currency.clone(),
        status: Status::Authorized,
        captured: 0,
        refunded: 0,
        provider_reference: None,
        version: 1,
    };
    let event = match decision {
        Authorization::Authorized { reference } => {
            payment.provider_reference = Some(reference.clone());
            Emit::new(
                payments::EVENTS,
                PaymentAuthorized {
                    payment_id: id.to_string(),
                    order_id: placed.order_id.clone(),
                    customer_id: placed.customer_id.clone(),
                    amount: payment.amount,
                    currency: payment.currency.clone(),
                    provider_reference: reference,
                    version: 1,
                    authorized_at: now.timestamp_millis(),
                },
            )
        }
        Authorization::Declined { reason, message } => {
            payment.status = Status::Declined;
            Emit::new(
                payments::EVENTS,
                PaymentDeclined {
                    payment_id: id.to_string(),
                    order_id: placed.order_id.clone(),
                    customer_id: placed.customer_id.clone(),
                    amount: payment.amount,
                    currency: payment.currency.clone(),
                    reason,
                    message,
                    version: 1,
                    declined_at: now.timestamp_millis(),
                },
            )
        }
    };
    Outcome::Changed { payment, action: None, events: vec![event] }
}

/// The order was confirmed: capture the authorization.
pub fn capture(current: Option<Payment>, now: DateTime<Utc>) -> Outcome {
    let Some(mut payment) = current else { return Outcome::Ignored("no payment for the order") };
    if payment.status != Status::Authorized {
        return Outcome::Ignored("only an authorized payment is captured");
    }
    payment.status = Status::Captured;
    payment.captured = payment.amount;
    payment.version += 1;
    let event = PaymentCaptured {
        payment_id: payment.id.to_string(),
        order_id: payment.order_id.to_string(),
        amount: payment.captured,
        version: payment.version,
        captured_at: now.timestamp_millis(),
    };
    Outcome::Changed {
        action: Some(Action::Capture { amount: payment.captured }),
        payment,
        events: vec![Emit::new(payments::EVENTS, event)],
    }
}

/// The order was cancelled: void an authorization, refund what was captured
/// and not yet refunded; nothing for a declined or settled payment.
pub fn release(current: Option<Payment>, now: DateTime<Utc>) -> Outcome {
    let Some(mut payment) = current else { return Outcome::Ignored("no payment for the order") };
    match payment.status {
        Status::Authorized => {
            payment.status = Status::Voided;
            payment.version += 1;
            let event = PaymentVoided {
                payment_id: payment.id.to_string(),
                order_id: payment.order_id.to_string(),
                amount: payment.amount,
                reason: ORDER_CANCELLED.into(),
                version: payment.version,
                voided_at: now.timestamp_millis(),
            };
            Outcome::Changed { payment, action: Some(Action::Void), events: vec![Emit::new(payments::EVENTS, event)] }
        }
        Status::Captured | Status::PartiallyRefunded if payment.refundable() > 0 => {
            let (amount, id) = (payment.refundable(), refund_id(payment.id, ORDER_CANCELLED));
            refund(payment, id, amount, ORDER_CANCELLED, now)
        }
        _ => Outcome::Ignored("nothing left to void or refund"),
    }
}

fn refund(mut payment: Payment, refund_id: Uuid, amount: i64, reason: &'static str, now: DateTime<Utc>) -> Outcome {
    payment.refunded += amount;
    payment.status = if payment.refunded == payment.captured { Status::Refunded } else { Status::PartiallyRefunded };
    payment.version += 1;
    let event = PaymentRefunded {
        payment_id: payment.id.to_string(),
        order_id: payment.order_id.to_string(),
        refund_id: refund_id.to_string(),
        amount,
        refunded_total: payment.refunded,
        reason: reason.into(),
        version: payment.version,
        refunded_at: now.timestamp_millis(),
    };
    Outcome::Changed {
        action: Some(Action::Refund { refund_id, amount, reason }),
        payment,
        events: vec![Emit::new(payments::EVENTS, event)],
    }
}

pub fn rejected(cmd: &RefundPayment, reason: Reason, message: impl Into<String>) -> Emit {
    Emit::new(
        payments::EVENTS,
        PaymentCommandRejected {
            order_id: cmd.order_id.clone(),
            payment_id: cmd.payment_id.clone(),
            command_type: "RefundPayment".into(),
            reason: reason.as_str().into(),
            message: message.into(),
        },
    )
}

/// An admin's refund of part or all of what is left of a capture.
/// `command_id` makes the refund's id (its idempotency key).
pub fn requested_refund(
    current: Option<Payment>,
    cmd: &RefundPayment,
    command_id: Uuid,
    now: DateTime<Utc>,
) -> Outcome {
    let reject = |reason: Reason, message: String| Outcome::Rejected(rejected(cmd, reason, message));
    let Some(payment) = current.filter(|p| p.id.to_string() == cmd.payment_id) else {
        return reject(Reason::PaymentNotFound, format!("no payment {} for order {}", cmd.payment_id, cmd.order_id));
    };
    if cmd.amount < 1 {
        return reject(Reason::InvalidAmount, format!("a refund is at least 1 minor unit (got {})", cmd.amount));
    }
    // A fully refunded payment was captured: what is asked exceeds what is
    // left (nothing), the same answer whether the refund came alone or lost
    // a race to another one.
    if !matches!(payment.status, Status::Captured | Status::PartiallyRefunded | Status::Refunded) {
        let message =
            format!("payment {} is {}; only a captured payment is refunded", payment.id, payment.status.as_str());
        return reject(Reason::NotCaptured, message);
    }
    if cmd.amount > payment.refundable() {
        let message = format!(
            "{} is more than what is left to refund: {} captured, {} refunded already",
            cmd.amount, payment.captured, payment.refunded
        );
        return reject(Reason::RefundExceedsCapture, message);
    }
    let id = refund_id(payment.id, &command_id.to_string());
    refund(payment, id, cmd.amount, REQUESTED, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderflow_contracts::orders::ShippingAddress;

    fn placed(total: i64) -> OrderPlaced {
        OrderPlaced {
            order_id: Uuid::now_v7().to_string(),
            customer_id: Uuid::now_v7().to_string(),
            items: vec![],
            currency: "EUR".into(),
            total,
            shipping_address: ShippingAddress {
                name: "A".into(),
                line1: "1".into(),
                line2: None,
                city: "B".into(),
                postal_code: "1".into(),
                country: "DE".into(),
            },
            notes: None,
            version: 1,
            placed_at: 0,
            payment_deadline: 0,
        }
    }

    fn changed(outcome: Outcome) -> Payment {
        match outcome {
            Outcome::Changed { payment, .. } => payment,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    fn authorized(total: i64) -> Payment {
        let placed = placed(total);
        let (order, customer) = order_ids(&placed).expect("ids");
        changed(opened(&placed, order, customer, Authorization::Authorized { reference: "r".into() }, Utc::now()))
    }

    fn refund_of(payment: &Payment, amount: i64) -> RefundPayment {
        RefundPayment { order_id: payment.order_id.to_string(), payment_id: payment.id.to_string(), amount, note: None }
    }

    #[test]
    fn one_payment_id_per_order() {
        let order = Uuid::now_v7();
        assert_eq!(payment_id(order), payment_id(order));
        assert_ne!(payment_id(order), payment_id(Uuid::now_v7()));
    }

    #[test]
    fn cancelling_voids_an_authorization_and_refunds_a_capture_once() {
        let now = Utc::now();
        let voided = changed(release(Some(authorized(100)), now));
        assert_eq!(voided.status, Status::Voided);
        assert!(matches!(release(Some(voided), now), Outcome::Ignored(_)));

        let captured = changed(capture(Some(authorized(100)), now));
        assert_eq!((captured.status, captured.captured), (Status::Captured, 100));
        assert!(matches!(capture(Some(captured.clone()), now), Outcome::Ignored(_)), "captured once");
        let refunded = changed(release(Some(captured), now));
        assert_eq!((refunded.status, refunded.refunded), (Status::Refunded, 100));
        assert!(matches!(release(Some(refunded), now), Outcome::Ignored(_)), "never a double refund");
    }

    #[test]
    fn refunds_never_exceed_the_capture() {
        let now = Utc::now();
        let captured = changed(capture(Some(authorized(100)), now));
        let command = Uuid::now_v7();
        let rejected = |outcome: Outcome| match outcome {
            Outcome::Rejected(emit) => format!("{:?}", emit.message),
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert!(
            rejected(requested_refund(Some(captured.clone()), &refund_of(&captured, 101), command, now))
                .contains("REFUND_EXCEEDS_CAPTURE")
        );
        assert!(
            rejected(requested_refund(Some(captured.clone()), &refund_of(&captured, 0), command, now))
                .contains("INVALID_AMOUNT")
        );
        let full = changed(requested_refund(Some(captured.clone()), &refund_of(&captured, 100), command, now));
        assert!(
            rejected(requested_refund(Some(full.clone()), &refund_of(&full, 1), Uuid::now_v7(), now))
                .contains("REFUND_EXCEEDS_CAPTURE"),
            "a refund that lost the race answers as one sent alone"
        );
        let auth = authorized(5);
        assert!(
            rejected(requested_refund(Some(auth.clone()), &refund_of(&auth, 1), command, now)).contains("NOT_CAPTURED")
        );
        assert!(rejected(requested_refund(None, &refund_of(&captured, 1), command, now)).contains("PAYMENT_NOT_FOUND"));
        let partial = changed(requested_refund(Some(captured.clone()), &refund_of(&captured, 40), command, now));
        assert_eq!((partial.status, partial.refunded), (Status::PartiallyRefunded, 40));
        let rest = changed(release(Some(partial), now));
        assert_eq!((rest.status, rest.refunded), (Status::Refunded, 100), "a cancellation refunds only what is left");
    }

    #[test]
    fn a_declined_payment_is_never_captured_or_refunded() {
        let placed = placed(2_000_000);
        let (order, customer) = order_ids(&placed).expect("ids");
        let decision = Authorization::Declined { reason: "AMOUNT_ABOVE_LIMIT".into(), message: "no".into() };
        let declined = changed(opened(&placed, order, customer, decision, Utc::now()));
        assert_eq!(declined.status, Status::Declined);
        assert!(matches!(capture(Some(declined.clone()), Utc::now()), Outcome::Ignored(_)));
        assert!(matches!(release(Some(declined), Utc::now()), Outcome::Ignored(_)));
    }
}
