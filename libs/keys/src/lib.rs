//! The data keys that seal each person's personal fields
//! ([`orderflow_contracts::personal`]), and where they live.
//!
//! - [`PgKeyStore`]: the keeper. The user service's database holds one key
//!   per subject, wrapped (AES-256-GCM) by a key-encryption key from the
//!   settings ([`Keks`]); [`destroy`] empties it in the erasing
//!   transaction. [`rewrap`] moves keys to the first key-encryption key
//!   after a rotation, while both are accepted.
//! - [`routes`]: the keeper serves keys on its ops listener, to bearers of
//!   the key-service token only.
//! - [`RemoteKeyStore`]: how the order service and the projector reach it.
//! - [`Cached`]: any store, with keys kept for a short while per process.
//!
//! Keys never travel on the bus and are never logged (`DataKey`'s `Debug`
//! shows its id only).

mod cache;
mod keks;
mod remote;
mod routes;
mod store;

pub use cache::Cached;
pub use keks::{KekError, Keks};
pub use remote::RemoteKeyStore;
pub use routes::routes;
pub use store::{PgKeyStore, destroy, migrate, rewrap, rewrap_once};

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGaugeVec, register_int_counter_vec, register_int_gauge_vec};

/// Data keys by `state` (`live`, `destroyed`, and `old_kek`: live ones
/// still wrapped by another key-encryption key than the first), as the
/// keeper last counted.
pub static KEYS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!("orderflow_data_keys", "Data keys the key store holds, live and destroyed.", &["state"])
        .expect("the data keys gauge is registered once")
});

/// Data keys `created` and `destroyed` (erasures) by this process.
pub static KEY_CHANGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "orderflow_data_key_changes_total",
        "Data keys created, and destroyed by an erasure.",
        &["change"]
    )
    .expect("the data key changes counter is registered once")
});
