//! The audit log's records, shared by the service that writes them
//! (`services/audit-log`) and the ingress that answers questions about them.
//!
//! - [`chain`]: what a record is and how its hash chains it to the one
//!   before in the same source partition; canonical JSON.
//! - [`verify`]: walks the chains and reports the first place one breaks,
//!   fast as the log grows (checkpoints), across retention cuts (anchors).
//! - [`query`]: search (newest first, keyset-paginated) and the causal story
//!   of one request ([`order`]).
//!
//! Everything here reads the views in schema [`VIEW_SCHEMA`] (`audit.*`),
//! which point at the live generation of the audit projection.

pub mod chain;
pub mod order;
pub mod query;
pub mod verify;

pub use chain::{GENESIS, Record, canonical_json};

/// Where readers find the tables: `audit.records`, `audit.heads`,
/// `audit.checkpoints`, `audit.anchors`.
pub const VIEW_SCHEMA: &str = "audit";
