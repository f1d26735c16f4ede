//! What the projector announces to the ingress when read models change:
//! one Postgres channel, written by the projector in the transaction that
//! changed the views (delivered on commit), read by the ingress's one
//! listener (the waiter, and the GraphQL subscriptions' `live`).
//!
//! A payload is a comma-separated list of entries: command ids (their
//! statuses changed), `order:<id>[:<customer>]` (an order's view changed;
//! its customer once known), or `*` after a generation switch (anything
//! may have changed).

use std::fmt::Display;

use uuid::Uuid;

/// The channel.
pub const CHANNEL: &str = "command_status";

/// The prefix of an order's entry.
pub const ORDER_CHANGED: &str = "order:";

/// The entry announcing that `order`'s view changed (of `customer`, when
/// it is known).
pub fn order_changed(order: impl Display, customer: Option<impl Display>) -> String {
    match customer {
        Some(customer) => format!("{ORDER_CHANGED}{order}:{customer}"),
        None => format!("{ORDER_CHANGED}{order}"),
    }
}

/// The order (and its customer) an entry announces; `None` for any other
/// entry.
pub fn parse_order_changed(entry: &str) -> Option<(Uuid, Option<Uuid>)> {
    let rest = entry.trim().strip_prefix(ORDER_CHANGED)?;
    let (order, customer) = match rest.split_once(':') {
        Some((order, customer)) => (order, Some(Uuid::parse_str(customer).ok()?)),
        None => (rest, None),
    };
    Some((Uuid::parse_str(order).ok()?, customer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_entry_reads_back_as_written_and_nothing_else_reads_as_one() {
        let (order, customer) = (Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001), Uuid::from_u128(7));
        assert_eq!(parse_order_changed(&order_changed(order, Some(customer))), Some((order, Some(customer))));
        assert_eq!(parse_order_changed(&order_changed(order, None::<Uuid>)), Some((order, None)));
        for other in [order.to_string(), "*".to_owned(), "order:".to_owned(), format!("order:{order}:x")] {
            assert_eq!(parse_order_changed(&other), None, "{other}");
        }
    }
}
