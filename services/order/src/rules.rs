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
use orderflow_contracts::ids::PaymentId;
use orderflow_contracts::orders::{
    self, OrderCancelled, OrderConfirmed, OrderDelivered, OrderLine, OrderPlaced, OrderShipped, OrderStockReserved,
    ShippingAddress,
};
use orderflow_runtime::{Decided, Decision, DomainError, Emit, Refusal};
use uuid::Uuid;

use crate::input::Placement;

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

/// What an input does to an order.
pub type Outcome = Decided<Order>;

/// What a `PlaceOrder` for `customer` means: a PENDING order with its
/// computed total and deadline, or a rejection. (An unknown customer
/// within the grace is the caller's to retry.)
pub fn place(
    cmd: &Placement,
    customer: Option<Customer>,
    origin: Origin,
    now: DateTime<Utc>,
    deadline: chrono::Duration,
) -> Outcome {
    let (order_id, customer_id) = (cmd.id.0, cmd.customer.0);
    let reject = |reason: Reason, message: String| Err(Refusal::new(reason, message).into());
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
        order_id: order_id.to_string(),
        customer_id: customer_id.to_string(),
        items: order.items.clone(),
        currency: order.currency.clone(),
        total,
        shipping_address: order.shipping_address.clone(),
        notes: order.notes.clone(),
        version: 1,
        placed_at: now.timestamp_millis(),
        payment_deadline: order.payment_deadline.timestamp_millis(),
    };
    Ok(Decision::Changed { state: order, events: vec![Emit::new(orders::EVENTS, placed)] })
}

/// A command's transition of an existing order to `to`.
pub fn command(current: Option<Order>, raw_id: &str, to: Status, timing: Timing) -> Outcome {
    let now = timing.now;
    let Some(order) = current else {
        return Err(Refusal::new(Reason::OrderNotFound, format!("no order {raw_id}")).into());
    };
    if !order.status.may_become(to) {
        let message = format!("order {raw_id} is {}; it cannot become {}", order.status.as_str(), to.as_str());
        return Err(Refusal::new(Reason::IllegalTransition, message).into());
    }
    match to {
        Status::Cancelled => cancel(order, orders::REQUESTED, "cancelled on request".into(), now),
        Status::Shipped => match unpaid(&order, timing) {
            Some(Unpaid::NotYet(why)) => Err(DomainError::NotYet(why)),
            Some(Unpaid::Refused(message)) => {
                Err(Refusal::new(Reason::NotPaid, format!("order {raw_id} {message}")).into())
            }
            None => advance(order, to, now),
        },
        Status::Delivered => advance(order, to, now),
        Status::Pending | Status::Confirmed => {
            Err(Refusal::new(Reason::IllegalTransition, format!("no command makes an order {}", to.as_str())).into())
        }
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
    Ok(Decision::Changed { state: order, events: vec![event] })
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
    Ok(Decision::Changed { state: order, events: vec![Emit::new(orders::EVENTS, event)] })
}

/// The payment of a PENDING order was authorized: it is confirmed.
pub fn payment_authorized(current: Option<Order>, payment_id: PaymentId, now: DateTime<Utc>) -> Outcome {
    match current {
        Some(mut order) if order.status == Status::Pending => {
            order.status = Status::Confirmed;
            order.payment_id = Some(payment_id.0);
            order.version += 1;
            let event = OrderConfirmed {
                order_id: order.id.to_string(),
                payment_id: payment_id.to_string(),
                version: order.version,
                confirmed_at: now.timestamp_millis(),
            };
            Ok(Decision::Changed { state: order, events: vec![Emit::new(orders::EVENTS, event)] })
        }
        Some(_) => {
            Ok(Decision::Unchanged("the order is no longer PENDING; the payment service voids a late authorization"))
        }
        None => Ok(Decision::Unchanged("no such order")),
    }
}

/// The payment of a PENDING order was declined: it is cancelled.
pub fn payment_declined(current: Option<Order>, message: &str, now: DateTime<Utc>) -> Outcome {
    match current {
        Some(order) if order.status == Status::Pending => {
            cancel(order, "PAYMENT_DECLINED", format!("the payment was declined: {message}"), now)
        }
        Some(_) => Ok(Decision::Unchanged("the order is no longer PENDING")),
        None => Ok(Decision::Unchanged("no such order")),
    }
}

/// The inventory holds every line of a PENDING order: said on the order's
/// own topic (`OrderStockReserved`), where the payment service reads it in
/// order with the order's cancellation, and authorizes the payment.
pub fn stock_held(current: Option<Order>, now: DateTime<Utc>) -> Outcome {
    match current {
        Some(mut order) if order.status == Status::Pending => {
            order.version += 1;
            let event = OrderStockReserved {
                order_id: order.id.to_string(),
                customer_id: order.customer_id.to_string(),
                currency: order.currency.clone(),
                total: order.total,
                version: order.version,
                reserved_at: now.timestamp_millis(),
            };
            Ok(Decision::Changed { state: order, events: vec![Emit::new(orders::EVENTS, event)] })
        }
        Some(_) => Ok(Decision::Unchanged("the order is no longer PENDING")),
        None => Ok(Decision::Unchanged("no such order")),
    }
}

/// The inventory could not hold the lines of a PENDING order (`reason`:
/// OUT_OF_STOCK, UNKNOWN_PRODUCT or PRICE_CHANGED; `message` names the
/// line): it is cancelled for that reason, and nothing is charged.
pub fn stock_not_held(current: Option<Order>, reason: &str, message: &str, now: DateTime<Utc>) -> Outcome {
    match current {
        Some(order) if order.status == Status::Pending => cancel(order, reason, message.to_owned(), now),
        Some(_) => Ok(Decision::Unchanged("the order is no longer PENDING")),
        None => Ok(Decision::Unchanged("no such order")),
    }
}

/// A payments event says money moved for the order (a capture, a refund):
/// recorded, unless an event of the payment as new or newer was already.
pub fn money_moved(current: Option<Order>, moved: Moved, version: i64) -> Outcome {
    let Some(mut order) = current else { return Ok(Decision::Unchanged("no such order")) };
    if version <= order.paid.version {
        return Ok(Decision::Unchanged("a payments event older than one already applied (a stale duplicate)"));
    }
    match moved {
        Moved::Captured { amount } => order.paid.captured = amount,
        Moved::Refunded { total } => order.paid.refunded = total,
    }
    order.paid.version = version;
    Ok(Decision::Changed { state: order, events: Vec::new() })
}

/// A PENDING order whose payment deadline passed is cancelled.
pub fn payment_timed_out(order: Order, now: DateTime<Utc>) -> Outcome {
    if order.status != Status::Pending {
        return Ok(Decision::Unchanged("the order is no longer PENDING"));
    }
    let message = format!("no payment decision by {}", order.payment_deadline.to_rfc3339());
    cancel(order, "PAYMENT_TIMEOUT", message, now)
}

#[cfg(test)]
mod tests {
    use orderflow_contracts::ids::{OrderId, UserId};
    use orderflow_runtime::testing::given;

    use super::*;

    fn placement(quantity: i64) -> Placement {
        Placement {
            id: OrderId(Uuid::now_v7()),
            customer: UserId(Uuid::now_v7()),
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

    const ACTIVE: Option<Customer> = Some(Customer { active: true });
    const DEADLINE: chrono::Duration = chrono::Duration::seconds(60);

    /// A PENDING order of `quantity` widgets at 12.50.
    fn pending(quantity: i64) -> Order {
        given(ACTIVE)
            .when(|customer| place(&placement(quantity), customer, origin(), Utc::now(), DEADLINE))
            .then_emits(&["OrderPlaced"])
            .0
    }

    fn confirmed() -> Order {
        given(Some(pending(2)))
            .when(|o| payment_authorized(o, PaymentId(Uuid::now_v7()), Utc::now()))
            .then_emits(&["OrderConfirmed"])
            .0
    }

    /// A command sent just now, with the default grace for a capture.
    fn at(now: DateTime<Utc>) -> Timing {
        Timing { now, sent_at: now, capture_grace: chrono::Duration::seconds(30) }
    }

    /// Order `order` asked (now) to become `to`.
    fn asked(order: Option<Order>, to: Status) -> Outcome {
        let id = order.as_ref().map_or_else(|| "none".to_owned(), |o| o.id.to_string());
        command(order, &id, to, at(Utc::now()))
    }

    /// Money recorded on `order`: (payment version, what moved).
    fn recorded(order: Order, version: i64, moved: Moved) -> Order {
        given(Some(order)).when(|o| money_moved(o, moved, version)).then_emits(&[]).0
    }

    /// A CONFIRMED order whose payment (version 1 authorized) was captured
    /// in full (version 2).
    fn captured() -> Order {
        let order = confirmed();
        let total = order.total;
        recorded(order, 2, Moved::Captured { amount: total })
    }

    #[test]
    fn placing_an_order_for_an_active_customer_makes_it_pending_with_its_total_and_deadline() {
        let now = Utc::now();
        let (order, events) =
            given(ACTIVE).when(|c| place(&placement(2), c, origin(), now, DEADLINE)).then_emits(&["OrderPlaced"]);
        assert_eq!((order.status, order.total, order.version), (Status::Pending, 2500, 1));
        assert_eq!(order.payment_deadline, now + DEADLINE);
        assert_eq!(events[0].message.version(), Some(1));
    }

    #[test]
    fn placing_an_order_for_an_unknown_or_deactivated_customer_is_refused() {
        let now = Utc::now();
        given(None).when(|c| place(&placement(2), c, origin(), now, DEADLINE)).then_refused(Reason::UnknownCustomer);
        given(Some(Customer { active: false }))
            .when(|c| place(&placement(2), c, origin(), now, DEADLINE))
            .then_refused(Reason::CustomerDeactivated);
    }

    #[test]
    fn placing_an_order_with_a_line_that_breaks_a_rule_is_refused_naming_the_line() {
        let message = given(ACTIVE)
            .when(|c| place(&placement(0), c, origin(), Utc::now(), DEADLINE))
            .then_refused(Reason::InvalidOrder);
        assert!(message.contains("items[0].quantity"), "{message}");
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
    }

    #[test]
    fn a_pending_order_asked_to_ship_is_an_illegal_transition_not_an_unpaid_one() {
        given(Some(pending(1))).when(|o| asked(o, Status::Shipped)).then_refused(Reason::IllegalTransition);
    }

    #[test]
    fn a_command_for_no_order_is_refused() {
        given(None).when(|o| asked(o, Status::Cancelled)).then_refused(Reason::OrderNotFound);
    }

    #[test]
    fn a_pending_or_confirmed_order_is_cancelled_on_request() {
        for order in [pending(1), confirmed()] {
            let (order, _) = given(Some(order)).when(|o| asked(o, Status::Cancelled)).then_emits(&["OrderCancelled"]);
            assert_eq!((order.status, order.reason.as_deref()), (Status::Cancelled, Some(orders::REQUESTED)));
        }
    }

    #[test]
    fn a_captured_order_ships_then_is_delivered_and_then_nothing_more() {
        let (order, _) = given(Some(captured())).when(|o| asked(o, Status::Shipped)).then_emits(&["OrderShipped"]);
        assert_eq!((order.status, order.version), (Status::Shipped, 3));
        given(Some(order.clone())).when(|o| asked(o, Status::Cancelled)).then_refused(Reason::IllegalTransition);
        let (order, _) = given(Some(order)).when(|o| asked(o, Status::Delivered)).then_emits(&["OrderDelivered"]);
        assert_eq!((order.status, order.version), (Status::Delivered, 4));
        for to in [Status::Cancelled, Status::Shipped, Status::Delivered, Status::Confirmed] {
            given(Some(order.clone())).when(|o| asked(o, to)).then_refused(Reason::IllegalTransition);
        }
    }

    #[test]
    fn a_fully_refunded_order_does_not_ship() {
        // Given a captured order an admin refunded in full
        let order = captured();
        let total = order.total;
        let order = recorded(order, 3, Moved::Refunded { total });
        // When an admin ships it, then it is refused NOT_PAID, naming the money
        let why = given(Some(order)).when(|o| asked(o, Status::Shipped)).then_refused(Reason::NotPaid);
        assert!(why.contains("refunded in full") && why.contains("captured 2500, refunded 2500"), "{why}");
    }

    #[test]
    fn a_partly_refunded_order_still_ships() {
        // Given a captured order of 2500 with 1000 refunded (a scratched item)
        let order = recorded(captured(), 3, Moved::Refunded { total: 1000 });
        // When an admin ships it, then it ships what was paid for
        let (order, _) = given(Some(order)).when(|o| asked(o, Status::Shipped)).then_emits(&["OrderShipped"]);
        assert_eq!(order.paid, Paid { captured: 2500, refunded: 1000, version: 3 });
    }

    #[test]
    fn a_capture_not_seen_yet_is_waited_for_then_refused() {
        // Given a confirmed order whose capture this service has not seen
        let order = confirmed();
        let id = order.id.to_string();
        let now = Utc::now();
        // When a ShipOrder sent 10 s ago is decided (within the 30 s grace), then it waits
        let recent = Timing { sent_at: now - chrono::Duration::seconds(10), ..at(now) };
        given(Some(order.clone())).when(|o| command(o, &id, Status::Shipped, recent)).then_waits();
        // When it was sent 31 s ago, then it is refused NOT_PAID
        let old = Timing { sent_at: now - chrono::Duration::seconds(31), ..at(now) };
        let why =
            given(Some(order.clone())).when(|o| command(o, &id, Status::Shipped, old)).then_refused(Reason::NotPaid);
        assert!(why.contains("not captured"), "{why}");
        // And a grace of 0 never waits
        let impatient = Timing { capture_grace: chrono::Duration::zero(), ..at(now) };
        given(Some(order)).when(|o| command(o, &id, Status::Shipped, impatient)).then_refused(Reason::NotPaid);
    }

    #[test]
    fn an_authorized_payment_confirms_a_pending_order_once() {
        let order = confirmed();
        assert_eq!((order.status, order.version), (Status::Confirmed, 2));
        assert!(order.payment_id.is_some());
        given(Some(order)).when(|o| payment_authorized(o, PaymentId(Uuid::now_v7()), Utc::now())).then_unchanged();
        given(None).when(|o| payment_authorized(o, PaymentId(Uuid::now_v7()), Utc::now())).then_unchanged();
    }

    #[test]
    fn a_declined_payment_cancels_a_pending_order_with_the_providers_message() {
        let (order, _) = given(Some(pending(1)))
            .when(|o| payment_declined(o, "over the limit", Utc::now()))
            .then_emits(&["OrderCancelled"]);
        assert_eq!(order.reason.as_deref(), Some("PAYMENT_DECLINED"));
        given(Some(order)).when(|o| payment_declined(o, "again", Utc::now())).then_unchanged();
    }

    #[test]
    fn a_pending_order_past_its_deadline_is_cancelled_and_late_saga_events_change_nothing() {
        let now = Utc::now();
        let (order, _) = given(pending(1)).when(|o| payment_timed_out(o, now)).then_emits(&["OrderCancelled"]);
        assert_eq!((order.status, order.reason.as_deref()), (Status::Cancelled, Some("PAYMENT_TIMEOUT")));
        given(Some(order.clone())).when(|o| payment_authorized(o, PaymentId(Uuid::now_v7()), now)).then_unchanged();
        given(Some(order.clone())).when(|o| payment_declined(o, "no", now)).then_unchanged();
        given(order).when(|o| payment_timed_out(o, now)).then_unchanged();
    }

    #[test]
    fn money_is_recorded_once_in_the_payments_order_without_changing_the_order() {
        // Given a captured order refunded in part (version 3), then in full (version 4)
        let order = recorded(captured(), 3, Moved::Refunded { total: 1000 });
        let order = recorded(order, 4, Moved::Refunded { total: 2500 });
        assert_eq!(order.paid, Paid { captured: 2500, refunded: 2500, version: 4 });
        assert_eq!(order.version, 2, "recording money is no change of the order's lifecycle");
        // When stale duplicates of the capture and the refunds arrive, then nothing changes
        for (version, moved) in [
            (2, Moved::Captured { amount: 2500 }),
            (3, Moved::Refunded { total: 1000 }),
            (4, Moved::Refunded { total: 2500 }),
        ] {
            given(Some(order.clone())).when(|o| money_moved(o, moved, version)).then_unchanged();
        }
        // And money for an order not known here changes nothing
        given(None).when(|o| money_moved(o, Moved::Captured { amount: 1 }, 2)).then_unchanged();
    }
}
