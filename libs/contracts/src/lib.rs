//! The messages of orderflow.
//!
//! `schemas/**/*.avsc` is the source of truth; each schema is embedded here
//! and mirrored by a Rust type implementing [`Contract`]. Several message
//! types share a topic, so subjects follow the *record name strategy*: the
//! subject of a message is its schema's full name
//! (`orderflow.users.events.UserRegistered`), and a consumer learns the type
//! of a message from the schema id in its Confluent framing.
//!
//! [`Codec`] encodes and decodes through `schema_registry_converter`
//! against the registry, resolving every writer schema to this build's
//! reader schema, so an older or newer (compatible) producer is understood.
//! At start-up it registers every schema, event subjects at
//! `BACKWARD_TRANSITIVE` (see [`SchemaFile::is_event`]).

pub mod announcements;
mod codec;
mod compatibility;
pub mod failure;
pub mod ids;
pub mod inventory;
pub mod json;
pub mod money;
pub mod orders;
pub mod outcomes;
pub mod payments;
pub mod personal;
pub mod reason;
pub mod topics;
pub mod topology;
pub mod users;

/// The Avro crate, for [`union_family!`] expansions in other crates.
pub use apache_avro;

pub use codec::{Codec, CodecError, Decoded};
pub use compatibility::EVENT_LEVEL;
pub use reason::{Reason, Refusal};
pub use topics::{Retention, Topic};

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One message type and its schema.
pub trait Contract: Serialize + DeserializeOwned + Send + Sync {
    /// The `message_type` header (`UserRegistered`).
    const NAME: &'static str;
    /// The schema's full name, also its registry subject.
    const FULL_NAME: &'static str;
    /// The schema text from `schemas/`.
    const SCHEMA: &'static str;
    /// The aggregate id: the Kafka key.
    fn key(&self) -> String;
    /// The aggregate's version after this event, for events that carry one
    /// (what a settled command's status reports).
    fn version(&self) -> Option<i64> {
        None
    }
    /// The person whose data the message carries, for messages with
    /// personal fields: they are sealed with this subject's data key
    /// ([`personal`]).
    fn subject(&self) -> Option<&str> {
        None
    }
}

/// Any contract message with its type erased, so a service can return a
/// mixed list of events to publish (the outbox encodes each on the way in).
pub trait AnyMessage: Send + Sync + std::fmt::Debug {
    /// The `message_type` header.
    fn name(&self) -> &'static str;
    /// The Kafka key (aggregate id).
    fn key(&self) -> String;
    /// The aggregate's version it carries, if any ([`Contract::version`]).
    fn version(&self) -> Option<i64>;
    /// Encodes in the Confluent wire format.
    fn encode<'a>(&'a self, codec: &'a Codec)
    -> Pin<Box<dyn Future<Output = Result<Vec<u8>, CodecError>> + Send + 'a>>;
}

impl<C: Contract + std::fmt::Debug + 'static> AnyMessage for C {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn key(&self) -> String {
        Contract::key(self)
    }

    fn version(&self) -> Option<i64> {
        Contract::version(self)
    }

    fn encode<'a>(
        &'a self,
        codec: &'a Codec,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, CodecError>> + Send + 'a>> {
        Box::pin(codec.encode(self))
    }
}

/// A schema of `schemas/` by full name.
#[derive(Debug, Clone, Copy)]
pub struct SchemaFile {
    pub full_name: &'static str,
    /// Path below `schemas/`.
    pub path: &'static str,
    pub text: &'static str,
}

impl SchemaFile {
    /// The schema's namespace: its full name without the record name
    /// (`orderflow.users.events`).
    pub fn namespace(&self) -> &'static str {
        self.full_name.rsplit_once('.').map_or("", |(namespace, _)| namespace)
    }

    /// Whether messages of this schema are events (namespace `….events`, or
    /// `….credentials` for the credentials records): data that is replayed
    /// from the beginning of its topic, so every earlier version of the
    /// schema must stay readable and its subject is registered at
    /// [`EVENT_LEVEL`]. Commands (`….commands`) are read once, by the
    /// current consumer, and keep the registry's default level.
    pub fn is_event(&self) -> bool {
        let namespace = self.namespace();
        namespace.ends_with(".events") || namespace.ends_with(".credentials")
    }
}

/// A family of messages sharing a topic, decoded by full name.
pub trait Family: Sized {
    /// Picks the variant for `full_name` and deserialises the (already
    /// resolved) Avro value into it.
    fn from_avro(full_name: &str, value: apache_avro::types::Value) -> Result<Self, CodecError>;
    /// The `message_type` of the message inside.
    fn name(&self) -> &'static str;
    /// The aggregate id of the message inside: what its Kafka key must be.
    fn key(&self) -> String;
    /// Whether `full_name` is one of this family's messages.
    fn knows(full_name: &str) -> bool;
    /// Whether the message inside is a command (its schema's namespace is
    /// `….commands`): someone waits for its outcome.
    fn is_command(&self) -> bool;
}

/// Whether a schema full name is a command's (namespace `….commands`).
pub fn is_command_schema(full_name: &str) -> bool {
    full_name.rsplit_once('.').is_some_and(|(namespace, _)| namespace.ends_with(".commands"))
}

/// A message sent to a domain's command topic (by the ingress).
pub trait Command: Contract {
    /// Its `<domain>.commands` topic.
    const TOPIC: Topic;
}

/// Every `<domain>.events` topic: what the audit log records. Never a
/// command topic, never `users.credentials` (it carries password hashes).
pub fn event_topics() -> Vec<Topic> {
    vec![users::EVENTS, orders::EVENTS, payments::EVENTS, inventory::EVENTS]
}

/// Every schema of `schemas/`; the registry gets all of them at start-up.
pub fn all_schemas() -> Vec<SchemaFile> {
    [users::SCHEMAS, orders::SCHEMAS, payments::SCHEMAS, inventory::SCHEMAS, outcomes::SCHEMAS].concat()
}

macro_rules! contract {
    ($ty:ident, $ns:literal, $dir:literal, $key:ident, version, subject = $subject:ident) => {
        $crate::contract!(@impl $ty, $ns, $dir, $key, fn version(&self) -> Option<i64> {
            Some(self.version)
        } fn subject(&self) -> Option<&str> {
            Some(&self.$subject)
        });
    };
    ($ty:ident, $ns:literal, $dir:literal, $key:ident, version) => {
        $crate::contract!(@impl $ty, $ns, $dir, $key, fn version(&self) -> Option<i64> {
            Some(self.version)
        });
    };
    ($ty:ident, $ns:literal, $dir:literal, $key:ident) => {
        $crate::contract!(@impl $ty, $ns, $dir, $key,);
    };
    (@impl $ty:ident, $ns:literal, $dir:literal, $key:ident, $($item:item)*) => {
        impl $crate::Contract for $ty {
            const NAME: &'static str = stringify!($ty);
            const FULL_NAME: &'static str = concat!($ns, ".", stringify!($ty));
            const SCHEMA: &'static str = include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../schemas/",
                $dir,
                "/",
                stringify!($ty),
                ".avsc"
            ));
            fn key(&self) -> String {
                self.$key.clone()
            }
            $($item)*
        }
    };
}
pub(crate) use contract;

macro_rules! family {
    ($family:ident { $($variant:ident($ty:ident)),+ $(,)? }) => {
        // A decoded message is handled once and dropped: boxing the large
        // variants (an order with its lines) would only add an allocation.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum $family {
            $($variant($ty)),+
        }

        impl $crate::Family for $family {
            fn from_avro(full_name: &str, value: apache_avro::types::Value) -> Result<Self, $crate::CodecError> {
                $(
                    if full_name == <$ty as $crate::Contract>::FULL_NAME {
                        return $crate::codec::resolve::<$ty>(value).map($family::$variant);
                    }
                )+
                Err($crate::CodecError::UnknownType { family: stringify!($family), full_name: full_name.to_owned() })
            }

            fn name(&self) -> &'static str {
                match self {
                    $($family::$variant(_) => <$ty as $crate::Contract>::NAME),+
                }
            }

            fn key(&self) -> String {
                match self {
                    $($family::$variant(m) => $crate::Contract::key(m)),+
                }
            }

            fn knows(full_name: &str) -> bool {
                [$(<$ty as $crate::Contract>::FULL_NAME),+].contains(&full_name)
            }

            fn is_command(&self) -> bool {
                match self {
                    $($family::$variant(_) => $crate::is_command_schema(<$ty as $crate::Contract>::FULL_NAME)),+
                }
            }
        }
    };
}
pub(crate) use family;

/// A family made of other families, for a service that consumes several
/// topics (the order service reads its commands, users events and payments
/// events): each message is decoded into the member family that knows its
/// schema.
///
/// ```ignore
/// orderflow_contracts::union_family!(OrderInput {
///     Command(OrderCommand),
///     Payment(PaymentEvent),
/// });
/// ```
#[macro_export]
macro_rules! union_family {
    ($union:ident { $($variant:ident($family:ty)),+ $(,)? }) => {
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum $union {
            $($variant($family)),+
        }

        impl $crate::Family for $union {
            fn from_avro(
                full_name: &str,
                value: $crate::apache_avro::types::Value,
            ) -> Result<Self, $crate::CodecError> {
                $(
                    if <$family as $crate::Family>::knows(full_name) {
                        return <$family as $crate::Family>::from_avro(full_name, value).map($union::$variant);
                    }
                )+
                Err($crate::CodecError::UnknownType { family: stringify!($union), full_name: full_name.to_owned() })
            }

            fn name(&self) -> &'static str {
                match self {
                    $($union::$variant(m) => $crate::Family::name(m)),+
                }
            }

            fn key(&self) -> String {
                match self {
                    $($union::$variant(m) => $crate::Family::key(m)),+
                }
            }

            fn knows(full_name: &str) -> bool {
                $(<$family as $crate::Family>::knows(full_name))||+
            }

            fn is_command(&self) -> bool {
                match self {
                    $($union::$variant(m) => $crate::Family::is_command(m)),+
                }
            }
        }
    };
}

/// The `SCHEMAS` of a domain module: each contract's schema file below
/// `schemas/<dir>/`.
macro_rules! schema_files {
    ($dir:literal: $($ty:ident),+ $(,)?) => {
        pub const SCHEMAS: &[$crate::SchemaFile] = &[$($crate::SchemaFile {
            full_name: <$ty as $crate::Contract>::FULL_NAME,
            path: concat!($dir, "/", stringify!($ty), ".avsc"),
            text: <$ty as $crate::Contract>::SCHEMA,
        }),+];
    };
}
pub(crate) use schema_files;

/// Marks commands as sent to `topic`.
macro_rules! commands_on {
    ($topic:expr => $($ty:ident),+ $(,)?) => {
        $(impl $crate::Command for $ty {
            const TOPIC: $crate::Topic = $topic;
        })+
    };
}
pub(crate) use commands_on;

/// Every topic of every domain (what the ingress and the projector create
/// and read).
pub fn all_topics() -> Vec<Topic> {
    [users::TOPICS, orders::TOPICS, payments::TOPICS, inventory::TOPICS].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_credentials_are_events_commands_are_not() {
        let is_event = |name: &str| {
            all_schemas().into_iter().find(|s| s.full_name == name).unwrap_or_else(|| panic!("{name}")).is_event()
        };
        assert!(is_event("orderflow.users.events.UserRegistered"));
        assert!(is_event("orderflow.users.credentials.UserCredentials"));
        assert!(!is_event("orderflow.users.commands.RegisterUser"));
        for topic in event_topics() {
            assert!(topic.name.ends_with(".events"), "{} is not an event topic", topic.name);
            assert_eq!(topic.retention, Retention::Forever, "{} must keep its events for replay", topic.name);
        }
        for schema in all_schemas() {
            assert!(
                schema.is_event() || schema.namespace().ends_with(".commands"),
                "{} is neither an event nor a command: decide which before it is registered",
                schema.full_name
            );
        }
    }
}
