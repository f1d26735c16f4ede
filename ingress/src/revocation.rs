//! Revoked tokens, and the roles a token's holder has now: a user's token
//! stops working once the user is deactivated, their credentials change (a
//! password change) or its session ends (logout, a reused refresh token:
//! [`crate::sessions`]), without waiting for it to expire.
//!
//! A user token carries the version of the user's credentials it was
//! issued under (`ver`) and its session (`sid`); `rm.credentials` has the
//! current `version`, `active` and `roles`, `ingress.sessions` whether the
//! session still runs. A token is revoked when the user is inactive,
//! unknown, has credentials newer than the token, or its session ended.
//! Service tokens are revoked by removing their client from
//! `service_clients`.
//!
//! Roles come from the same row, not from the token: the token's `roles`
//! claim is what the user had when it was issued, and a token forged with
//! the signing key could claim any. [`Revocations::check`] hands the access
//! decision the roles the read model has (a service token: `service`, for a
//! configured client), so a role granted or withdrawn counts within the
//! same second as a revocation.
//!
//! Each (user, session) row is cached for [`FRESH_FOR`] (1 s): a
//! revocation — a password change, a deactivation, a logout on another
//! replica — takes effect at most a second after the database shows it
//! (a logout or reuse on this replica at once: it drops its own entry),
//! and a client sending many requests costs one indexed lookup a second
//! instead of one a request. Longer would leave a stolen token usable for
//! longer after the password change or logout meant to stop it; shorter
//! buys nothing a person can notice. The cache is per replica and bounded
//! ([`MAX_ENTRIES`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orderflow_auth::{Claims, Role};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;
use crate::settings::ServiceClient;

/// How long a user's credentials and session row is trusted without
/// asking again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Rows cached at most; beyond it the stale ones go, and if all are fresh,
/// all of them (a second of extra lookups, never unbounded memory).
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone)]
struct Current {
    active: bool,
    version: i64,
    roles: Arc<[String]>,
    /// The token's session has not ended.
    session_live: bool,
    read_at: Instant,
}

/// A user and one of their sessions.
type Key = (Uuid, Uuid);

#[derive(Debug, Clone, Default)]
pub struct Revocations {
    cache: Arc<Mutex<HashMap<Key, Current>>>,
}

impl Revocations {
    /// `claims` with the roles its holder has now, if it may still be used;
    /// 401 if revoked, 503 if the read model cannot say.
    pub async fn check(
        &self,
        pool: &PgPool,
        clients: &[ServiceClient],
        mut claims: Claims,
    ) -> Result<Claims, ApiError> {
        let revoked = || ApiError::unauthorized("the token was revoked; log in again");
        if let Some(client) = claims.service_client() {
            if !clients.iter().any(|c| c.id == client) {
                return Err(revoked());
            }
            claims.roles = vec![Role::Service.as_str().to_owned()];
            return Ok(claims);
        }
        let user = Uuid::parse_str(&claims.sub).map_err(|_| revoked())?;
        // `Tokens::verify` refuses a user's token without a session.
        let Some(sid) = claims.sid else { return Err(revoked()) };
        let current = match self.cached((user, sid)) {
            Some(current) => current,
            None => {
                let row: Option<(bool, i64, Vec<String>, bool)> = sqlx::query_as(
                    "SELECT c.active, c.version, c.roles,
                            EXISTS (SELECT 1 FROM ingress.sessions s
                                    WHERE s.sid = $2 AND s.user_id = c.user_id AND s.revoked_at IS NULL)
                     FROM rm.credentials c WHERE c.user_id = $1",
                )
                .bind(user)
                .bind(sid)
                .fetch_optional(pool)
                .await?;
                let Some((active, version, roles, session_live)) = row else { return Err(revoked()) };
                let current = Current { active, version, roles: roles.into(), session_live, read_at: Instant::now() };
                self.remember((user, sid), current.clone());
                current
            }
        };
        if !current.session_live {
            return Err(ApiError::unauthorized(
                "the token was revoked: its session has ended (a logout, or a refresh token used twice); log in again",
            ));
        }
        let newer = claims.ver.is_none_or(|ver| current.version > ver);
        if !current.active || newer {
            return Err(revoked());
        }
        claims.roles = current.roles.to_vec();
        Ok(claims)
    }

    /// Drops what this replica knows about `user`'s session `sid`, so a
    /// logout or reuse seen here counts here at once (other replicas within
    /// [`FRESH_FOR`]).
    pub fn forget(&self, user: Uuid, sid: Uuid) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.remove(&(user, sid));
    }

    /// Drops what this replica remembers of every session of `user` (an
    /// erased user's tokens stop here at once; elsewhere within
    /// [`FRESH_FOR`]).
    pub fn forget_user(&self, user: Uuid) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|(cached, _), _| *cached != user);
    }

    fn cached(&self, key: Key) -> Option<Current> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(&key).filter(|c| c.read_at.elapsed() < FRESH_FOR).cloned()
    }

    fn remember(&self, key: Key, current: Current) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, c| c.read_at.elapsed() < FRESH_FOR);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, current);
    }
}
