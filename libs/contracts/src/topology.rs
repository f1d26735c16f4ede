//! Who reads what: each domain service's name (its consumer group's, by
//! default) and the topics it consumes. The services take their `SERVICE`
//! and `CONSUMES` from here, so the operators' tools that watch every
//! group (the ingress's bus monitor, `/metrics`) read the same list.
//! Projections keep their positions in their own tables and are watched
//! from there.

use crate::{Topic, inventory, orders, payments, users};

/// A domain service as a reader of the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    /// The service's name: its consumer group unless its settings name another.
    pub service: &'static str,
    pub consumes: &'static [Topic],
}

pub const USER_SERVICE: Reader = Reader { service: "user-service", consumes: &[users::COMMANDS] };
pub const ORDER_SERVICE: Reader = Reader {
    service: "order-service",
    consumes: &[orders::COMMANDS, users::EVENTS, payments::EVENTS, inventory::EVENTS],
};
pub const PAYMENT_SERVICE: Reader =
    Reader { service: "payment-service", consumes: &[payments::COMMANDS, orders::EVENTS] };
pub const INVENTORY_SERVICE: Reader =
    Reader { service: "inventory-service", consumes: &[inventory::COMMANDS, orders::EVENTS] };

/// Every domain service.
pub const SERVICES: [Reader; 4] = [USER_SERVICE, ORDER_SERVICE, PAYMENT_SERVICE, INVENTORY_SERVICE];
