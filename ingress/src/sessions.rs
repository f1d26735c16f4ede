//! Sessions: one per login, so the tokens of a login can end together.
//!
//! Every token a login issues, and every token its refreshes issue,
//! carries the login's session id (`sid`). A session ends before it
//! expires when its user logs out (`POST /api/v1/auth/logout`) or when one
//! of its refresh tokens is used a second time: refresh tokens rotate (each
//! refresh answers a new one, and only the newest works), so a used one
//! coming back means two parties hold the session's tokens — a thief and
//! its owner — and neither can be told apart from the other. Ending the
//! session stops both: its refresh tokens at once, its access tokens at the
//! next revocation check ([`crate::revocation`], at most a second later).
//!
//! The rows live next to the Idempotency-Key answers, in the ingress's own
//! schema of the readmodels database (`migrations/ingress/sessions.sql`),
//! for the same reason: every replica reaches it, and it must outlive a
//! restart. A session keeps only the `jti` of its current refresh token;
//! rotation is one conditional `UPDATE`, so of two refreshes racing with
//! the same token exactly one wins and the other counts as a reuse (which
//! ends the session: a client must not refresh twice at once).

use std::time::Duration;

use orderflow_auth::Issued;
use sqlx::PgPool;
use uuid::Uuid;

/// How long a session's row is kept after its last refresh token
/// expired: no token of it is valid then, but replicas' clocks may differ.
pub const KEPT_AFTER_EXPIRY: Duration = Duration::from_secs(3600);

/// Why a session ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Logout,
    RefreshReused,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Logout => "logout",
            Ended::RefreshReused => "refresh token reused",
        }
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// It was the session's current one; the new one replaces it.
    Rotated,
    /// It was used before: the session has just been ended.
    Reused,
    /// The session had ended already (or never existed).
    Ended,
}

/// Records a new session of `user` whose first refresh token is `refresh`.
pub async fn start(pool: &PgPool, sid: Uuid, user: Uuid, refresh: &Issued) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ingress.sessions (sid, user_id, refresh_jti, expires_at) VALUES ($1, $2, $3, to_timestamp($4))",
    )
    .bind(sid)
    .bind(user)
    .bind(refresh.jti)
    .bind(refresh.expires_at as f64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Replaces the session's refresh token `used` by `next`, if `used` is the
/// current one; else ends the session (a reuse), if it had not ended.
pub async fn rotate(pool: &PgPool, sid: Uuid, user: Uuid, used: Uuid, next: &Issued) -> Result<Rotation, sqlx::Error> {
    let rotated = sqlx::query(
        "UPDATE ingress.sessions SET refresh_jti = $4, refreshed_at = now(), expires_at = to_timestamp($5)
         WHERE sid = $1 AND user_id = $2 AND refresh_jti = $3 AND revoked_at IS NULL",
    )
    .bind(sid)
    .bind(user)
    .bind(used)
    .bind(next.jti)
    .bind(next.expires_at as f64)
    .execute(pool)
    .await?;
    if rotated.rows_affected() == 1 {
        return Ok(Rotation::Rotated);
    }
    // Not the current token of a live session: either the session ended,
    // or this token was rotated away before, i.e. it is being reused.
    let ended = end(pool, user, &[sid], Ended::RefreshReused).await?;
    Ok(if ended > 0 { Rotation::Reused } else { Rotation::Ended })
}

/// Ends `user`'s sessions among `sids` that are still live; how many.
pub async fn end(pool: &PgPool, user: Uuid, sids: &[Uuid], why: Ended) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE ingress.sessions SET revoked_at = now(), revoked_reason = $3
         WHERE user_id = $1 AND sid = ANY($2) AND revoked_at IS NULL",
    )
    .bind(user)
    .bind(sids)
    .bind(why.as_str())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Forgets sessions whose last token expired over [`KEPT_AFTER_EXPIRY`]
/// ago; how many. (A token of a forgotten session is refused as revoked,
/// which it could only be if it had not expired: it has.)
pub async fn purge(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM ingress.sessions WHERE expires_at < now() - make_interval(secs => $1)")
        .bind(KEPT_AFTER_EXPIRY.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
