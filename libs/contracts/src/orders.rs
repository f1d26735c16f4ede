//! Messages of the orders domain: `orders.commands` and `orders.events`,
//! all keyed by the order id, and the rules every writer of a `PlaceOrder`
//! checks ([`check`]).

use serde::{Deserialize, Serialize};

use crate::outcomes::CommandRejected;
use crate::{Topic, commands_on, contract, family, money, schema_files};

/// Commands of the orders domain (the ingress writes, the order service reads).
pub const COMMANDS: Topic = Topic::commands("orders.commands");
/// Commands of the orders domain that a consumer gave up on: the projector
/// settles them as failed.
pub const DEAD_COMMANDS: Topic = Topic::dead_letters("orders.commands.dlq");
/// Events of the orders domain.
pub const EVENTS: Topic = Topic::events("orders.events");
/// Every topic of the orders domain.
pub const TOPICS: &[Topic] = &[COMMANDS, EVENTS];

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: String,
    pub name: String,
    pub quantity: i64,
    /// Minor units of the order's currency.
    pub unit_price: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub order_id: String,
    pub customer_id: String,
    pub items: Vec<OrderLine>,
    pub currency: String,
    pub shipping_address: ShippingAddress,
    pub notes: Option<String>,
}
contract!(PlaceOrder, "orderflow.orders.commands", "orders", order_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    pub order_id: String,
}
contract!(CancelOrder, "orderflow.orders.commands", "orders", order_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipOrder {
    pub order_id: String,
}
contract!(ShipOrder, "orderflow.orders.commands", "orders", order_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverOrder {
    pub order_id: String,
}
contract!(DeliverOrder, "orderflow.orders.commands", "orders", order_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: String,
    pub customer_id: String,
    pub items: Vec<OrderLine>,
    pub currency: String,
    pub total: i64,
    pub shipping_address: ShippingAddress,
    pub notes: Option<String>,
    pub version: i64,
    pub placed_at: i64,
    pub payment_deadline: i64,
}
contract!(OrderPlaced, "orderflow.orders.events", "orders", order_id, version, subject = customer_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStockReserved {
    pub order_id: String,
    pub customer_id: String,
    pub currency: String,
    pub total: i64,
    pub version: i64,
    pub reserved_at: i64,
}
contract!(OrderStockReserved, "orderflow.orders.events", "orders", order_id, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub order_id: String,
    pub payment_id: String,
    pub version: i64,
    pub confirmed_at: i64,
}
contract!(OrderConfirmed, "orderflow.orders.events", "orders", order_id, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: String,
    /// [`REQUESTED`], `PAYMENT_DECLINED` or `PAYMENT_TIMEOUT`.
    pub reason: String,
    pub message: String,
    pub version: i64,
    pub cancelled_at: i64,
}
contract!(OrderCancelled, "orderflow.orders.events", "orders", order_id, version);

/// The reason of a cancellation a `CancelOrder` command asked for (the
/// others are the saga's own: `PAYMENT_DECLINED`, `PAYMENT_TIMEOUT`).
pub const REQUESTED: &str = "REQUESTED";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderShipped {
    pub order_id: String,
    pub version: i64,
    pub shipped_at: i64,
}
contract!(OrderShipped, "orderflow.orders.events", "orders", order_id, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDelivered {
    pub order_id: String,
    pub version: i64,
    pub delivered_at: i64,
}
contract!(OrderDelivered, "orderflow.orders.events", "orders", order_id, version);

/// Retired (see [`OrderEvent`]): no longer published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRejected {
    pub order_id: String,
    pub command_type: String,
    pub reason: String,
    pub message: String,
}
contract!(OrderRejected, "orderflow.orders.events", "orders", order_id);

family!(OrderCommand {
    Place(PlaceOrder),
    Cancel(CancelOrder),
    Ship(ShipOrder),
    Deliver(DeliverOrder),
});

family!(OrderEvent {
    Placed(OrderPlaced),
    StockReserved(OrderStockReserved),
    Confirmed(OrderConfirmed),
    Cancelled(OrderCancelled),
    Shipped(OrderShipped),
    Delivered(OrderDelivered),
    Rejected(CommandRejected),
    // Retired: rejections before the kit published [`CommandRejected`];
    // still read, so that older topics replay.
    RetiredRejected(OrderRejected),
});

commands_on!(COMMANDS => PlaceOrder, CancelOrder, ShipOrder, DeliverOrder);

schema_files!(
    "orders":
    PlaceOrder,
    CancelOrder,
    ShipOrder,
    DeliverOrder,
    OrderPlaced,
    OrderStockReserved,
    OrderConfirmed,
    OrderCancelled,
    OrderShipped,
    OrderDelivered,
    OrderRejected,
);

/// Lines in one order at most.
pub const MAX_LINES: usize = 100;

/// The longest texts of an order, in characters (a product id is a
/// catalog sku: [`crate::ids::Sku`]).
pub const MAX_PRODUCT_ID: usize = crate::ids::Sku::MAX_LEN;
pub const MAX_ITEM_NAME: usize = 200;
pub const MAX_ADDRESS_LINE: usize = 200;
pub const MAX_CITY: usize = 100;
pub const MAX_POSTAL_CODE: usize = 20;
pub const MAX_NOTES: usize = 1000;

/// The size of the largest valid `POST /orders` body as a client would
/// write it (compact JSON, every character at UTF-8's longest, 4 bytes, no
/// escapes), with room for the names and punctuation: the ingress's body
/// limit may not be smaller, or a valid order would be refused 413.
pub const MAX_JSON_BYTES: usize = {
    const NUMBER: usize = 20; // an i64
    const LINE: usize = 4 * (MAX_PRODUCT_ID + MAX_ITEM_NAME) + 2 * NUMBER + 80;
    const ADDRESS: usize = 4 * (3 * MAX_ADDRESS_LINE + MAX_CITY + MAX_POSTAL_CODE + 2) + 120;
    MAX_LINES * LINE + ADDRESS + 4 * MAX_NOTES + 200
};

/// What is wrong with an order, naming the field (`items[2].quantity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn problem(field: impl Into<String>, problem: impl Into<String>) -> Problem {
    Problem { field: field.into(), problem: problem.into() }
}

/// A text of 1 to `max` characters without control characters.
fn text(field: &str, value: &str, max: usize) -> Result<(), Problem> {
    let length = value.chars().count();
    if value.trim().is_empty() {
        return Err(problem(field, "must not be empty"));
    }
    if length > max {
        return Err(problem(field, format!("must be at most {max} characters (got {length})")));
    }
    if value.chars().any(char::is_control) {
        return Err(problem(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks an order as the client wrote it and returns its total: at least
/// one and at most [`MAX_LINES`] lines, quantities of at least 1, prices of
/// at least 0, one known currency, a total that fits, a complete address.
pub fn check(
    items: &[OrderLine],
    currency: &str,
    address: &ShippingAddress,
    notes: Option<&str>,
) -> Result<i64, Problem> {
    if items.is_empty() {
        return Err(problem("items", "an order needs at least one item"));
    }
    if items.len() > MAX_LINES {
        return Err(problem("items", format!("at most {MAX_LINES} items per order (got {})", items.len())));
    }
    for (i, line) in items.iter().enumerate() {
        if let Some(wrong) = crate::ids::Sku::problem(&line.product_id) {
            return Err(problem(format!("items[{i}].product_id"), wrong));
        }
        text(&format!("items[{i}].name"), &line.name, MAX_ITEM_NAME)?;
        if line.quantity < 1 {
            return Err(problem(format!("items[{i}].quantity"), format!("must be at least 1 (got {})", line.quantity)));
        }
        if line.unit_price < 0 {
            return Err(problem(
                format!("items[{i}].unit_price"),
                format!("must be at least 0 minor units (got {})", line.unit_price),
            ));
        }
    }
    if !money::is_currency(currency) {
        return Err(problem("currency", format!("`{currency}` is not an ISO 4217 currency code (e.g. EUR)")));
    }
    text("shipping_address.name", &address.name, MAX_ADDRESS_LINE)?;
    text("shipping_address.line1", &address.line1, MAX_ADDRESS_LINE)?;
    if let Some(line2) = &address.line2
        && !line2.is_empty()
    {
        text("shipping_address.line2", line2, MAX_ADDRESS_LINE)?;
    }
    text("shipping_address.city", &address.city, MAX_CITY)?;
    text("shipping_address.postal_code", &address.postal_code, MAX_POSTAL_CODE)?;
    let country = &address.country;
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(problem(
            "shipping_address.country",
            format!("`{country}` is not an ISO 3166-1 alpha-2 code (e.g. DE)"),
        ));
    }
    if let Some(notes) = notes
        && notes.chars().count() > MAX_NOTES
    {
        return Err(problem("notes", format!("must be at most {MAX_NOTES} characters")));
    }
    money::checked_total(items.iter().map(|l| (l.quantity, l.unit_price)))
        .ok_or_else(|| problem("items", "the total does not fit in 64-bit minor units"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: i64, unit_price: i64) -> OrderLine {
        OrderLine { product_id: "sku-1".into(), name: "Widget".into(), quantity, unit_price }
    }

    fn address() -> ShippingAddress {
        ShippingAddress {
            name: "Ada".into(),
            line1: "1 Analytical Way".into(),
            line2: None,
            city: "London".into(),
            postal_code: "N1".into(),
            country: "GB".into(),
        }
    }

    #[test]
    fn an_order_is_checked_field_by_field() {
        assert_eq!(check(&[line(2, 1250), line(1, 1)], "EUR", &address(), None), Ok(2501));
        let field =
            |items: &[OrderLine], currency: &str| check(items, currency, &address(), None).expect_err("refused").field;
        assert_eq!(field(&[], "EUR"), "items");
        assert_eq!(field(&[line(1, 1), line(0, 1)], "EUR"), "items[1].quantity");
        assert_eq!(field(&[line(-3, 1)], "EUR"), "items[0].quantity");
        assert_eq!(field(&[line(1, -1)], "EUR"), "items[0].unit_price");
        assert_eq!(field(&[line(2, i64::MAX)], "EUR"), "items");
        assert_eq!(field(&[line(1, 1)], "EURO"), "currency");
        let mut bad = address();
        bad.country = "Germany".into();
        assert_eq!(check(&[line(1, 1)], "EUR", &bad, None).expect_err("refused").field, "shipping_address.country");
    }
}
