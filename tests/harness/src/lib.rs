//! The whole-system harness for tests: the whole system
//! ([`system::System`]): a schema registry (from `orderflow-testkit`),
//! user service, projector and ingress, each on a fresh database, all on
//! one unique topic prefix, on port 0. It may depend on every service;
//! `orderflow-testkit` depends on none.

pub mod otlp;
pub mod shop;
pub mod system;

pub use orderflow_testkit::registry::{RegistryHandle, spawn_registry, spawn_registry_on};
