//! The inventory commands as the rules see them: the sku, money and counts
//! checked once, where the kit decodes a message
//! ([`orderflow_contracts::inventory::check`], the rules the ingress checks
//! too). A command that breaks one is refused here (`INVALID_PRODUCT`,
//! naming the field), before any rule runs.

use orderflow_contracts::ids::Sku;
use orderflow_contracts::inventory::{InventoryCommand, check};
use orderflow_contracts::{Reason, Refusal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A new product.
    Create(NewProduct),
    /// A change to the product `sku`.
    Change { sku: Sku, change: Change },
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

impl TryFrom<InventoryCommand> for Command {
    type Error = Refusal;

    fn try_from(command: InventoryCommand) -> Result<Self, Refusal> {
        let sku = Sku::parse("sku", command.sku())?;
        Ok(match command {
            InventoryCommand::Create(c) => Command::Create(NewProduct {
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
                Command::Change { sku, change }
            }
            InventoryCommand::Adjust(c) => {
                let change = Change::Stock { delta: check::delta(c.delta)?, reason: check::reason(&c.reason)? };
                Command::Change { sku, change }
            }
        })
    }
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
        let refusal = Command::try_from(command).expect_err("refused");
        assert_eq!(refusal.reason, Reason::InvalidProduct);
        refusal.message
    }

    #[test]
    fn a_product_is_read_with_its_name_trimmed() {
        let Command::Create(product) = Command::try_from(InventoryCommand::Create(create())).expect("valid") else {
            panic!("a creation")
        };
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
