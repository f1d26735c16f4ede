//! Process plumbing every orderflow binary shares, with no Kafka in it (the
//! schema registry uses it too):
//!
//! - [`Supervisor`]: owns every background task of a process. A task that
//!   ends or panics while the process should be running makes
//!   `/health/ready` fail at once, cancels the rest, is logged once with its
//!   cause chain, and makes the process exit non-zero so an orchestrator
//!   restarts it.
//! - [`database::connect`]: a pool with statement and idle-in-transaction
//!   timeouts on every connection.
//!
//! Serving HTTP, the ops endpoints and shutdown on a signal are in
//! `orderflow-telemetry`.

pub mod database;
mod supervisor;

pub use supervisor::{Health, Supervisor, TaskFailed};
