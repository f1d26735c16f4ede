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
use orderflow_contracts::payments::{
    self, ORDER_CANCELLED, PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentVoided,
    REQUESTED,
};
use orderflow_runtime::{Decided, Decision, Emit, Refusal};
use uuid::Uuid;

use crate::input::{Placed, Refund};
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

/// A payment to save, after the provider call its decision needs (if any).
#[derive(Debug)]
pub struct Step {
    pub payment: Payment,
    pub action: Option<Action>,
}

/// What an input does to a payment.
pub type Outcome = Decided<Step>;

fn changed(payment: Payment, action: Option<Action>, event: Emit) -> Outcome {
    Ok(Decision::Changed { state: Step { payment, action }, events: vec![event] })
}

/// A new payment for a placed order, as the provider decided.
pub fn opened(placed: &Placed, decision: Authorization, now: DateTime<Utc>) -> Outcome {
    let id = payment_id(placed.order.0);
    let mut payment = Payment {
        id,
        order_id: placed.order.0,
        customer_id: placed.customer.0,
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
                    order_id: placed.order.to_string(),
                    customer_id: placed.customer.to_string(),
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
                    order_id: placed.order.to_string(),
                    customer_id: placed.customer.to_string(),
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
    changed(payment, None, event)
}

/// The order was confirmed: capture the authorization.
pub fn capture(current: Option<Payment>, now: DateTime<Utc>) -> Outcome {
    let Some(mut payment) = current else { return Ok(Decision::Unchanged("no payment for the order")) };
    if payment.status != Status::Authorized {
        return Ok(Decision::Unchanged("only an authorized payment is captured"));
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
    let action = Some(Action::Capture { amount: payment.captured });
    changed(payment, action, Emit::new(payments::EVENTS, event))
}

/// The order was cancelled: void an authorization, refund what was captured
/// and not yet refunded; nothing for a declined or settled payment.
pub fn release(current: Option<Payment>, now: DateTime<Utc>) -> Outcome {
    let Some(mut payment) = current else { return Ok(Decision::Unchanged("no payment for the order")) };
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
            changed(payment, Some(Action::Void), Emit::new(payments::EVENTS, event))
        }
        Status::Captured | Status::PartiallyRefunded if payment.refundable() > 0 => {
            let (amount, id) = (payment.refundable(), refund_id(payment.id, ORDER_CANCELLED));
            refund(payment, id, amount, ORDER_CANCELLED, now)
        }
        _ => Ok(Decision::Unchanged("nothing left to void or refund")),
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
    changed(payment, Some(Action::Refund { refund_id, amount, reason }), Emit::new(payments::EVENTS, event))
}

/// An admin's refund of part or all of what is left of a capture.
/// `command_id` makes the refund's id (its idempotency key).
pub fn requested_refund(current: Option<Payment>, cmd: &Refund, command_id: Uuid, now: DateTime<Utc>) -> Outcome {
    let reject = |reason: Reason, message: String| Err(Refusal::new(reason, message).into());
    let Some(payment) = current.filter(|p| p.id == cmd.payment.0) else {
        return reject(Reason::PaymentNotFound, format!("no payment {} for order {}", cmd.payment, cmd.order));
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
    use orderflow_contracts::ids::{OrderId, PaymentId, UserId};
    use orderflow_runtime::testing::given;

    use super::*;

    fn placed(total: i64) -> Placed {
        Placed { order: OrderId(Uuid::now_v7()), customer: UserId(Uuid::now_v7()), total, currency: "EUR".into() }
    }

    fn authorized(total: i64) -> Payment {
        let placed = placed(total);
        let decision = Authorization::Authorized { reference: "r".into() };
        let (step, _) = given(decision).when(|d| opened(&placed, d, Utc::now())).then_emits(&["PaymentAuthorized"]);
        assert_eq!(step.action, None, "the authorization was the provider call");
        step.payment
    }

    fn captured(total: i64) -> Payment {
        let (step, _) =
            given(Some(authorized(total))).when(|p| capture(p, Utc::now())).then_emits(&["PaymentCaptured"]);
        assert_eq!(step.action, Some(Action::Capture { amount: total }));
        step.payment
    }

    fn refund_of(payment: &Payment, amount: i64) -> Refund {
        Refund { order: OrderId(payment.order_id), payment: PaymentId(payment.id), amount }
    }

    /// An admin's refund of `amount` of `payment`, as command `command`.
    fn refunding(payment: Option<Payment>, amount: i64, command: Uuid) -> impl FnOnce(Option<Payment>) -> Outcome {
        let refund = payment.as_ref().map_or_else(
            || Refund { order: OrderId(Uuid::now_v7()), payment: PaymentId(Uuid::now_v7()), amount },
            |p| refund_of(p, amount),
        );
        move |p| requested_refund(p, &refund, command, Utc::now())
    }

    #[test]
    fn one_payment_id_per_order() {
        let order = Uuid::now_v7();
        assert_eq!(payment_id(order), payment_id(order));
        assert_ne!(payment_id(order), payment_id(Uuid::now_v7()));
    }

    #[test]
    fn a_placed_order_opens_its_one_payment_as_the_provider_decided() {
        let payment = authorized(100);
        assert_eq!(
            (payment.id, payment.status, payment.version),
            (payment_id(payment.order_id), Status::Authorized, 1)
        );
        let decision = Authorization::Declined { reason: "AMOUNT_ABOVE_LIMIT".into(), message: "no".into() };
        let (step, _) =
            given(decision).when(|d| opened(&placed(2_000_000), d, Utc::now())).then_emits(&["PaymentDeclined"]);
        assert_eq!(step.payment.status, Status::Declined);
    }

    #[test]
    fn a_confirmed_order_captures_its_authorization_once() {
        let payment = captured(100);
        assert_eq!((payment.status, payment.captured), (Status::Captured, 100));
        given(Some(payment)).when(|p| capture(p, Utc::now())).then_unchanged();
        given(None).when(|p| capture(p, Utc::now())).then_unchanged();
    }

    #[test]
    fn a_cancelled_order_voids_an_authorization_once() {
        let (step, _) = given(Some(authorized(100))).when(|p| release(p, Utc::now())).then_emits(&["PaymentVoided"]);
        assert_eq!((step.payment.status, step.action), (Status::Voided, Some(Action::Void)));
        given(Some(step.payment)).when(|p| release(p, Utc::now())).then_unchanged();
    }

    #[test]
    fn a_cancelled_order_refunds_what_is_left_of_a_capture_once() {
        let (step, _) = given(Some(captured(100))).when(|p| release(p, Utc::now())).then_emits(&["PaymentRefunded"]);
        assert_eq!((step.payment.status, step.payment.refunded), (Status::Refunded, 100));
        assert!(matches!(step.action, Some(Action::Refund { amount: 100, reason: ORDER_CANCELLED, .. })));
        given(Some(step.payment)).when(|p| release(p, Utc::now())).then_unchanged();
    }

    #[test]
    fn a_declined_payment_is_never_captured_or_refunded() {
        let decision = Authorization::Declined { reason: "AMOUNT_ABOVE_LIMIT".into(), message: "no".into() };
        let (step, _) = given(decision).when(|d| opened(&placed(5), d, Utc::now())).then_emits(&["PaymentDeclined"]);
        given(Some(step.payment.clone())).when(|p| capture(p, Utc::now())).then_unchanged();
        given(Some(step.payment)).when(|p| release(p, Utc::now())).then_unchanged();
    }

    #[test]
    fn an_admin_refunds_part_then_a_cancellation_refunds_only_the_rest() {
        let captured = captured(100);
        let (step, _) = given(Some(captured.clone()))
            .when(refunding(Some(captured), 40, Uuid::now_v7()))
            .then_emits(&["PaymentRefunded"]);
        assert_eq!((step.payment.status, step.payment.refunded), (Status::PartiallyRefunded, 40));
        let (rest, _) = given(Some(step.payment)).when(|p| release(p, Utc::now())).then_emits(&["PaymentRefunded"]);
        assert_eq!((rest.payment.status, rest.payment.refunded), (Status::Refunded, 100));
    }

    #[test]
    fn a_refund_is_keyed_by_its_command_so_a_retry_refunds_once_at_the_provider() {
        let captured = captured(100);
        let command = Uuid::now_v7();
        let action = |p: &Payment| {
            given(Some(p.clone()))
                .when(refunding(Some(p.clone()), 10, command))
                .then_emits(&["PaymentRefunded"])
                .0
                .action
        };
        assert_eq!(action(&captured), action(&captured), "the same command, the same refund id");
    }

    #[test]
    fn refunds_never_exceed_the_capture() {
        let captured = captured(100);
        let command = Uuid::now_v7();
        given(Some(captured.clone()))
            .when(refunding(Some(captured.clone()), 101, command))
            .then_refused(Reason::RefundExceedsCapture);
        given(Some(captured.clone()))
            .when(refunding(Some(captured.clone()), 0, command))
            .then_refused(Reason::InvalidAmount);
        let (full, _) = given(Some(captured.clone()))
            .when(refunding(Some(captured.clone()), 100, command))
            .then_emits(&["PaymentRefunded"]);
        let full = full.payment;
        given(Some(full.clone()))
            .when(refunding(Some(full), 1, Uuid::now_v7()))
            .then_refused(Reason::RefundExceedsCapture); // a refund that lost the race answers as one sent alone
        let auth = authorized(5);
        given(Some(auth.clone())).when(refunding(Some(auth), 1, command)).then_refused(Reason::NotCaptured);
        given(None).when(refunding(None, 1, command)).then_refused(Reason::PaymentNotFound);
        let other = authorized(5);
        given(Some(captured)).when(refunding(Some(other), 1, command)).then_refused(Reason::PaymentNotFound);
    }
}
