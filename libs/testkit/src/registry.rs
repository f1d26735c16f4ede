//! A schema registry in this process, on its own database and port 0, for
//! the tests that need one and nothing else of the system.

use std::time::Duration;

use crate::{eventually, fresh_database, http_ok};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A schema registry running in this process on its own database.
#[derive(Debug)]
pub struct RegistryHandle {
    pub url: String,
    pub database_url: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RegistryHandle {
    /// Stops the registry and waits until it has let go of its port.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Starts a schema registry on port 0 with a fresh database (or `database_url`).
pub async fn spawn_registry_on(database_url: String) -> RegistryHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the registry port");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let settings = orderflow_registry::Settings {
        environment: orderflow_config::Environment::Development,
        http: orderflow_config::HttpSettings { addr: "127.0.0.1:0".into() },
        database: orderflow_config::DatabaseSettings {
            max_connections: 5,
            ..orderflow_config::DatabaseSettings::at(database_url.clone())
        },
        ..orderflow_registry::Settings::default()
    };
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = orderflow_registry::run(settings, listener, token).await {
            panic!("test schema registry failed: {error}");
        }
    });
    let handle = RegistryHandle { url, database_url, shutdown, task };
    let probe = format!("{}/health/ready", handle.url);
    eventually("the schema registry is ready", Duration::from_secs(20), || {
        let probe = probe.clone();
        async move { http_ok(&probe).await }
    })
    .await;
    handle
}

pub async fn spawn_registry() -> RegistryHandle {
    spawn_registry_on(fresh_database("registry").await).await
}
