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
    let options = PgConnectOptions::from_str(&settings.url)?.options([
        ("statement_timeout", settings.statement_timeout_ms.to_string()),
        ("idle_in_transaction_session_timeout", settings.idle_in_transaction_timeout_ms.to_string()),
    ]);
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_with(options)
        .await
}
