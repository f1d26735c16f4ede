//! What each input means to an order: pure decisions over the current
//! state of one order, testable without a database. [`crate::store`] loads
//! and saves the state; the service kit does everything else.
//!
//! The lifecycle: PENDING → CONFIRMED → SHIPPED → DELIVERED, and CANCELLED
//! from PENDING or CONFIRMED. A command asking for any other transition is
//! rejected with `ILLEGAL_TRANSITION`; a saga event that comes too late for
//! its order (an authorization after the deadline cancelled it) changes
//! nothing here — the payment service voids what the cancellation left.
//!
//! Shipping is guarded by the money ([`Paid`], recorded from the payment's
//! captures and refunds): a CONFIRMED order ships only if its payment was
//! captured and not refunded in full, else `NOT_PAID`. A capture still on
//! its way (it follows `OrderConfirmed`) is waited for, within a grace.

use chrono::{DateTime, Utc};
use orderflow_contracts::Reason;
use orderflow_contracts::orders::{
    self, OrderCancelled, OrderConfirmed, OrderDelivered, OrderLine, OrderPlaced, OrderRejected, OrderShipped,
    PlaceOrder, ShippingAddress,
};
use orderflow_runtime::{Emit, Refusal};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Confirmed => "CONFIRMED",
            Status::Shipped => "SHIPPED",
            Status::Delivered => "DELIVERED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Status::Pending, Status::Confirmed, Status::Shipped, Status::Delivered, Status::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// Whether an order may go from `self` to `to`.
    pub fn may_become(self, to: Status) -> bool {
        matches!(
            (self, to),
            (Status::Pending, Status::Confirmed)
                | (Status::Pending | Status::Confirmed, Status::Cancelled)
                | (Status::Confirmed, Status::Shipped)
                | (Status::Shipped, Status::Delivered)
        )
    }
}

/// The state of one order, as the order service stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub status: Status,
    pub items: Vec<OrderLine>,
    pub currency: String,
    pub total: i64,
    pub shipping_address: ShippingAddress,
    pub notes: Option<String>,
    pub reason: Option<String>,
    pub payment_id: Option<Uuid>,
    /// What the payment's events said about its money (not a change of
    /// the order: recording it publishes nothing and keeps `version`).
    pub paid: Paid,
    /// Incremented by every change; events carry it.
    pub version: i64,
    /// The request that placed it, for what the deadline publishes.
    pub origin: Origin,
    pub placed_at: DateTime<Utc>,
    pub payment_deadline: DateTime<Utc>,
}

/// The `PlaceOrder` command an order came from: its id, correlation and
/// trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub command_id: Uuid,
    pub correlation_id: String,
    pub traceparent: String,
}

/// An order's money as its payment's events told it (payments.events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paid {
    /// Minor units captured (`PaymentCaptured`); 0 until then.
    pub captured: i64,
    /// Minor units refunded in all (`PaymentRefunded`'s `refunded_total`).
    pub refunded: i64,
    /// The payment's version in the last event applied: an older one (a
    /// stale duplicate from a relay retry) changes nothing.
    pub version: i64,
}

/// Money a payments event says moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Captured {
        amount: i64,
    },
    /// `refunded_total`: everything refunded so far, not this refund alone.
    Refunded {
        total: i64,
    },
}

/// When a command is decided, and how long it may wait for a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub now: DateTime<Utc>,
    /// When the command was sent (its `occurred_at`).
    pub sent_at: DateTime<Utc>,
    /// How long after it was sent a `ShipOrder` waits for a capture this
    /// service has not seen yet.
    pub capture_grace: chrono::Duration,
}

/// A customer as this service knows them (from users.events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Customer {
    pub active: bool,
}

/// What an input does to an order (made once per input and consumed at
/// once, so its size does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome {
    /// Save `order` and publish `events`.
    Changed { order: Order, events: Vec<Emit> },
    /// Change nothing; publish the rejection.
    Rejected(Emit),
    /// Change and publish nothing (a saga event that came too late).
    Ignored(&'static str),
    /// Decide later: what the input needs has not arrived yet (the capture
    /// of an order being shipped); the kit retries it.
    NotYet(String),
}

/// An id inside an input; anything else is a refusal.
pub fn id(field: &str, raw: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(raw).map_err(|_| Refusal::new(Reason::InvalidId, format!("{field} `{raw}` is not a uuid")))
}

pub fn rejected(order_id: &str, command_type: &str, reason: Reason, message: impl Into<String>) -> Emit {
    Emit::new(
        orders::EVENTS,
        OrderRejected {
            order_id: order_id.to_owned(),
            command_type: command_type.to_owned(),
            reason: reason.as_str().to_owned(),
            message: message.into(),
        },
    )
}

/// What a `PlaceOrder` for `customer` means: a PENDING order with its
/// computed total and deadline, or a rejection. (An unknown customer
/// within the grace is the caller's to retry.)
pub fn place(
    cmd: &PlaceOrder,
    customer: Option<Customer>,
    origin: Origin,
    now: DateTime<Utc>,
    deadline: chrono::Duration,
) -> Result<Outcome, Refusal> {
    let order_id = id("order_id", &cmd.order_id)?;
    let customer_id = id("customer_id", &cmd.customer_id)?;
    let reject =
        |reason: Reason, message: String| Ok(Outcome::Rejected(rejected(&cmd.order_id, "PlaceOrder", reason, message)));
    match customer {
        None => return reject(Reason::UnknownCustomer, format!("no customer {customer_id}")),
        Some(Customer { active: false }) => {
            return reject(Reason::CustomerDeactivated, format!("customer {customer_id} is deactivated"));
        }
        Some(_) => {}
    }
    let total = match orders::check(&cmd.items, &cmd.currency, &cmd.shipping_address, cmd.notes.as_deref()) {
        Ok(total) => total,
        Err(problem) => return reject(Reason::InvalidOrder, problem.to_string()),
    };
    let order = Order {
        id: order_id,
        customer_id,
        status: Status::Pending,
        items: cmd.items.clone(),
        currency: cmd.currency.clone(),
        total,
        shipping_address: cmd.shipping_address.clone(),
        notes: cmd.notes.clone(),
        reason: None,
        payment_id: None,
        paid: Paid::default(),
        version: 1,
        origin,
        placed_at: now,
        payment_deadline: now + deadline,
    };
    let placed = OrderPlaced {
        order_id: cmd.order_id.clone(),
        customer_id: cmd.customer_id.clone(),
        items: order.items.clone(),
        currency: order.currency.clone(),
        total,
        shipping_address: order.shipping_address.clone(),
        notes: order.notes.clone(),
        version: 1,
        placed_at: now.timestamp_millis(),
        payment_deadline: order.payment_deadline.timestamp_millis(),
    };
    Ok(Outcome::Changed { order, events: vec![Emit::new(orders::EVENTS, placed)] })
}

/// A command's transition of an existing order to `to`.
pub fn command(current: Option<Order>, raw_id: &str, command_type: &str, to: Status, timing: Timing) -> Outcome {
    let now = timing.now;
    let Some(order) = current else {
        return Outcome::Rejected(rejected(raw_id, command_type, Reason::OrderNotFound, format!("no order {raw_id}")));
    };
    if !order.status.may_become(to) {
        let message = format!("order {raw_id} is {}; it cannot become {}", order.status.as_str(), to.as_str());
        return Outcome::Rejected(rejected(raw_id, command_type, Reason::IllegalTransition, message));
    }
    match to {
        Status::Cancelled => cancel(order, orders::REQUESTED, "cancelled on request".into(), now),
        Status::Shipped => match unpaid(&order, timing) {
            Some(Unpaid::NotYet(why)) => Outcome::NotYet(why),
            Some(Unpaid::Refused(message)) => {
                Outcome::Rejected(rejected(raw_id, command_type, Reason::NotPaid, format!("order {raw_id} {message}")))
            }
            None => advance(order, to, now),
        },
        Status::Delivered => advance(order, to, now),
        Status::Pending | Status::Confirmed => Outcome::Rejected(rejected(
            raw_id,
            command_type,
            Reason::IllegalTransition,
            format!("no command makes an order {}", to.as_str()),
        )),
    }
}

/// Why an order's payment does not allow shipping it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unpaid {
    /// No capture seen yet, within the grace: ask again later.
    NotYet(String),
    /// Not captured (after the grace), or refunded in full.
    Refused(String),
}

/// Whether the payment of `order` forbids shipping it: it must be captured
/// and not refunded in full (a partial refund, say for a scratched item,
/// still ships what was paid for). A capture not seen yet is waited for
/// until `capture_grace` after the command was sent: it follows
/// `OrderConfirmed` on another topic, so it may trail an admin's command.
fn unpaid(order: &Order, timing: Timing) -> Option<Unpaid> {
    let Paid { captured, refunded, .. } = order.paid;
    let amounts = format!("total {} {}: captured {captured}, refunded {refunded}", order.total, order.currency);
    if captured <= 0 {
        if timing.now - timing.sent_at < timing.capture_grace {
            return Some(Unpaid::NotYet(format!("the capture of order {} is not known here yet", order.id)));
        }
        return Some(Unpaid::Refused(format!("is not paid: its payment is not captured ({amounts})")));
    }
    if refunded >= captured {
        return Some(Unpaid::Refused(format!("is not paid: its payment was refunded in full ({amounts})")));
    }
    None
}

fn advance(mut order: Order, to: Status, now: DateTime<Utc>) -> Outcome {
    order.status = to;
    order.version += 1;
    let (order_id, version, at) = (order.id.to_string(), order.version, now.timestamp_millis());
    let event = if to == Status::Shipped {
        Emit::new(orders::EVENTS, OrderShipped { order_id, version, shipped_at: at })
    } else {
        Emit::new(orders::EVENTS, OrderDelivered { order_id, version, delivered_at: at })
    };
    Outcome::Changed { order, events: vec![event] }
}

fn cancel(mut order: Order, reason: &str, message: String, now: DateTime<Utc>) -> Outcome {
    order.status = Status::Cancelled;
    order.reason = Some(reason.to_owned());
    order.version += 1;
    let event = OrderCancelled {
        order_id: order.id.to_string(),
        reason: reason.to_owned(),
        message,
        version: order.version,
        cancelled_at: now.timestamp_millis(),
    };
    Outcome::Changed { order, events: vec![Emit::new(orders::EVENTS, event)] }
}

/// The payment of a PENDING order was authorized: it is confirmed.
pub fn payment_authorized(current: Option<Order>, payment_id: Uuid, now: DateTime<Utc>) -> Outcome {
    match current {
        Some(mut order) if order.status == Status::Pending => {
            order.status = Status::Confirmed;
            order.payment_id = Some(payment_id);
            order.version += 1;
            let event = OrderConfirmed {
                order_id: order.id.to_string(),
                payment_id: payment_id.to_string(),
                version: order.version,
                confirmed_at: now.timestamp_millis(),
            };
            Outcome::Changed { order, events: vec![Emit::new(orders::EVENTS, event)] }
        }
        Some(_) => Outcome::Ignored("the order is no longer PENDING; the payment service voids a late authorization"),
        None => Outcome::Ignored("no such order"),
    }
}

/// The payment of a PENDING order was declined: it is cancelled.
pub fn payment_declined(current: Option<Order>, message: &str, now: DateTime<Utc>) -> Outcome {
    match current {
        Some(order) if order.status == Status::Pending => {
            cancel(order, "PAYMENT_DECLINED", format!("the payment was declined: {message}"), now)
        }
        Some(_) => Outcome::Ignored("the order is no longer PENDING"),
        None => Outcome::Ignored("no such order"),
    }
}

/// A payments event says money moved for the order (a capture, a refund):
/// recorded, unless an event of the payment as new or newer was already.
pub fn money_moved(current: Option<Order>, moved: Moved, version: i64) -> Outcome {
    let Some(mut order) = current else { return Outcome::Ignored("no such order") };
    if version <= order.paid.version {
        return Outcome::Ignored("a payments event older than one already applied (a stale duplicate)");
    }
    match moved {
        Moved::Captured { amount } => order.paid.captured = amount,
        Moved::Refunded { total } => order.paid.refunded = total,
    }
    order.paid.version = version;
    Outcome::Changed { order, events: Vec::new() }
}

/// A PENDING order whose payment deadline passed is cancelled.
pub fn payment_timed_out(order: Order, now: DateTime<Utc>) -> Outcome {
    if order.status != Status::Pending {
        return Outcome::Ignored("the order is no longer PENDING");
    }
    let message = format!("no payment decision by {}", order.payment_deadline.to_rfc3339());
    cancel(order, "PAYMENT_TIMEOUT", message, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_to_place(quantity: i64) -> PlaceOrder {
        PlaceOrder {
            order_id: Uuid::now_v7().to_string(),
            customer_id: Uuid::now_v7().to_string(),
            items: vec![OrderLine { product_id: "sku-1".into(), name: "Widget".into(), quantity, unit_price: 1250 }],
            currency: "EUR".into(),
            shipping_address: ShippingAddress {
                name: "Ada".into(),
                line1: "1 Way".into(),
                line2: None,
                city: "London".into(),
                postal_code: "N1".into(),
                country: "GB".into(),
            },
            notes: None,
        }
    }

    fn origin() -> Origin {
        Origin { command_id: Uuid::now_v7(), correlation_id: "c".into(), traceparent: "t".into() }
    }

    fn placed(quantity: i64) -> Order {
        let active = Some(Customer { active: true });
        match place(&command_to_place(quantity), active, origin(), Utc::now(), chrono::Duration::seconds(60)) {
            Ok(Outcome::Changed { order, .. }) => order,
            other => panic!("expected a placed order, got {other:?}"),
        }
    }

    /// A command sent just now, with the default grace for a capture.
    fn at(now: DateTime<Utc>) -> Timing {
        Timing { now, sent_at: now, capture_grace: chrono::Duration::seconds(30) }
    }

    fn changed(outcome: Outcome) -> Order {
        match outcome {
            Outcome::Changed { order, .. } => order,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    /// A CONFIRMED order whose payment (version 1 authorized) was captured
    /// in full (version 2).
    fn captured() -> Order {
        let order = changed(payment_authorized(Some(placed(2)), Uuid::now_v7(), Utc::now()));
        changed(money_moved(Some(order.clone()), Moved::Captured { amount: order.total }, 2))
    }

    fn reason(outcome: &Outcome) -> String {
        match outcome {
            Outcome::Rejected(emit) => format!("{:?}", emit.message),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn placing_computes_the_total_and_checks_the_customer() {
        let order = placed(2);
        assert_eq!((order.status, order.total, order.version), (Status::Pending, 2500, 1));
        let now = Utc::now();
        let deadline = chrono::Duration::seconds(60);
        let outcome = place(&command_to_place(2), None, origin(), now, deadline).expect("decided");
        assert!(reason(&outcome).contains("UNKNOWN_CUSTOMER"));
        let outcome =
            place(&command_to_place(2), Some(Customer { active: false }), origin(), now, deadline).expect("decided");
        assert!(reason(&outcome).contains("CUSTOMER_DEACTIVATED"));
        let outcome =
            place(&command_to_place(0), Some(Customer { active: true }), origin(), now, deadline).expect("decided");
        assert!(reason(&outcome).contains("INVALID_ORDER"));
        let mut bad = command_to_place(1);
        bad.order_id = "nope".into();
        assert!(place(&bad, None, origin(), now, deadline).is_err(), "a malformed id is a refusal");
    }

    #[test]
    fn the_lifecycle_allows_only_its_transitions() {
        use Status::*;
        let all = [Pending, Confirmed, Shipped, Delivered, Cancelled];
        let allowed: Vec<_> =
            all.iter().flat_map(|a| all.iter().map(move |b| (*a, *b))).filter(|(a, b)| a.may_become(*b)).collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Confirmed),
                (Pending, Cancelled),
                (Confirmed, Shipped),
                (Confirmed, Cancelled),
                (Shipped, Delivered)
            ]
        );
        let now = Utc::now();
        let order = placed(1);
        let id = order.id.to_string();
        assert!(
            reason(&command(Some(order.clone()), &id, "ShipOrder", Shipped, at(now))).contains("ILLEGAL_TRANSITION")
        );
        assert!(reason(&command(None, &id, "CancelOrder", Cancelled, at(now))).contains("ORDER_NOT_FOUND"));
        let Outcome::Changed { order, .. } = payment_authorized(Some(order), Uuid::now_v7(), now) else { panic!() };
        assert_eq!((order.status, order.version), (Confirmed, 2));
        let order = changed(money_moved(Some(order), Moved::Captured { amount: 1250 }, 2));
        assert_eq!(order.version, 2, "recording money is no change of the order's lifecycle");
        let Outcome::Changed { order, .. } = command(Some(order), &id, "ShipOrder", Shipped, at(now)) else { panic!() };
        assert!(
            reason(&command(Some(order.clone()), &id, "CancelOrder", Cancelled, at(now)))
                .contains("ILLEGAL_TRANSITION")
        );
        let Outcome::Changed { order, .. } = command(Some(order), &id, "DeliverOrder", Delivered, at(now)) else {
            panic!()
        };
        assert_eq!((order.status, order.version), (Delivered, 4));
    }

    #[test]
    fn late_saga_events_change_nothing() {
        let now = Utc::now();
        let Outcome::Changed { order, .. } = payment_timed_out(placed(1), now) else { panic!() };
        assert_eq!((order.status, order.reason.as_deref()), (Status::Cancelled, Some("PAYMENT_TIMEOUT")));
        assert!(matches!(payment_authorized(Some(order.clone()), Uuid::now_v7(), now), Outcome::Ignored(_)));
        assert!(matches!(payment_declined(Some(order.clone()), "no", now), Outcome::Ignored(_)));
        assert!(matches!(payment_timed_out(order, now), Outcome::Ignored(_)));
        let Outcome::Changed { order, .. } = payment_declined(Some(placed(1)), "over the limit", now) else { panic!() };
        assert_eq!(order.reason.as_deref(), Some("PAYMENT_DECLINED"));
    }

    #[test]
    fn a_captured_order_ships() {
        // Given a confirmed order whose payment was captured in full
        let order = captured();
        let id = order.id.to_string();
        // When an admin ships it
        let outcome = command(Some(order), &id, "ShipOrder", Status::Shipped, at(Utc::now()));
        // Then it is SHIPPED
        let order = changed(outcome);
        assert_eq!((order.status, order.version), (Status::Shipped, 3));
    }

    #[test]
    fn a_fully_refunded_order_does_not_ship() {
        // Given a captured order an admin refunded in full
        let order = captured();
        let total = order.total;
        let order = changed(money_moved(Some(order), Moved::Refunded { total }, 3));
        let id = order.id.to_string();
        // When an admin ships it
        let outcome = command(Some(order), &id, "ShipOrder", Status::Shipped, at(Utc::now()));
        // Then it is refused NOT_PAID, naming what was captured and refunded
        let why = reason(&outcome);
        assert!(why.contains("NOT_PAID"), "{why}");
        assert!(why.contains("refunded in full") && why.contains("captured 2500, refunded 2500"), "{why}");
    }

    #[test]
    fn a_partly_refunded_order_still_ships() {
        // Given a captured order of 2500 with 1000 refunded (a scratched item)
        let order = changed(money_moved(Some(captured()), Moved::Refunded { total: 1000 }, 3));
        let id = order.id.to_string();
        // When an admin ships it, then it ships what was paid for
        let order = changed(command(Some(order), &id, "ShipOrder", Status::Shipped, at(Utc::now())));
        assert_eq!(order.status, Status::Shipped);
        assert_eq!(order.paid, Paid { captured: 2500, refunded: 1000, version: 3 });
    }

    #[test]
    fn a_capture_not_seen_yet_is_waited_for_then_refused() {
        // Given a confirmed order whose capture this service has not seen
        let order = changed(payment_authorized(Some(placed(1)), Uuid::now_v7(), Utc::now()));
        let id = order.id.to_string();
        let now = Utc::now();
        // When a ShipOrder sent 10 s ago is decided (within the 30 s grace)
        let recent = Timing { sent_at: now - chrono::Duration::seconds(10), ..at(now) };
        let outcome = command(Some(order.clone()), &id, "ShipOrder", Status::Shipped, recent);
        // Then it is decided later
        assert!(matches!(outcome, Outcome::NotYet(_)), "{outcome:?}");
        // When it was sent 31 s ago, then it is refused NOT_PAID
        let old = Timing { sent_at: now - chrono::Duration::seconds(31), ..at(now) };
        let why = reason(&command(Some(order.clone()), &id, "ShipOrder", Status::Shipped, old));
        assert!(why.contains("NOT_PAID") && why.contains("not captured"), "{why}");
        // And a grace of 0 never waits
        let impatient = Timing { capture_grace: chrono::Duration::zero(), ..at(now) };
        assert!(reason(&command(Some(order), &id, "ShipOrder", Status::Shipped, impatient)).contains("NOT_PAID"));
    }

    #[test]
    fn the_money_guard_applies_to_shipping_only() {
        // Given a confirmed order with nothing captured
        let order = changed(payment_authorized(Some(placed(1)), Uuid::now_v7(), Utc::now()));
        let id = order.id.to_string();
        // When it is cancelled, then it is (the payment service voids or refunds)
        let cancelled = changed(command(Some(order.clone()), &id, "CancelOrder", Status::Cancelled, at(Utc::now())));
        assert_eq!(cancelled.status, Status::Cancelled);
        // And a pending order asked to ship is an illegal transition, not NOT_PAID
        let why = reason(&command(Some(placed(1)), &id, "ShipOrder", Status::Shipped, at(Utc::now())));
        assert!(why.contains("ILLEGAL_TRANSITION"), "{why}");
    }

    #[test]
    fn money_is_recorded_once_and_in_the_payments_order() {
        // Given a captured order refunded in part (version 3), then in full (version 4)
        let order = changed(money_moved(Some(captured()), Moved::Refunded { total: 1000 }, 3));
        let order = changed(money_moved(Some(order), Moved::Refunded { total: 2500 }, 4));
        assert_eq!(order.paid, Paid { captured: 2500, refunded: 2500, version: 4 });
        // When stale duplicates of the capture and the first refund arrive
        let stale_capture = money_moved(Some(order.clone()), Moved::Captured { amount: 2500 }, 2);
        let stale_refund = money_moved(Some(order.clone()), Moved::Refunded { total: 1000 }, 3);
        let again = money_moved(Some(order), Moved::Refunded { total: 2500 }, 4);
        // Then nothing changes
        for outcome in [stale_capture, stale_refund, again] {
            assert!(matches!(outcome, Outcome::Ignored(_)), "{outcome:?}");
        }
        // And money for an order not known here changes nothing
        assert!(matches!(money_moved(None, Moved::Captured { amount: 1 }, 2), Outcome::Ignored(_)));
    }
}
