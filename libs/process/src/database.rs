//! Connection pools with the safety settings every process wants.

use std::str::FromStr;
use std::time::Duration;

use orderflow_config::DatabaseSettings;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A pool whose connections cancel runaway statements and roll back
/// transactions left idle (a stuck task cannot hold locks forever), and
/// whose callers give up waiting for a connection after a while.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    pool(settings, settings.max_connections, &[]).await
}

/// A small pool like [`connect`]'s whose commits do not wait for the disk:
/// for bookkeeping that a database crash may lose the last moments of
/// without harm (the kit's record of calls to outside systems). Its
/// statements commit one by one, at the cost of a round trip each.
pub async fn connect_bookkeeping(settings: &DatabaseSettings, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    pool(settings, max_connections.min(settings.max_connections), &[("synchronous_commit", "off")]).await
}

async fn pool(
    settings: &DatabaseSettings,
    max_connections: u32,
    extra: &[(&str, &str)],
) -> Result<PgPool, sqlx::Error> {
    let mut session = vec![
        ("statement_timeout", settings.statement_timeout_ms.to_string()),
        ("idle_in_transaction_session_timeout", settings.idle_in_transaction_timeout_ms.to_string()),
    ];
    session.extend(extra.iter().map(|(name, value)| (*name, (*value).to_owned())));
    let options = PgConnectOptions::from_str(&settings.url)?.options(session);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_with(options)
        .await
}
