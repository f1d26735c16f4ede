//! The keeper's store: data keys in the user service's database.

use std::sync::Arc;
use std::time::Duration;

use orderflow_contracts::personal::{DataKey, KeyError, KeyFuture, KeyStore, Lookup};
use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{KEY_CHANGES, KEYS, Keks};

/// Creates or upgrades the `data_keys` table.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_orderflow_keys_migrations");
    migrator.run(pool).await
}

/// Data keys in Postgres, wrapped by [`Keks`].
#[derive(Debug, Clone)]
pub struct PgKeyStore {
    pool: PgPool,
    keks: Arc<Keks>,
}

fn unavailable(error: impl std::fmt::Display) -> KeyError {
    KeyError::Unavailable(error.to_string())
}

impl PgKeyStore {
    pub fn new(pool: PgPool, keks: Arc<Keks>) -> Self {
        Self { pool, keks }
    }

    fn unwrap(&self, key_id: Uuid, kek_id: Option<String>, wrapped: Option<Vec<u8>>) -> Result<Lookup, KeyError> {
        let (Some(kek_id), Some(wrapped)) = (kek_id, wrapped) else { return Ok(Lookup::Erased) };
        let id = key_id.to_string();
        // A key the settings cannot unwrap is a misconfiguration (a
        // key-encryption key dropped too early): retried, never erased.
        let bytes = self.keks.unwrap(&id, &kek_id, &wrapped).map_err(unavailable)?;
        DataKey::new(id, &bytes).map(Lookup::from)
    }

    async fn for_subject(&self, subject: &str) -> Result<Lookup, KeyError> {
        let found = "SELECT key_id, kek_id, wrapped FROM data_keys WHERE subject = $1";
        if let Some(row) = sqlx::query(found).bind(subject).fetch_optional(&self.pool).await.map_err(unavailable)? {
            return self.unwrap(row.get("key_id"), row.get("kek_id"), row.get("wrapped"));
        }
        let key_id = Uuid::new_v4();
        let bytes = DataKey::generate_bytes();
        let (kek_id, wrapped) = self.keks.wrap(&key_id.to_string(), &bytes);
        // Two first uses race: one key wins, both use it. A subject erased
        // meanwhile keeps its destroyed row: nothing is created.
        let created = sqlx::query(
            "INSERT INTO data_keys (subject, key_id, kek_id, wrapped) VALUES ($1, $2, $3, $4)
             ON CONFLICT (subject) DO NOTHING",
        )
        .bind(subject)
        .bind(key_id)
        .bind(&kek_id)
        .bind(&wrapped)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if created.rows_affected() == 1 {
            KEY_CHANGES.with_label_values(&["created"]).inc();
            return DataKey::new(key_id.to_string(), &bytes).map(Lookup::from);
        }
        let row = sqlx::query(found).bind(subject).fetch_one(&self.pool).await.map_err(unavailable)?;
        self.unwrap(row.get("key_id"), row.get("kek_id"), row.get("wrapped"))
    }

    async fn by_id(&self, key_id: &str) -> Result<Lookup, KeyError> {
        let Ok(id) = key_id.parse::<Uuid>() else { return Ok(Lookup::Erased) };
        let row = sqlx::query("SELECT kek_id, wrapped FROM data_keys WHERE key_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        match row {
            Some(row) => self.unwrap(id, row.get("kek_id"), row.get("wrapped")),
            None => Ok(Lookup::Erased),
        }
    }
}

impl KeyStore for PgKeyStore {
    fn sealing_key<'a>(&'a self, subject: &'a str) -> KeyFuture<'a> {
        Box::pin(self.for_subject(subject))
    }

    fn opening_key<'a>(&'a self, key_id: &'a str) -> KeyFuture<'a> {
        Box::pin(self.by_id(key_id))
    }
}

/// Destroys `subject`'s data key inside the caller's (erasing)
/// transaction: the wrapped key is emptied and the row stays, so the
/// subject never gets another key. A subject without a key gets a
/// destroyed row too. Whether a live key was destroyed.
pub async fn destroy(tx: &mut PgConnection, subject: &str) -> Result<bool, sqlx::Error> {
    let live: Option<bool> =
        sqlx::query_scalar("SELECT wrapped IS NOT NULL FROM data_keys WHERE subject = $1 FOR UPDATE")
            .bind(subject)
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query(
        "INSERT INTO data_keys (subject, key_id, kek_id, wrapped, destroyed_at) VALUES ($1, $2, NULL, NULL, now())
         ON CONFLICT (subject) DO UPDATE SET kek_id = NULL, wrapped = NULL,
             destroyed_at = COALESCE(data_keys.destroyed_at, now())",
    )
    .bind(subject)
    .bind(Uuid::new_v4())
    .execute(&mut *tx)
    .await?;
    let destroyed = live == Some(true);
    if destroyed {
        KEY_CHANGES.with_label_values(&["destroyed"]).inc();
    }
    Ok(destroyed)
}

/// Re-wraps, `batch` at a time, every live data key that another
/// key-encryption key than the first wrapped, and keeps [`KEYS`] current,
/// every `every` until `shutdown`. After a rotation (the new key first in
/// `keys.keks`, the old one after it) this moves every key to the new one;
/// once `orderflow_data_keys{state="old_kek"}` is 0, the old key can
/// leave the settings.
pub async fn rewrap(
    pool: PgPool,
    keks: Arc<Keks>,
    every: Duration,
    shutdown: CancellationToken,
) -> Result<(), sqlx::Error> {
    loop {
        let moved = rewrap_once(&pool, &keks, 500).await?;
        if moved > 0 {
            tracing::info!(moved, kek = keks.current(), "data keys re-wrapped with the current key-encryption key");
        }
        let counts = sqlx::query(
            "SELECT count(*) FILTER (WHERE wrapped IS NOT NULL) AS live,
                    count(*) FILTER (WHERE wrapped IS NULL) AS destroyed,
                    count(*) FILTER (WHERE wrapped IS NOT NULL AND kek_id <> $1) AS old_kek FROM data_keys",
        )
        .bind(keks.current())
        .fetch_one(&pool)
        .await?;
        KEYS.with_label_values(&["live"]).set(counts.get("live"));
        KEYS.with_label_values(&["destroyed"]).set(counts.get("destroyed"));
        KEYS.with_label_values(&["old_kek"]).set(counts.get("old_kek"));
        if moved == 0 {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(every) => {}
            }
        } else if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// One batch of [`rewrap`]: how many keys moved.
pub async fn rewrap_once(pool: &PgPool, keks: &Keks, batch: i64) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT key_id, kek_id, wrapped FROM data_keys WHERE wrapped IS NOT NULL AND kek_id <> $1
         LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(keks.current())
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let mut moved = 0;
    for row in rows {
        let (key_id, kek_id): (Uuid, String) = (row.get("key_id"), row.get("kek_id"));
        let id = key_id.to_string();
        match keks.unwrap(&id, &kek_id, &row.get::<Vec<u8>, _>("wrapped")) {
            Ok(bytes) => {
                let (kek, wrapped) = keks.wrap(&id, &bytes);
                sqlx::query("UPDATE data_keys SET kek_id = $2, wrapped = $3 WHERE key_id = $1")
                    .bind(key_id)
                    .bind(kek)
                    .bind(wrapped)
                    .execute(&mut *tx)
                    .await?;
                moved += 1;
            }
            Err(error) => tracing::error!(%error, "a data key cannot be re-wrapped; it stays as it is"),
        }
    }
    tx.commit().await?;
    Ok(moved)
}
