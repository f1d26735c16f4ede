//! Messages of the inventory domain: `inventory.commands` and
//! `inventory.events`. Every message about a product is keyed by its
//! **sku**, so everything about one product's stock is in one partition,
//! in order.

use serde::{Deserialize, Serialize};

use crate::outcomes::CommandRejected;
use crate::{Topic, commands_on, contract, family, schema_files};

/// Commands of the inventory domain (the catalog, by admins).
pub const COMMANDS: Topic = Topic::commands("inventory.commands");
/// Commands of the inventory domain that a consumer gave up on: the
/// projector settles them as failed.
pub const DEAD_COMMANDS: Topic = Topic::dead_letters("inventory.commands.dlq");
/// Events of the inventory domain.
pub const EVENTS: Topic = Topic::events("inventory.events");
/// Every topic of the inventory domain.
pub const TOPICS: &[Topic] = &[COMMANDS, EVENTS];

/// The rules a product's fields follow: checked by the ingress (to answer
/// at once, naming the field) and by the inventory service (which decides,
/// whoever sent the command). Each gives the value to keep, or what is
/// wrong with it.
pub mod check {
    use crate::{Reason, Refusal};

    /// The longest name and description of a product, in characters.
    pub const MAX_NAME: usize = 200;
    pub const MAX_DESCRIPTION: usize = 4_000;
    /// The longest reason of a stock adjustment, in characters.
    pub const MAX_REASON: usize = 500;

    /// A field that breaks its rule.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Problem {
        pub field: &'static str,
        pub problem: String,
    }

    impl From<Problem> for Refusal {
        fn from(p: Problem) -> Self {
            Refusal::new(Reason::InvalidProduct, format!("{}: {}", p.field, p.problem))
        }
    }

    fn problem(field: &'static str, problem: String) -> Problem {
        Problem { field, problem }
    }

    fn text(field: &'static str, raw: &str, min: usize, max: usize) -> Result<String, Problem> {
        let kept = raw.trim();
        let chars = kept.chars().count();
        if chars < min || chars > max {
            return Err(problem(field, format!("must have {min} to {max} characters, not {chars}")));
        }
        if kept.chars().any(|c| c.is_control() && c != '\n') {
            return Err(problem(field, "must not contain control characters".into()));
        }
        Ok(kept.to_owned())
    }

    pub fn name(raw: &str) -> Result<String, Problem> {
        text("name", raw, 1, MAX_NAME)
    }

    pub fn description(raw: &str) -> Result<String, Problem> {
        text("description", raw, 0, MAX_DESCRIPTION)
    }

    /// A price in minor units.
    pub fn price(raw: i64) -> Result<i64, Problem> {
        if raw < 0 {
            return Err(problem("price", format!("must be 0 or more minor units, not {raw}")));
        }
        Ok(raw)
    }

    pub fn currency(raw: &str) -> Result<String, Problem> {
        if !crate::money::is_currency(raw) {
            return Err(problem("currency", format!("`{raw}` is not an ISO 4217 code (upper case, e.g. EUR)")));
        }
        Ok(raw.to_owned())
    }

    /// The units a product starts with.
    pub fn stock(raw: i64) -> Result<i64, Problem> {
        if raw < 0 {
            return Err(problem("stock", format!("must be 0 or more units, not {raw}")));
        }
        Ok(raw)
    }

    /// The units an adjustment adds (or, negative, takes).
    pub fn delta(raw: i64) -> Result<i64, Problem> {
        if raw == 0 {
            return Err(problem("delta", "must not be 0: an adjustment of no units changes nothing".into()));
        }
        Ok(raw)
    }

    /// Why stock is adjusted.
    pub fn reason(raw: &str) -> Result<String, Problem> {
        text("reason", raw, 1, MAX_REASON)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateProduct {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: i64,
    pub currency: String,
    pub stock: i64,
}
contract!(CreateProduct, "orderflow.inventory.commands", "inventory", sku);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateProduct {
    pub sku: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<i64>,
}
contract!(UpdateProduct, "orderflow.inventory.commands", "inventory", sku);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustStock {
    pub sku: String,
    pub delta: i64,
    pub reason: String,
}
contract!(AdjustStock, "orderflow.inventory.commands", "inventory", sku);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductCreated {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: i64,
    pub currency: String,
    pub on_hand: i64,
    pub version: i64,
    pub created_at: i64,
}
contract!(ProductCreated, "orderflow.inventory.events", "inventory", sku, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductUpdated {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: i64,
    pub currency: String,
    pub version: i64,
    pub updated_at: i64,
}
contract!(ProductUpdated, "orderflow.inventory.events", "inventory", sku, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjusted {
    pub sku: String,
    pub delta: i64,
    pub reason: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub version: i64,
    pub adjusted_at: i64,
}
contract!(StockAdjusted, "orderflow.inventory.events", "inventory", sku, version);

/// One product of an order, and its stock after a reservation, commit or
/// release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    pub sku: String,
    pub quantity: i64,
    pub on_hand: i64,
    pub reserved: i64,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReserved {
    pub order_id: String,
    pub customer_id: String,
    pub currency: String,
    pub total: i64,
    pub lines: Vec<StockLine>,
    pub reserved_at: i64,
}
contract!(StockReserved, "orderflow.inventory.events", "inventory", order_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReservationFailed {
    pub order_id: String,
    pub customer_id: String,
    pub reason: String,
    pub message: String,
    pub sku: String,
    pub requested: i64,
    pub available: Option<i64>,
    pub failed_at: i64,
}
contract!(StockReservationFailed, "orderflow.inventory.events", "inventory", order_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockCommitted {
    pub order_id: String,
    pub lines: Vec<StockLine>,
    pub committed_at: i64,
}
contract!(StockCommitted, "orderflow.inventory.events", "inventory", order_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReleased {
    pub order_id: String,
    pub reason: String,
    pub lines: Vec<StockLine>,
    pub released_at: i64,
}
contract!(StockReleased, "orderflow.inventory.events", "inventory", order_id);

family!(InventoryCommand {
    Create(CreateProduct),
    Update(UpdateProduct),
    Adjust(AdjustStock),
});

family!(InventoryEvent {
    Created(ProductCreated),
    Updated(ProductUpdated),
    Adjusted(StockAdjusted),
    Reserved(StockReserved),
    ReservationFailed(StockReservationFailed),
    Committed(StockCommitted),
    Released(StockReleased),
    Rejected(CommandRejected),
});

impl InventoryCommand {
    /// The product it is about.
    pub fn sku(&self) -> &str {
        match self {
            InventoryCommand::Create(c) => &c.sku,
            InventoryCommand::Update(c) => &c.sku,
            InventoryCommand::Adjust(c) => &c.sku,
        }
    }
}

commands_on!(COMMANDS => CreateProduct, UpdateProduct, AdjustStock);

schema_files!(
    "inventory":
    CreateProduct,
    UpdateProduct,
    AdjustStock,
    ProductCreated,
    ProductUpdated,
    StockAdjusted,
    StockReserved,
    StockReservationFailed,
    StockCommitted,
    StockReleased,
);
