//! What an order does to stock: pure decisions over the order's
//! reservation and the products its lines name, testable without a
//! database (given/when/then, below). [`crate::store`] locks the products
//! in sku order and loads the reservation; the kit does the rest.
//!
//! A placed order holds every line or none (`StockReserved`, or
//! `StockReservationFailed` naming the first line that failed); its
//! confirmation sells what it holds (`StockCommitted`: the units leave on
//! hand and reserved); its cancellation puts them up for sale again
//! (`StockReleased`: no longer reserved, or back on hand if they were
//! sold). Each order is reserved once: a republished `OrderPlaced` finds
//! its reservation and changes nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use orderflow_contracts::Reason;
use orderflow_contracts::ids::OrderId;
use orderflow_contracts::inventory::{
    self, StockCommitted, StockLine, StockReleased, StockReservationFailed, StockReserved,
};
use orderflow_runtime::{Decided, Decision, Emit};

use crate::input::Placement;
use crate::rules::Product;

/// Where an order's reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its units are reserved for it.
    Held,
    /// Confirmed: its units left the stock.
    Sold,
    /// Cancelled: its units are for sale again.
    Released,
    /// Nothing could be held (nothing was).
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Held => "HELD",
            State::Sold => "SOLD",
            State::Released => "RELEASED",
            State::Failed => "FAILED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [State::Held, State::Sold, State::Released, State::Failed].into_iter().find(|s| s.as_str() == raw)
    }
}

/// One order's reservation: its units per sku.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub order: OrderId,
    pub state: State,
    /// (sku, units), in sku order.
    pub lines: Vec<(String, i64)>,
}

/// The products an order names, by sku (locked for the transaction).
pub type Products = BTreeMap<String, Product>;

/// What a decision changes: the reservation, and the products whose stock
/// moved (with their new versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stock {
    pub reservation: Reservation,
    pub products: Vec<Product>,
}

/// An order's (units, unit price) per sku, its lines of one sku merged; a
/// sku listed at two prices gets the price -1 (it cannot match the
/// catalog's twice).
fn units(placement: &Placement) -> BTreeMap<&str, (i64, i64)> {
    let mut units: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for line in &placement.lines {
        let entry = units.entry(line.sku.as_str()).or_insert((0, line.unit_price));
        entry.0 = entry.0.saturating_add(line.quantity);
        if entry.1 != line.unit_price {
            entry.1 = -1;
        }
    }
    units
}

fn line(product: &Product, quantity: i64) -> StockLine {
    StockLine {
        sku: product.sku.to_string(),
        quantity,
        on_hand: product.on_hand,
        reserved: product.reserved,
        version: product.version,
    }
}

/// Holds every line of `placement`, or none (`existing`: its reservation,
/// if it was reserved before).
pub fn reserve(
    placement: &Placement,
    existing: Option<&Reservation>,
    products: &Products,
    now: DateTime<Utc>,
) -> Decided<Stock> {
    if existing.is_some() {
        return Ok(Decision::Unchanged("the order was reserved before"));
    }
    let order = placement.order;
    let failed = |reason: Reason, message: String, sku: &str, requested: i64, available: Option<i64>| {
        let event = StockReservationFailed {
            order_id: order.to_string(),
            customer_id: placement.customer.to_string(),
            reason: reason.as_str().to_owned(),
            message,
            sku: sku.to_owned(),
            requested,
            available,
            failed_at: now.timestamp_millis(),
        };
        let reservation = Reservation { order, state: State::Failed, lines: Vec::new() };
        Ok(Decision::Changed {
            state: Stock { reservation, products: Vec::new() },
            events: vec![Emit::new(inventory::EVENTS, event)],
        })
    };
    let mut changed = Vec::new();
    let mut lines = Vec::new();
    let mut held = Vec::new();
    let mut total: i64 = 0;
    for (sku, (quantity, unit_price)) in units(placement) {
        let Some(product) = products.get(sku) else {
            return failed(Reason::UnknownProduct, format!("no product has sku {sku}"), sku, quantity, None);
        };
        if product.currency != placement.currency || product.price != unit_price {
            let message = format!(
                "{sku} costs {} {} now; the order says {} {}",
                product.price, product.currency, unit_price, placement.currency
            );
            return failed(Reason::PriceChanged, message, sku, quantity, Some(product.available()));
        }
        if product.available() < quantity {
            let message = format!("{sku}: {quantity} asked for, {} available", product.available());
            return failed(Reason::OutOfStock, message, sku, quantity, Some(product.available()));
        }
        let Some(sum) = quantity.checked_mul(product.price).and_then(|line| line.checked_add(total)) else {
            let message = format!("{sku}: the order's total does not fit in minor units");
            return failed(Reason::OutOfStock, message, sku, quantity, Some(product.available()));
        };
        total = sum;
        let mut product = product.clone();
        product.reserved += quantity;
        product.version += 1;
        lines.push(line(&product, quantity));
        held.push((sku.to_owned(), quantity));
        changed.push(product);
    }
    let reserved = StockReserved {
        order_id: order.to_string(),
        customer_id: placement.customer.to_string(),
        currency: placement.currency.clone(),
        total,
        lines,
        reserved_at: now.timestamp_millis(),
    };
    let reservation = Reservation { order, state: State::Held, lines: held };
    Ok(Decision::Changed {
        state: Stock { reservation, products: changed },
        events: vec![Emit::new(inventory::EVENTS, reserved)],
    })
}

/// Moves the units of `reservation` by `step`, and the event that says so.
fn move_units(
    reservation: &Reservation,
    products: &Products,
    step: impl Fn(&mut Product, i64),
) -> (Vec<Product>, Vec<StockLine>) {
    let mut changed = Vec::new();
    let mut lines = Vec::new();
    for (sku, quantity) in &reservation.lines {
        // The products of a reservation are never deleted.
        let Some(product) = products.get(sku) else { continue };
        let mut product = product.clone();
        step(&mut product, *quantity);
        product.version += 1;
        lines.push(line(&product, *quantity));
        changed.push(product);
    }
    (changed, lines)
}

/// A confirmed order: what it holds is sold.
pub fn commit(reservation: Option<Reservation>, products: &Products, now: DateTime<Utc>) -> Decided<Stock> {
    let Some(mut reservation) = reservation.filter(|r| r.state == State::Held) else {
        return Ok(Decision::Unchanged("the order holds no stock"));
    };
    let (changed, lines) = move_units(&reservation, products, |p, q| {
        p.on_hand -= q;
        p.reserved -= q;
    });
    reservation.state = State::Sold;
    let event = StockCommitted { order_id: reservation.order.to_string(), lines, committed_at: now.timestamp_millis() };
    Ok(Decision::Changed {
        state: Stock { reservation, products: changed },
        events: vec![Emit::new(inventory::EVENTS, event)],
    })
}

/// A cancelled order (`reason`: why): what it held or bought is for sale again.
pub fn release(
    reservation: Option<Reservation>,
    products: &Products,
    reason: &str,
    now: DateTime<Utc>,
) -> Decided<Stock> {
    let Some(mut reservation) = reservation.filter(|r| matches!(r.state, State::Held | State::Sold)) else {
        return Ok(Decision::Unchanged("the order holds no stock"));
    };
    let sold = reservation.state == State::Sold;
    let (changed, lines) = move_units(&reservation, products, |p, q| {
        if sold {
            p.on_hand += q;
        } else {
            p.reserved -= q;
        }
    });
    reservation.state = State::Released;
    let event = StockReleased {
        order_id: reservation.order.to_string(),
        reason: reason.to_owned(),
        lines,
        released_at: now.timestamp_millis(),
    };
    Ok(Decision::Changed {
        state: Stock { reservation, products: changed },
        events: vec![Emit::new(inventory::EVENTS, event)],
    })
}

#[cfg(test)]
mod tests {
    use orderflow_contracts::ids::{Sku, UserId};
    use orderflow_runtime::testing::given;
    use uuid::Uuid;

    use super::*;
    use crate::input::Line;

    fn product(sku: &str, price: i64, on_hand: i64, reserved: i64) -> Product {
        Product {
            sku: Sku::parse("sku", sku).expect("sku"),
            name: sku.to_owned(),
            description: String::new(),
            price,
            currency: "EUR".into(),
            on_hand,
            reserved,
            version: 3,
        }
    }

    fn catalog() -> Products {
        [product("MUG", 1250, 5, 1), product("TEA", 400, 10, 0)].into_iter().map(|p| (p.sku.to_string(), p)).collect()
    }

    fn placement(lines: &[(&str, i64, i64)]) -> Placement {
        Placement {
            order: OrderId(Uuid::now_v7()),
            customer: UserId(Uuid::now_v7()),
            currency: "EUR".into(),
            lines: lines.iter().map(|(sku, q, p)| Line { sku: (*sku).into(), quantity: *q, unit_price: *p }).collect(),
        }
    }

    #[test]
    fn a_placed_order_holds_every_line_with_the_catalogs_total() {
        let order = placement(&[("TEA", 2, 400), ("MUG", 3, 1250), ("TEA", 1, 400)]);
        let (stock, events) =
            given(catalog()).when(|c| reserve(&order, None, &c, Utc::now())).then_emits(&["StockReserved"]);
        assert_eq!(stock.reservation.lines, [("MUG".to_owned(), 3), ("TEA".to_owned(), 3)]);
        let reserved: Vec<_> = stock.products.iter().map(|p| (p.sku.to_string(), p.reserved, p.version)).collect();
        assert_eq!(reserved, [("MUG".into(), 4, 4), ("TEA".into(), 3, 4)]);
        assert_eq!(stock.reservation.state, State::Held);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn one_line_that_cannot_be_held_holds_nothing_and_says_which_and_why() {
        for (lines, reason) in [
            (vec![("TEA", 1, 400), ("MUG", 5, 1250)], Reason::OutOfStock),
            (vec![("TEA", 1, 400), ("NOPE", 1, 1)], Reason::UnknownProduct),
            (vec![("MUG", 1, 1200)], Reason::PriceChanged),
            (vec![("MUG", 1, 1250), ("MUG", 1, 1300)], Reason::PriceChanged),
        ] {
            let order = placement(&lines);
            let (stock, _) = given(catalog())
                .when(|c| reserve(&order, None, &c, Utc::now()))
                .then_emits(&["StockReservationFailed"]);
            assert_eq!((stock.reservation.state, stock.products.len()), (State::Failed, 0), "{reason}");
        }
    }

    #[test]
    fn an_order_is_reserved_once() {
        let order = placement(&[("TEA", 1, 400)]);
        let before = Reservation { order: order.order, state: State::Held, lines: vec![("TEA".into(), 1)] };
        given(catalog()).when(|c| reserve(&order, Some(&before), &c, Utc::now())).then_unchanged();
    }

    #[test]
    fn confirmation_sells_what_is_held_and_cancellation_puts_it_up_for_sale_again() {
        let order = OrderId(Uuid::now_v7());
        let held = Reservation { order, state: State::Held, lines: vec![("MUG".into(), 1)] };
        let (sold, _) =
            given(catalog()).when(|c| commit(Some(held.clone()), &c, Utc::now())).then_emits(&["StockCommitted"]);
        assert_eq!((sold.products[0].on_hand, sold.products[0].reserved), (4, 0));
        assert_eq!(sold.reservation.state, State::Sold);

        let (released, _) = given(catalog())
            .when(|c| release(Some(held), &c, "PAYMENT_DECLINED", Utc::now()))
            .then_emits(&["StockReleased"]);
        assert_eq!((released.products[0].on_hand, released.products[0].reserved), (5, 0));
        let (restocked, _) = given(catalog())
            .when(|c| release(Some(sold.reservation), &c, "REQUESTED", Utc::now()))
            .then_emits(&["StockReleased"]);
        assert_eq!((restocked.products[0].on_hand, restocked.products[0].reserved), (6, 1), "back on hand");
    }

    #[test]
    fn what_holds_nothing_moves_nothing() {
        let order = OrderId(Uuid::now_v7());
        given(catalog()).when(|c| commit(None, &c, Utc::now())).then_unchanged();
        given(catalog()).when(|c| release(None, &c, "REQUESTED", Utc::now())).then_unchanged();
        for state in [State::Released, State::Failed] {
            let done = Reservation { order, state, lines: vec![("MUG".into(), 1)] };
            given(catalog()).when(|c| commit(Some(done.clone()), &c, Utc::now())).then_unchanged();
            given(catalog()).when(|c| release(Some(done), &c, "REQUESTED", Utc::now())).then_unchanged();
        }
        let sold = Reservation { order, state: State::Sold, lines: vec![("MUG".into(), 1)] };
        given(catalog()).when(|c| commit(Some(sold), &c, Utc::now())).then_unchanged();
    }
}
