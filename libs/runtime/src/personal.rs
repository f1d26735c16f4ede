//! Which personal data a process handles, and the key stores that gives it
//! ([`orderflow_contracts::personal`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use orderflow_config::{DatabaseSettings, Environment, KeySettings};
use orderflow_contracts::personal::{KeyStore, Personal};
use orderflow_keys::{Cached, Keks, PgKeyStore, RemoteKeyStore};
use orderflow_process::Supervisor;

use crate::RunError;

/// A process's part in crypto-shredding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalData {
    /// It neither writes nor reads anyone's personal fields: sealed values
    /// reach it withheld (empty), and it holds no keys.
    None,
    /// It keeps the data keys (its database) and serves them on its ops
    /// listener; it seals the personal fields of its own events (the user
    /// service).
    Keeper,
    /// It seals the personal fields of the events it writes with keys from
    /// the keeper (the order service: an order's address).
    Seals,
    /// It opens the personal fields of what it reads with keys from the
    /// keeper (the read-model projector).
    Opens,
}

/// What [`PersonalData`] needs at start-up.
#[derive(Debug)]
pub struct Wiring {
    /// For the codec.
    pub personal: Personal,
    /// The keeper's key routes, for its ops listener.
    pub routes: Option<Router>,
}

/// The key stores (and, for the keeper, its table, routes and re-wrap
/// task) of `part`. The keeper's store has a small pool of its own on
/// `database`: keys are looked up while a handler holds a connection of
/// the service's pool for its transaction, and must never wait for one.
pub async fn wire(
    part: PersonalData,
    keys: &KeySettings,
    environment: Environment,
    database: &DatabaseSettings,
    supervisor: &mut Supervisor,
) -> Result<Wiring, RunError> {
    let none = Wiring { personal: Personal::default(), routes: None };
    if part == PersonalData::None {
        return Ok(none);
    }
    keys.check_for(environment, part == PersonalData::Keeper).map_err(|e| RunError::Keys(e.to_string()))?;
    Ok(match part {
        PersonalData::None => none,
        PersonalData::Keeper => {
            let keks = Arc::new(Keks::from_settings(&keys.keks).map_err(|e| RunError::Keys(e.to_string()))?);
            let pool =
                &orderflow_process::database::connect(&DatabaseSettings { max_connections: 4, ..database.clone() })
                    .await
                    .map_err(RunError::Database)?;
            orderflow_keys::migrate(pool).await?;
            let store = PgKeyStore::new(pool.clone(), Arc::clone(&keks));
            // Its own events look the same keys up again and again; the
            // key service and opening ask the table itself, so a destroyed
            // key is gone for others at once.
            let sealing: Arc<dyn KeyStore> = Arc::new(Cached::new(store.clone(), Duration::from_secs(keys.cache_secs)));
            let store: Arc<dyn KeyStore> = Arc::new(store);
            let (pool, shutdown) = (pool.clone(), supervisor.shutdown());
            supervisor.spawn("data key re-wrap", async move {
                orderflow_keys::rewrap(pool, keks, Duration::from_secs(60), shutdown).await
            });
            Wiring {
                personal: Personal { seal: Some(sealing), open: Some(Arc::clone(&store)) },
                routes: Some(orderflow_keys::routes(store, keys.token.expose())),
            }
        }
        PersonalData::Seals => Wiring { personal: Personal { seal: Some(remote(keys)), open: None }, routes: None },
        PersonalData::Opens => Wiring { personal: Personal { seal: None, open: Some(remote(keys)) }, routes: None },
    })
}

/// The keeper's keys over HTTP, kept for `keys.cache_secs`.
fn remote(keys: &KeySettings) -> Arc<dyn KeyStore> {
    Arc::new(Cached::new(RemoteKeyStore::new(&keys.url, keys.token.expose()), Duration::from_secs(keys.cache_secs)))
}

/// For a process that opens personal fields and keeps nothing (the
/// projector): the keeper's keys over HTTP.
pub fn opener(keys: &KeySettings, environment: Environment) -> Result<Personal, RunError> {
    keys.check_for(environment, false).map_err(|e| RunError::Keys(e.to_string()))?;
    Ok(Personal { seal: None, open: Some(remote(keys)) })
}
