//! What each input means to an order: pure decisions over the current
//! state of one order, testable without a database. [`crate::store`] loads
//! and saves the state; the service kit does everything else.
//!
//! The lifecycle: PENDING → CONFIRMED → SHIPPED → DELIVERED, and CANCELLED
//! from PENDING or CONFIRMED. A command asking for any other transition is
//! rejected with `ILLEGAL_TRANSITION`; a saga event that comes too late for
//! its order (an authorization after the deadline cancelled it) changes
//! nothing here — the payment service voids what the cancellation left.

use chrono::{DateTime, Utc};
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
}

/// An id inside an input; anything else is a refusal.
pub fn id(field: &str, raw: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(raw).map_err(|_| Refusal::new("INVALID_ID", format!("{field} `{raw}` is not a uuid")))
}

pub fn rejected(order_id: &str, command_type: &str, reason: &str, message: impl Into<String>) -> Emit {
    Emit::new(
        orders::EVENTS,
        OrderRejected {
            order_id: order_id.to_owned(),
            command_type: command_type.to_owned(),
            reason: reason.to_owned(),
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
        |reason: &str, message: String| Ok(Outcome::Rejected(rejected(&cmd.order_id, "PlaceOrder", reason, message)));
    match customer {
        None => return reject("UNKNOWN_CUSTOMER", format!("no customer {customer_id}")),
        Some(Customer { active: false }) => {
            return reject("CUSTOMER_DEACTIVATED", format!("customer {customer_id} is deactivated"));
        }
        Some(_) => {}
    }
    let total = match orders::check(&cmd.items, &cmd.currency, &cmd.shipping_address, cmd.notes.as_deref()) {
        Ok(total) => total,
        Err(problem) => return reject("INVALID_ORDER", problem.to_string()),
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
pub fn command(current: Option<Order>, raw_id: &str, command_type: &str, to: Status, now: DateTime<Utc>) -> Outcome {
    let Some(order) = current else {
        return Outcome::Rejected(rejected(raw_id, command_type, "ORDER_NOT_FOUND", format!("no order {raw_id}")));
    };
    if !order.status.may_become(to) {
        let message = format!("order {raw_id} is {}; it cannot become {}", order.status.as_str(), to.as_str());
        return Outcome::Rejected(rejected(raw_id, command_type, "ILLEGAL_TRANSITION", message));
    }
    match to {
        Status::Cancelled => cancel(order, orders::REQUESTED, "cancelled on request".into(), now),
        Status::Shipped | Status::Delivered => advance(order, to, now),
        Status::Pending | Status::Confirmed => Outcome::Rejected(rejected(
            raw_id,
            command_type,
            "ILLEGAL_TRANSITION",
            format!("no command makes an order {}", to.as_str()),
        )),
    }
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
        assert!(reason(&command(Some(order.clone()), &id, "ShipOrder", Shipped, now)).contains("ILLEGAL_TRANSITION"));
        assert!(reason(&command(None, &id, "CancelOrder", Cancelled, now)).contains("ORDER_NOT_FOUND"));
        let Outcome::Changed { order, .. } = payment_authorized(Some(order), Uuid::now_v7(), now) else { panic!() };
        assert_eq!((order.status, order.version), (Confirmed, 2));
        let Outcome::Changed { order, .. } = command(Some(order), &id, "ShipOrder", Shipped, now) else { panic!() };
        assert!(
            reason(&command(Some(order.clone()), &id, "CancelOrder", Cancelled, now)).contains("ILLEGAL_TRANSITION")
        );
        let Outcome::Changed { order, .. } = command(Some(order), &id, "DeliverOrder", Delivered, now) else {
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
}
