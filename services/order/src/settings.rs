use orderflow_config::{ConfigError, Domain, ServiceSettings, Validate};
use serde::{Deserialize, Serialize};

/// The order service's settings: the kit's shared groups plus [`Rules`].
pub type Settings = ServiceSettings<Rules>;

/// The order service's own settings (`ORDERFLOW_DOMAIN__...`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// An order still PENDING this long after it was placed (the payment
    /// service is down, a message was lost upstream) is cancelled with
    /// `PAYMENT_TIMEOUT`; a payment authorized later is voided.
    pub payment_deadline_secs: u64,
    /// How often passed deadlines are looked for.
    pub deadline_check_ms: u64,
    /// How long an order for a customer this service has not heard of yet
    /// is retried before it is refused with `UNKNOWN_CUSTOMER`: users
    /// events come on their own topic, and a user who has just registered
    /// may order before the registration reached this service.
    pub customer_grace_secs: u64,
    /// How long a `ShipOrder` for a CONFIRMED order whose capture this
    /// service has not seen yet is retried before it is refused with
    /// `NOT_PAID`: the payment service captures on `OrderConfirmed`, and
    /// its `PaymentCaptured` comes on another topic than the command, so an
    /// admin may ship an order the moment it is confirmed. 0: never wait.
    pub capture_grace_secs: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Self { payment_deadline_secs: 60, deadline_check_ms: 1_000, customer_grace_secs: 30, capture_grace_secs: 30 }
    }
}

impl Domain for Rules {
    const SERVICE: &'static str = orderflow_contracts::topology::ORDER_SERVICE.service;
    const PORT: u16 = 8093;
    const DATABASE: &'static str = "orders";
}

impl Validate for Rules {
    fn validate(&self) -> orderflow_config::Result<()> {
        for (name, value) in [
            ("domain.payment_deadline_secs", self.payment_deadline_secs),
            ("domain.deadline_check_ms", self.deadline_check_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(name, "must be at least 1"));
            }
        }
        Ok(())
    }
}
