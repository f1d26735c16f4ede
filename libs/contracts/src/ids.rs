//! The ids inside messages, parsed once where a message is decoded: rules
//! take a [`UserId`] or an [`OrderId`], never the string an Avro record
//! holds, so an id that is not one is refused in one place, with the field
//! it came from.

use std::fmt;

use uuid::Uuid;

use crate::{Reason, Refusal};

macro_rules! ids {
    ($($(#[doc = $doc:literal])* $name:ident => $reason:ident;)+) => {$(
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The id in `raw`, field `field` of a message; anything but a
            /// uuid is a refusal naming the field.
            pub fn parse(field: &str, raw: &str) -> Result<Self, Refusal> {
                Uuid::parse_str(raw)
                    .map($name)
                    .map_err(|_| Refusal::new(Reason::$reason, format!("{field} `{raw}` is not a uuid")))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    )+};
}

ids! {
    /// A user (a customer, to the order and payment services).
    UserId => InvalidUserId;
    OrderId => InvalidId;
    /// A payment (one per order: UUIDv5 of the order id).
    PaymentId => InvalidId;
}

/// A product's stock-keeping unit, its id in the catalog: 1 to 64 of
/// `A-Z a-z 0-9 - _ .`, as given (case matters: `ab-1` and `AB-1` are two).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    pub const MAX_LEN: usize = 64;

    /// The sku in `raw`, field `field` of a message; anything else is a
    /// refusal naming the field.
    pub fn parse(field: &str, raw: &str) -> Result<Self, Refusal> {
        match Self::problem(raw) {
            Some(problem) => Err(Refusal::new(Reason::InvalidProduct, format!("{field} {problem}"))),
            None => Ok(Sku(raw.to_owned())),
        }
    }

    /// What is wrong with `raw` as a sku, if anything.
    pub fn problem(raw: &str) -> Option<String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        (raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.chars().all(allowed))
            .then(|| format!("`{raw}` is not a sku: 1 to {} of A-Z, a-z, 0-9, '-', '_', '.'", Self::MAX_LEN))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address as the users domain compares them: lowercased once,
/// here, so "Ada@Example.com" and "ada@example.com" are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Self {
        Email(raw.to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_that_is_not_a_uuid_is_refused_naming_its_field() {
        let id = Uuid::now_v7();
        assert_eq!(OrderId::parse("order_id", &id.to_string()), Ok(OrderId(id)));
        let refusal = OrderId::parse("order_id", "nope").expect_err("refused");
        assert_eq!(refusal.reason, Reason::InvalidId);
        assert!(refusal.message.contains("order_id `nope`"), "{}", refusal.message);
        assert_eq!(UserId::parse("user_id", "x").expect_err("refused").reason, Reason::InvalidUserId);
        assert_eq!(Email::parse("Ada@Example.COM").as_str(), "ada@example.com");
    }

    #[test]
    fn a_sku_is_short_and_plain() {
        assert_eq!(Sku::parse("sku", "MUG-blue_1.0").expect("a sku").as_str(), "MUG-blue_1.0");
        for bad in ["", "with space", "ünïcode", "a/b", &"x".repeat(65)] {
            let refusal = Sku::parse("sku", bad).expect_err(bad);
            assert_eq!(refusal.reason, Reason::InvalidProduct);
            assert!(refusal.message.starts_with("sku `"), "{}", refusal.message);
        }
    }
}
