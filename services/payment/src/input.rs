//! What the payment service reads, as its rules see it: ids parsed once,
//! where the kit decodes a message, and only what the rules use. A refund
//! whose ids are not uuids is refused here, before any rule runs; an
//! event the service does not act on is [`Input::Other`].

use orderflow_contracts::Refusal;
use orderflow_contracts::ids::{OrderId, PaymentId, UserId};
use orderflow_contracts::orders::OrderEvent;
use orderflow_contracts::payments::PaymentCommand;

use crate::PaymentInput;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `RefundPayment`: an admin's refund.
    Refund(Refund),
    /// `OrderStockReserved`: the order's lines are held; authorize its total.
    Placed(Placed),
    /// `OrderConfirmed`: capture.
    Confirmed { order: OrderId },
    /// `OrderCancelled`: void or refund.
    Cancelled { order: OrderId },
    /// Anything else of its topics: changes nothing here (its type, for
    /// the log).
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub order: OrderId,
    pub payment: PaymentId,
    /// Minor units.
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order: OrderId,
    pub customer: UserId,
    /// Minor units of `currency`.
    pub total: i64,
    pub currency: String,
}

impl TryFrom<PaymentInput> for Input {
    type Error = Refusal;

    fn try_from(input: PaymentInput) -> Result<Self, Refusal> {
        let order = |raw: &str| OrderId::parse("order_id", raw);
        Ok(match input {
            PaymentInput::Command(PaymentCommand::Refund(c)) => Input::Refund(Refund {
                order: order(&c.order_id)?,
                payment: PaymentId::parse("payment_id", &c.payment_id)?,
                amount: c.amount,
            }),
            PaymentInput::Order(OrderEvent::StockReserved(e)) => Input::Placed(Placed {
                order: order(&e.order_id)?,
                customer: UserId::parse("customer_id", &e.customer_id)?,
                total: e.total,
                currency: e.currency,
            }),
            PaymentInput::Order(OrderEvent::Confirmed(e)) => Input::Confirmed { order: order(&e.order_id)? },
            PaymentInput::Order(OrderEvent::Cancelled(e)) => Input::Cancelled { order: order(&e.order_id)? },
            other => Input::Other(orderflow_contracts::Family::name(&other)),
        })
    }
}
