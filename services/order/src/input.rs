//! What the order service reads, as its rules see it: ids parsed once,
//! where the kit decodes a message, and only what the rules use. A command
//! whose id is not a uuid is refused here, before any rule runs; an event
//! the service does not act on is [`Input::Other`].

use orderflow_contracts::Refusal;
use orderflow_contracts::ids::{OrderId, PaymentId, UserId};
use orderflow_contracts::inventory::InventoryEvent;
use orderflow_contracts::orders::{OrderCommand, OrderLine, ShippingAddress};
use orderflow_contracts::payments::PaymentEvent;
use orderflow_contracts::users::UserEvent;

use crate::OrderInput;
use crate::rules::{Moved, Status};

// Decoded once and dropped after its input is handled: boxing the
// placement would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `PlaceOrder`.
    Place(Placement),
    /// `CancelOrder`, `ShipOrder`, `DeliverOrder`: order `id` asked to
    /// become `to`.
    Move { id: OrderId, to: Status },
    /// `UserRegistered` (active) or `UserDeactivated`: who may order.
    Customer { id: UserId, active: bool, version: i64 },
    /// `UserErased`: the customer orders no more, and their orders keep no
    /// address and no notes.
    Erased { id: UserId, version: i64 },
    /// `PaymentAuthorized`.
    Authorized { order: OrderId, payment: PaymentId },
    /// `PaymentDeclined`, with the provider's message.
    Declined { order: OrderId, message: String },
    /// `StockReserved`: every line is held.
    StockHeld { order: OrderId },
    /// `StockReservationFailed`: why, and which line.
    NotInStock { order: OrderId, reason: String, message: String },
    /// `PaymentCaptured`, `PaymentRefunded`: money moved, for the shipping
    /// guard; `version` is the payment's.
    Paid { order: OrderId, moved: Moved, version: i64 },
    /// Anything else of its topics: changes nothing here (its type, for
    /// the log).
    Other(&'static str),
}

/// A `PlaceOrder` (its lines are checked by [`crate::rules::place`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub id: OrderId,
    pub customer: UserId,
    pub items: Vec<OrderLine>,
    pub currency: String,
    pub shipping_address: ShippingAddress,
    pub notes: Option<String>,
}

impl TryFrom<OrderInput> for Input {
    type Error = Refusal;

    fn try_from(input: OrderInput) -> Result<Self, Refusal> {
        let order = |raw: &str| OrderId::parse("order_id", raw);
        Ok(match input {
            OrderInput::Command(OrderCommand::Place(c)) => Input::Place(Placement {
                id: order(&c.order_id)?,
                customer: UserId::parse("customer_id", &c.customer_id)?,
                items: c.items,
                currency: c.currency,
                shipping_address: c.shipping_address,
                notes: c.notes,
            }),
            OrderInput::Command(OrderCommand::Cancel(c)) => {
                Input::Move { id: order(&c.order_id)?, to: Status::Cancelled }
            }
            OrderInput::Command(OrderCommand::Ship(c)) => Input::Move { id: order(&c.order_id)?, to: Status::Shipped },
            OrderInput::Command(OrderCommand::Deliver(c)) => {
                Input::Move { id: order(&c.order_id)?, to: Status::Delivered }
            }
            OrderInput::User(UserEvent::Registered(e)) => {
                Input::Customer { id: UserId::parse("user_id", &e.user_id)?, active: true, version: e.version }
            }
            OrderInput::User(UserEvent::Deactivated(e)) => {
                Input::Customer { id: UserId::parse("user_id", &e.user_id)?, active: false, version: e.version }
            }
            OrderInput::User(UserEvent::Erased(e)) => {
                Input::Erased { id: UserId::parse("user_id", &e.user_id)?, version: e.version }
            }
            OrderInput::Payment(PaymentEvent::Authorized(e)) => Input::Authorized {
                order: order(&e.order_id)?,
                payment: PaymentId::parse("payment_id", &e.payment_id)?,
            },
            OrderInput::Stock(InventoryEvent::Reserved(e)) => Input::StockHeld { order: order(&e.order_id)? },
            OrderInput::Stock(InventoryEvent::ReservationFailed(e)) => {
                Input::NotInStock { order: order(&e.order_id)?, reason: e.reason, message: e.message }
            }
            OrderInput::Payment(PaymentEvent::Declined(e)) => {
                Input::Declined { order: order(&e.order_id)?, message: e.message }
            }
            OrderInput::Payment(PaymentEvent::Captured(e)) => Input::Paid {
                order: order(&e.order_id)?,
                moved: Moved::Captured { amount: e.amount },
                version: e.version,
            },
            OrderInput::Payment(PaymentEvent::Refunded(e)) => Input::Paid {
                order: order(&e.order_id)?,
                moved: Moved::Refunded { total: e.refunded_total },
                version: e.version,
            },
            other => Input::Other(orderflow_contracts::Family::name(&other)),
        })
    }
}
