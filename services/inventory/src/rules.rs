//! What each inventory command means: pure decisions over the current
//! state of one product, testable without a database (given/when/then,
//! below). [`crate::store`] loads and saves the state; the service kit
//! does everything else.
//!
//! Stock is two counts: `on_hand` (units in the warehouse) and `reserved`
//! (units orders hold); `available` = on hand − reserved is what may still
//! be sold. No adjustment takes on hand below what is reserved.

use chrono::{DateTime, Utc};
use orderflow_contracts::Reason;
use orderflow_contracts::ids::Sku;
use orderflow_contracts::inventory::{self, ProductCreated, ProductUpdated, StockAdjusted};
use orderflow_runtime::{Decided, Decision, Emit, Refusal};

use crate::input::{Change, NewProduct};

/// The state of one product, as the inventory service stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub sku: Sku,
    pub name: String,
    pub description: String,
    /// Minor units of `currency`.
    pub price: i64,
    pub currency: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// Incremented by every change; events carry it.
    pub version: i64,
}

impl Product {
    /// What may still be sold.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// A new product (version 1). (Whether its sku is taken, the store says:
/// [`sku_taken`].)
pub fn create(new: &NewProduct, now: DateTime<Utc>) -> (Product, Vec<Emit>) {
    let product = Product {
        sku: new.sku.clone(),
        name: new.name.clone(),
        description: new.description.clone(),
        price: new.price,
        currency: new.currency.clone(),
        on_hand: new.stock,
        reserved: 0,
        version: 1,
    };
    let created = ProductCreated {
        sku: product.sku.to_string(),
        name: product.name.clone(),
        description: product.description.clone(),
        price: product.price,
        currency: product.currency.clone(),
        on_hand: product.on_hand,
        version: 1,
        created_at: now.timestamp_millis(),
    };
    (product, vec![Emit::new(inventory::EVENTS, created)])
}

/// The refusal of a creation whose sku is in the catalog already.
pub fn sku_taken(new: &NewProduct) -> Refusal {
    Refusal::new(Reason::ProductExists, format!("a product with sku {} exists already", new.sku))
}

/// A change to the product `sku` (`current`: as loaded, `None` if unknown).
pub fn change(current: Option<Product>, sku: &Sku, change: &Change, now: DateTime<Utc>) -> Decided<Product> {
    let Some(mut product) = current else {
        return Err(Refusal::new(Reason::UnknownProduct, format!("no product has sku {sku}")).into());
    };
    product.version += 1;
    let event = match change {
        Change::Details { name, description, price } => {
            if let Some(name) = name {
                product.name.clone_from(name);
            }
            if let Some(description) = description {
                product.description.clone_from(description);
            }
            if let Some(price) = price {
                product.price = *price;
            }
            Emit::new(
                inventory::EVENTS,
                ProductUpdated {
                    sku: product.sku.to_string(),
                    name: product.name.clone(),
                    description: product.description.clone(),
                    price: product.price,
                    currency: product.currency.clone(),
                    version: product.version,
                    updated_at: now.timestamp_millis(),
                },
            )
        }
        Change::Stock { delta, reason } => {
            let on_hand = product.on_hand.checked_add(*delta).filter(|n| *n >= product.reserved);
            let Some(on_hand) = on_hand else {
                let message = format!(
                    "{sku} has {} on hand, {} of them reserved: {delta} would leave less than is reserved",
                    product.on_hand, product.reserved
                );
                return Err(Refusal::new(Reason::InsufficientStock, message).into());
            };
            product.on_hand = on_hand;
            Emit::new(
                inventory::EVENTS,
                StockAdjusted {
                    sku: product.sku.to_string(),
                    delta: *delta,
                    reason: reason.clone(),
                    on_hand,
                    reserved: product.reserved,
                    version: product.version,
                    adjusted_at: now.timestamp_millis(),
                },
            )
        }
    };
    Ok(Decision::Changed { state: product, events: vec![event] })
}

#[cfg(test)]
mod tests {
    use orderflow_runtime::testing::given;

    use super::*;

    fn sku() -> Sku {
        Sku::parse("sku", "MUG-1").expect("a sku")
    }

    fn new_mug() -> NewProduct {
        NewProduct {
            sku: sku(),
            name: "Mug".into(),
            description: "A mug".into(),
            price: 1250,
            currency: "EUR".into(),
            stock: 5,
        }
    }

    /// A mug with 5 on hand, 3 of them reserved.
    fn mug() -> Product {
        Product { reserved: 3, ..create(&new_mug(), Utc::now()).0 }
    }

    fn stock(delta: i64) -> Change {
        Change::Stock { delta, reason: "count".into() }
    }

    #[test]
    fn a_new_product_is_at_version_1_with_its_stock_on_hand_and_nothing_reserved() {
        let (product, events) = create(&new_mug(), Utc::now());
        assert_eq!((product.on_hand, product.reserved, product.available(), product.version), (5, 0, 5, 1));
        let names: Vec<_> = events.iter().map(|e| (e.message.name(), e.topic)).collect();
        assert_eq!(names, [("ProductCreated", inventory::EVENTS)]);
        assert_eq!(sku_taken(&new_mug()).reason, Reason::ProductExists);
    }

    #[test]
    fn an_update_changes_what_it_names_and_bumps_the_version() {
        let change = Change::Details { name: None, description: None, price: Some(1400) };
        let (product, _) =
            given(Some(mug())).when(|p| super::change(p, &sku(), &change, Utc::now())).then_emits(&["ProductUpdated"]);
        assert_eq!((product.name.as_str(), product.price, product.version), ("Mug", 1400, 2));
    }

    #[test]
    fn stock_comes_in_and_goes_out_but_never_below_what_is_reserved() {
        let (product, _) =
            given(Some(mug())).when(|p| change(p, &sku(), &stock(10), Utc::now())).then_emits(&["StockAdjusted"]);
        assert_eq!((product.on_hand, product.available()), (15, 12));
        let (product, _) =
            given(Some(mug())).when(|p| change(p, &sku(), &stock(-2), Utc::now())).then_emits(&["StockAdjusted"]);
        assert_eq!((product.on_hand, product.available()), (3, 0));
        let message = given(Some(mug()))
            .when(|p| change(p, &sku(), &stock(-3), Utc::now()))
            .then_refused(Reason::InsufficientStock);
        assert!(message.contains("5 on hand, 3 of them reserved"), "{message}");
        given(Some(mug()))
            .when(|p| change(p, &sku(), &stock(i64::MIN), Utc::now()))
            .then_refused(Reason::InsufficientStock);
        given(Some(mug()))
            .when(|p| change(p, &sku(), &stock(i64::MAX), Utc::now()))
            .then_refused(Reason::InsufficientStock);
    }

    #[test]
    fn a_change_to_an_unknown_product_is_refused() {
        let message =
            given(None).when(|p| change(p, &sku(), &stock(1), Utc::now())).then_refused(Reason::UnknownProduct);
        assert!(message.contains("MUG-1"), "{message}");
    }
}
