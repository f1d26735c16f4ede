//! What the inventory service reads, as its rules see it: its commands
//! with the sku, money and counts checked once, where the kit decodes a
//! message ([`orderflow_contracts::inventory::check`], the rules the
//! ingress checks too; a command that breaks one is refused here,
//! `INVALID_PRODUCT`, naming the field), and the order events that move
//! stock. An order's lines are taken as they are: a line naming no product
//! of the catalog fails the reservation (`UNKNOWN_PRODUCT`), it is not a
//! malformed event.

use orderflow_contracts::ids::{OrderId, Sku, UserId};
use orderflow_contracts::inventory::{InventoryCommand, check};
use orderflow_contracts::orders::OrderEvent;
use orderflow_contracts::{Reason, Refusal};

orderflow_contracts::union_family!(InventoryInput {
    Command(InventoryCommand),
    Order(OrderEvent),
});

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A new product.
    Create(NewProduct),
    /// A change to the product `sku`.
    Change { sku: Sku, change: Change },
    /// `OrderPlaced`: hold every line, or none.
    Reserve(Placement),
    /// `OrderConfirmed`: the held units are sold.
    Commit { order: OrderId },
    /// `OrderCancelled`: the held (or sold) units are for sale again.
    Release { order: OrderId, reason: String },
    /// Any other order event: changes no stock (its type, for the log).
    Other(&'static str),
}

/// An `OrderPlaced`, as far as stock goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub order: OrderId,
    pub customer: UserId,
    pub currency: String,
    pub lines: Vec<Line>,
}

/// One line of an order: its `product_id` (a sku, if the catalog has it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: i64,
}

/// A `CreateProduct`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub sku: Sku,
    pub name: String,
    pub description: String,
    /// Minor units of `currency`.
    pub price: i64,
    /// ISO 4217.
    pub currency: String,
    /// Units on hand to start with.
    pub stock: i64,
}

/// What a command changes of an existing product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `UpdateProduct`: what is given.
    Details { name: Option<String>, description: Option<String>, price: Option<i64> },
    /// `AdjustStock`: units in (positive) or out (negative), and why.
    Stock { delta: i64, reason: String },
}

impl TryFrom<InventoryInput> for Input {
    type Error = Refusal;

    fn try_from(input: InventoryInput) -> Result<Self, Refusal> {
        let order = |raw: &str| OrderId::parse("order_id", raw);
        Ok(match input {
            InventoryInput::Command(command) => command_input(command)?,
            InventoryInput::Order(OrderEvent::Placed(e)) => Input::Reserve(Placement {
                order: order(&e.order_id)?,
                customer: UserId::parse("customer_id", &e.customer_id)?,
                currency: e.currency,
                lines: e
                    .items
                    .into_iter()
                    .map(|l| Line { sku: l.product_id, quantity: l.quantity, unit_price: l.unit_price })
                    .collect(),
            }),
            InventoryInput::Order(OrderEvent::Confirmed(e)) => Input::Commit { order: order(&e.order_id)? },
            InventoryInput::Order(OrderEvent::Cancelled(e)) => {
                Input::Release { order: order(&e.order_id)?, reason: e.reason }
            }
            other => Input::Other(orderflow_contracts::Family::name(&other)),
        })
    }
}

fn command_input(command: InventoryCommand) -> Result<Input, Refusal> {
    let sku = Sku::parse("sku", command.sku())?;
    Ok(match command {
        InventoryCommand::Create(c) => Input::Create(NewProduct {
            sku,
            name: check::name(&c.name)?,
            description: check::description(&c.description)?,
            price: check::price(c.price)?,
            currency: check::currency(&c.currency)?,
            stock: check::stock(c.stock)?,
        }),
        InventoryCommand::Update(c) => {
            if c.name.is_none() && c.description.is_none() && c.price.is_none() {
                let message = "an update names no name, description or price";
                return Err(Refusal::new(Reason::InvalidProduct, message));
            }
            let change = Change::Details {
                name: c.name.as_deref().map(check::name).transpose()?,
                description: c.description.as_deref().map(check::description).transpose()?,
                price: c.price.map(check::price).transpose()?,
            };
            Input::Change { sku, change }
        }
        InventoryCommand::Adjust(c) => {
            let change = Change::Stock { delta: check::delta(c.delta)?, reason: check::reason(&c.reason)? };
            Input::Change { sku, change }
        }
    })
}

#[cfg(test)]
mod tests {
    use orderflow_contracts::inventory::{AdjustStock, CreateProduct, UpdateProduct};

    use super::*;

    fn create() -> CreateProduct {
        CreateProduct {
            sku: "MUG-1".into(),
            name: " Mug ".into(),
            description: "A mug".into(),
            price: 1250,
            currency: "EUR".into(),
            stock: 5,
        }
    }

    fn refused(command: InventoryCommand) -> String {
        let refusal = Input::try_from(InventoryInput::Command(command)).expect_err("refused");
        assert_eq!(refusal.reason, Reason::InvalidProduct);
        refusal.message
    }

    #[test]
    fn a_product_is_read_with_its_name_trimmed() {
        let input = Input::try_from(InventoryInput::Command(InventoryCommand::Create(create()))).expect("valid");
        let Input::Create(product) = input else { panic!("a creation") };
        assert_eq!((product.sku.as_str(), product.name.as_str(), product.price), ("MUG-1", "Mug", 1250));
    }

    #[test]
    fn what_breaks_a_rule_is_refused_naming_it() {
        let create = |c: CreateProduct| refused(InventoryCommand::Create(c));
        assert!(create(CreateProduct { sku: "a b".into(), ..self::create() }).starts_with("sku"));
        assert!(create(CreateProduct { price: -1, ..self::create() }).starts_with("price"));
        assert!(create(CreateProduct { currency: "eur".into(), ..self::create() }).starts_with("currency"));
        assert!(create(CreateProduct { stock: -1, ..self::create() }).starts_with("stock"));
        assert!(create(CreateProduct { name: "  ".into(), ..self::create() }).starts_with("name"));
        let update = UpdateProduct { sku: "MUG-1".into(), name: None, description: None, price: None };
        assert!(refused(InventoryCommand::Update(update)).contains("names no"));
        let adjust = AdjustStock { sku: "MUG-1".into(), delta: 0, reason: "count".into() };
        assert!(refused(InventoryCommand::Adjust(adjust)).starts_with("delta"));
        let adjust = AdjustStock { sku: "MUG-1".into(), delta: 3, reason: " ".into() };
        assert!(refused(InventoryCommand::Adjust(adjust)).starts_with("reason"));
    }
}
