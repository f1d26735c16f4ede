//! Messages of the payments domain: `payments.commands` and
//! `payments.events`. Every payment message is keyed by its **order id**,
//! so everything about one order's money is in one partition, in order.

use serde::{Deserialize, Serialize};

use crate::outcomes::CommandRejected;
use crate::{Topic, commands_on, contract, family, schema_files};

/// Commands of the payments domain (admin refunds).
pub const COMMANDS: Topic = Topic::commands("payments.commands");
/// Commands of the payments domain that a consumer gave up on: the projector
/// settles them as failed.
pub const DEAD_COMMANDS: Topic = Topic::dead_letters("payments.commands.dlq");
/// Events of the payments domain.
pub const EVENTS: Topic = Topic::events("payments.events");
/// Every topic of the payments domain.
pub const TOPICS: &[Topic] = &[COMMANDS, EVENTS];

/// The reason of a refund a `RefundPayment` command asked for; the saga's
/// own refund (a paid order was cancelled) says [`ORDER_CANCELLED`].
pub const REQUESTED: &str = "REQUESTED";
pub const ORDER_CANCELLED: &str = "ORDER_CANCELLED";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPayment {
    pub order_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub note: Option<String>,
}
contract!(RefundPayment, "orderflow.payments.commands", "payments", order_id);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAuthorized {
    pub payment_id: String,
    pub order_id: String,
    pub customer_id: String,
    pub amount: i64,
    pub currency: String,
    pub provider_reference: String,
    pub version: i64,
    pub authorized_at: i64,
}
contract!(PaymentAuthorized, "orderflow.payments.events", "payments", order_id, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDeclined {
    pub payment_id: String,
    pub order_id: String,
    pub customer_id: String,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    pub message: String,
    pub version: i64,
    pub declined_at: i64,
}
contract!(PaymentDeclined, "orderflow.payments.events", "payments", order_id, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCaptured {
    pub payment_id: String,
    pub order_id: String,
    pub amount: i64,
    pub version: i64,
    pub captured_at: i64,
}
contract!(PaymentCaptured, "orderflow.payments.events", "payments", order_id, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentVoided {
    pub payment_id: String,
    pub order_id: String,
    pub amount: i64,
    pub reason: String,
    pub version: i64,
    pub voided_at: i64,
}
contract!(PaymentVoided, "orderflow.payments.events", "payments", order_id, version);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub payment_id: String,
    pub order_id: String,
    pub refund_id: String,
    pub amount: i64,
    pub refunded_total: i64,
    /// [`REQUESTED`] or [`ORDER_CANCELLED`].
    pub reason: String,
    pub version: i64,
    pub refunded_at: i64,
}
contract!(PaymentRefunded, "orderflow.payments.events", "payments", order_id, version);

/// Retired (see [`PaymentEvent`]): no longer published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCommandRejected {
    pub order_id: String,
    pub payment_id: String,
    pub command_type: String,
    pub reason: String,
    pub message: String,
}
contract!(PaymentCommandRejected, "orderflow.payments.events", "payments", order_id);

family!(PaymentCommand { Refund(RefundPayment) });

family!(PaymentEvent {
    Authorized(PaymentAuthorized),
    Declined(PaymentDeclined),
    Captured(PaymentCaptured),
    Voided(PaymentVoided),
    Refunded(PaymentRefunded),
    Rejected(CommandRejected),
    // Retired: rejections before the kit published [`CommandRejected`];
    // still read, so that older topics replay.
    RetiredCommandRejected(PaymentCommandRejected),
});

commands_on!(COMMANDS => RefundPayment);

schema_files!(
    "payments":
    RefundPayment,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentCaptured,
    PaymentVoided,
    PaymentRefunded,
    PaymentCommandRejected,
);
