//! Outcomes of events written before the service kit put them on the bus
//! (before 78b46e2): which event answered which command, as the projector
//! knew it then. Used only for an event without outcome headers, so that
//! replaying older topics (a rebuild) and events in flight during an
//! upgrade still settle their commands — nothing accepted stays pending.
//! Events of the current kit carry their outcome (or were caused by no
//! command: a saga step, a deadline), and none of them matches here
//! without one: every event mapped below is a command's own answer.

use orderflow_bus::{CommandOutcome, Settled};
use orderflow_contracts::orders::{self, OrderEvent};
use orderflow_contracts::outcomes::CommandRejected;
use orderflow_contracts::payments::{self, PaymentEvent};
use orderflow_contracts::users::UserEvent;

fn succeeded(command_type: &str, key: &str, version: i64) -> Option<CommandOutcome> {
    let settled = Settled::Succeeded { version: Some(version) };
    Some(CommandOutcome { command_type: command_type.to_owned(), command_key: key.to_owned(), settled })
}

fn rejected(command_type: &str, key: &str, reason: &str, message: &str) -> Option<CommandOutcome> {
    let settled = Settled::Rejected { reason: reason.to_owned(), message: message.to_owned() };
    Some(CommandOutcome { command_type: command_type.to_owned(), command_key: key.to_owned(), settled })
}

fn generic(e: &CommandRejected) -> Option<CommandOutcome> {
    rejected(&e.command_type, &e.aggregate_id, &e.reason, &e.message)
}

/// An event of a domain's event topic, decoded.
#[derive(Debug)]
pub enum Event {
    User(UserEvent),
    Order(OrderEvent),
    Payment(PaymentEvent),
}

impl Event {
    /// The command it answered, by its type.
    pub fn outcome(&self) -> Option<CommandOutcome> {
        match self {
            Event::User(event) => users(event),
            Event::Order(event) => orders(event),
            Event::Payment(event) => payments(event),
        }
    }
}

fn users(event: &UserEvent) -> Option<CommandOutcome> {
    match event {
        UserEvent::Registered(e) => succeeded("RegisterUser", &e.user_id, e.version),
        UserEvent::ProfileUpdated(e) => succeeded("UpdateUserProfile", &e.user_id, e.version),
        UserEvent::PasswordChanged(e) => succeeded("ChangeUserPassword", &e.user_id, e.version),
        UserEvent::Deactivated(e) => succeeded("DeactivateUser", &e.user_id, e.version),
        UserEvent::Erased(e) => succeeded("EraseUser", &e.user_id, e.version),
        UserEvent::Rejected(e) => generic(e),
        UserEvent::RetiredRegistrationRejected(e) => rejected("RegisterUser", &e.user_id, &e.reason, &e.message),
        UserEvent::RetiredCommandRejected(e) => rejected(&e.command_type, &e.user_id, &e.reason, &e.message),
    }
}

fn orders(event: &OrderEvent) -> Option<CommandOutcome> {
    match event {
        OrderEvent::Placed(e) => succeeded("PlaceOrder", &e.order_id, e.version),
        OrderEvent::Cancelled(e) if e.reason == orders::REQUESTED => succeeded("CancelOrder", &e.order_id, e.version),
        OrderEvent::Shipped(e) => succeeded("ShipOrder", &e.order_id, e.version),
        OrderEvent::Delivered(e) => succeeded("DeliverOrder", &e.order_id, e.version),
        OrderEvent::Rejected(e) => generic(e),
        OrderEvent::RetiredRejected(e) => rejected(&e.command_type, &e.order_id, &e.reason, &e.message),
        // The saga's own steps (a confirmation, a cancellation by the
        // payment or the deadline) answer no command.
        OrderEvent::StockReserved(_) | OrderEvent::Confirmed(_) | OrderEvent::Cancelled(_) => None,
    }
}

fn payments(event: &PaymentEvent) -> Option<CommandOutcome> {
    match event {
        PaymentEvent::Refunded(e) if e.reason == payments::REQUESTED => {
            succeeded("RefundPayment", &e.order_id, e.version)
        }
        PaymentEvent::Rejected(e) => generic(e),
        PaymentEvent::RetiredCommandRejected(e) => rejected(&e.command_type, &e.order_id, &e.reason, &e.message),
        _ => None,
    }
}
