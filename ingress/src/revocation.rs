//! Revoked tokens: a user's token stops working once the user is
//! deactivated or their credentials change (a password change), without
//! waiting for it to expire.
//!
//! A user token carries the version of the user's credentials it was
//! issued under (`ver`); `rm.credentials` has the current `version` and
//! `active`. A token is revoked when the user is inactive, unknown, or has
//! credentials newer than the token. Service tokens are revoked by removing
//! their client from `service_clients`.
//!
//! Each user's row is cached for [`FRESH_FOR`] (1 s): a revocation takes
//! effect at most a second after the read model shows it, and a client
//! sending many requests costs one indexed lookup a second instead of one a
//! request. Longer would leave a stolen token usable for longer after the
//! password change meant to stop it; shorter buys nothing a person can
//! notice. The cache is per replica and bounded ([`MAX_ENTRIES`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orderflow_auth::Claims;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;
use crate::settings::ServiceClient;

/// How long a user's credentials row is trusted without asking again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Rows cached at most; beyond it the stale ones go, and if all are fresh,
/// all of them (a second of extra lookups, never unbounded memory).
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Current {
    active: bool,
    version: i64,
    read_at: Instant,
}

#[derive(Debug, Clone, Default)]
pub struct Revocations {
    cache: Arc<Mutex<HashMap<Uuid, Current>>>,
}

impl Revocations {
    /// `Ok` if `claims` may still be used; 401 if revoked, 503 if the read
    /// model cannot say.
    pub async fn check(&self, pool: &PgPool, clients: &[ServiceClient], claims: &Claims) -> Result<(), ApiError> {
        let revoked = || ApiError::unauthorized("the token was revoked; log in again");
        if let Some(client) = claims.sub.strip_prefix("service:") {
            return if clients.iter().any(|c| c.id == client) { Ok(()) } else { Err(revoked()) };
        }
        let user = Uuid::parse_str(&claims.sub).map_err(|_| revoked())?;
        let current = match self.cached(user) {
            Some(current) => current,
            None => {
                let row: Option<(bool, i64)> =
                    sqlx::query_as("SELECT active, version FROM rm.credentials WHERE user_id = $1")
                        .bind(user)
                        .fetch_optional(pool)
                        .await?;
                let Some((active, version)) = row else { return Err(revoked()) };
                let current = Current { active, version, read_at: Instant::now() };
                self.remember(user, current);
                current
            }
        };
        let newer = claims.ver.is_some_and(|ver| current.version > ver);
        if !current.active || newer { Err(revoked()) } else { Ok(()) }
    }

    fn cached(&self, user: Uuid) -> Option<Current> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(&user).filter(|c| c.read_at.elapsed() < FRESH_FOR).copied()
    }

    fn remember(&self, user: Uuid, current: Current) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, c| c.read_at.elapsed() < FRESH_FOR);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(user, current);
    }
}
