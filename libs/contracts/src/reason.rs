//! Why a command was rejected or failed: one closed list for every service
//! that rejects and for the edge that answers.
//!
//! A service names a [`Reason`], never a string, so a reason the edge does
//! not know cannot be written; the rejection event carries its
//! [`Reason::as_str`]. Each reason has a [`Kind`], and the ingress maps the
//! kinds to HTTP statuses in one exhaustive match: a new reason is one line
//! here, and a new kind does not compile until the edge says what it means.

/// What kind of problem a reason is, for whoever answers the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command cannot be applied as it is: the client must change it.
    Invalid,
    /// It conflicts with the current state (taken, already done, not allowed now).
    Conflict,
    /// Something it names does not exist.
    NotFound,
    /// An outside system it needs did not answer: trying again later may work.
    Unavailable,
    /// It failed for a reason of ours and was kept for an operator.
    Failed,
}

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal, $kind:ident;)*) => {
        /// Why a command was rejected (see the module docs).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in the order of this list.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// Its name on the wire (SNAKE_CASE).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name,)*
                }
            }

            pub fn kind(self) -> Kind {
                match self {
                    $(Reason::$variant => Kind::$kind,)*
                }
            }

            /// The reason named `raw` (`None`: a name this build does not know).
            pub fn parse(raw: &str) -> Option<Self> {
                match raw {
                    $($name => Some(Reason::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    /// The command holds data that cannot be processed (it was dead-lettered
    /// as invalid); the client must correct it.
    InvalidCommand = "INVALID_COMMAND", Invalid;
    /// Applying it failed for a reason of ours; it was kept on its
    /// dead-letter topic for an operator.
    CommandFailed = "COMMAND_FAILED", Failed;
    /// An id inside it is not a uuid.
    InvalidId = "INVALID_ID", Invalid;
    /// The user id inside it is not a uuid.
    InvalidUserId = "INVALID_USER_ID", Invalid;
    EmailTaken = "EMAIL_TAKEN", Conflict;
    UserExists = "USER_EXISTS", Conflict;
    UserDeactivated = "USER_DEACTIVATED", Conflict;
    /// The user's personal data was erased: nothing of them can change.
    UserErased = "USER_ERASED", Conflict;
    UserNotFound = "USER_NOT_FOUND", NotFound;
    /// The order's lines break a rule (quantities, totals, currency).
    InvalidOrder = "INVALID_ORDER", Invalid;
    OrderExists = "ORDER_EXISTS", Conflict;
    OrderNotFound = "ORDER_NOT_FOUND", NotFound;
    /// The customer never registered (after the grace period).
    UnknownCustomer = "UNKNOWN_CUSTOMER", Invalid;
    CustomerDeactivated = "CUSTOMER_DEACTIVATED", Invalid;
    /// The order's status does not allow the change.
    IllegalTransition = "ILLEGAL_TRANSITION", Conflict;
    /// Shipping needs a captured payment that was not refunded in full.
    NotPaid = "NOT_PAID", Conflict;
    PaymentNotFound = "PAYMENT_NOT_FOUND", NotFound;
    /// A refund of a payment that was never captured.
    NotCaptured = "NOT_CAPTURED", Conflict;
    /// A refund of more than is left of the capture.
    RefundExceedsCapture = "REFUND_EXCEEDS_CAPTURE", Invalid;
    /// A refund of less than one minor unit.
    InvalidAmount = "INVALID_AMOUNT", Invalid;
    /// The payment provider did not answer within the call's retry budget.
    ProviderUnavailable = "PROVIDER_UNAVAILABLE", Unavailable;
    /// What the payment provider answered could not be read.
    ProviderAnswerInvalid = "PROVIDER_ANSWER_INVALID", Failed;
    /// A product's fields break a rule (sku, name, price, currency, stock).
    InvalidProduct = "INVALID_PRODUCT", Invalid;
    /// A product with this sku is in the catalog already.
    ProductExists = "PRODUCT_EXISTS", Conflict;
    /// No product in the catalog has this sku.
    UnknownProduct = "UNKNOWN_PRODUCT", NotFound;
    /// Taking the units would leave less on hand than is reserved.
    InsufficientStock = "INSUFFICIENT_STOCK", Conflict;
    /// A line asks for more units than may still be sold.
    OutOfStock = "OUT_OF_STOCK", Conflict;
    /// A line's unit price (or currency) is not the catalog's.
    PriceChanged = "PRICE_CHANGED", Conflict;
}

/// A deterministic refusal: the input can never be acted on (a malformed
/// id inside a command, an illegal state transition). Whatever the input
/// changed is undone; the service kit settles a command with a
/// `CommandRejected` — the client sees why — instead of retrying and
/// dead-lettering it. An input that is not a command (nobody waits for its
/// answer) is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// One of the contracts' reasons; the HTTP edge maps its kind.
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_one_distinct_name_that_parses_back() {
        let mut names = std::collections::HashSet::new();
        for reason in Reason::ALL {
            assert!(names.insert(reason.as_str()), "{reason:?} shares its name");
            assert_eq!(Reason::parse(reason.as_str()), Some(*reason));
            assert!(reason.as_str().chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{reason}");
        }
        assert_eq!(Reason::parse("NO_SUCH_REASON"), None);
    }
}
