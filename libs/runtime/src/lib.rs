//! The service kit: what every orderflow process shares, so a domain
//! service is its rules, its schemas and a few lines of wiring.
//!
//! - [`Supervisor`] and [`database::connect`], from `orderflow-process`
//!   (the plumbing that needs no Kafka).
//! - [`Service`] and [`TransactionalHandler`]: the library decodes, checks
//!   headers and key, opens one transaction for a run of messages, claims
//!   their inbox rows, asks the service what each one means, encodes and
//!   enqueues the resulting events in the outbox, and commits. A
//!   deterministic refusal becomes the service's rejection event, which
//!   settles the command; what keeps failing is dead-lettered.
//! - [`effects`]: calls to outside systems, recorded and made by a
//!   supervised effector outside the partition's transaction, bounded in
//!   time and attempts; the waiting input's key is parked meanwhile.
//! - [`run`]: the whole process of a domain service: migrations, topics,
//!   schemas, consumer, relay, ops HTTP, supervised; [`main`] around it.
//! - [`run_projection`]: the whole process of a projection (the projector,
//!   the audit log): engine, dead-letter relay, ops HTTP, supervised;
//!   [`rebuild`] and [`serve`] for their binaries.

pub mod effects;
mod handler;
pub mod personal;
mod projector;
mod service;
pub mod testing;

pub use handler::{Decided, Decision, DomainError, Emit, Inbound, Refusal, Scheduled, Service, TransactionalHandler};
pub use orderflow_process::{Health, Supervisor, TaskFailed, database};
pub use personal::PersonalData;
pub use projector::{
    ProjectionBinary, ProjectionProcess, connect_projection, projection_main, rebuild, run_projection, serve,
};
pub use service::{RunError, main, readiness, run, run_service};

/// What every orderflow process logs unless `RUST_LOG` says otherwise.
pub const LOG_FILTER: &str = "info,sqlx=warn,rdkafka=warn";
