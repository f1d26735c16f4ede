//! The order saga on the real stack: ingress, user, order and payment
//! services, projector, registry, the broker and Postgres.

mod crash;
mod deadline;
mod failed;
mod faults;
mod flow;
mod inspect;
mod load;
mod redelivery;
mod refused;
mod shipping;
mod stock;

pub use orderflow_harness::shop::*;
