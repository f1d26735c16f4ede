//! Test support shared by every crate's integration tests.
//!
//! The test command (`scripts/test`) starts a private Postgres and a tansu
//! broker on their own ports and exports where they are:
//!
//! - `ORDERFLOW_TEST_PG`: an admin URL (`postgres://postgres@127.0.0.1:55433`);
//! - `ORDERFLOW_TEST_KAFKA`: the broker (`127.0.0.1:19092`).
//!
//! Every test then isolates itself: [`fresh_database`] creates a database no
//! other test uses, [`unique_prefix`] a topic prefix and group names no other
//! test uses, and [`spawn_registry`] a schema registry of its own on port 0.
//! Nothing is waited for with sleeps: [`eventually`] polls with a deadline.

pub mod system;
pub mod topic;

use std::future::Future;
use std::time::Duration;

use sqlx::Connection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The admin URL of the test Postgres cluster.
pub fn pg_admin_url() -> String {
    std::env::var("ORDERFLOW_TEST_PG")
        .expect("ORDERFLOW_TEST_PG is not set: run the tests with scripts/test, which starts Postgres and tansu")
}

/// The test broker's bootstrap servers.
pub fn kafka_brokers() -> String {
    std::env::var("ORDERFLOW_TEST_KAFKA")
        .expect("ORDERFLOW_TEST_KAFKA is not set: run the tests with scripts/test, which starts Postgres and tansu")
}

/// Tracing for tests: `RUST_LOG` decides, quiet by default.
pub fn init_tracing() {
    orderflow_telemetry::init_tracing("warn");
}

/// A short random token, unique per call.
pub fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A topic prefix (and group-name prefix) that no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}.", unique_id())
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database(hint: &str) -> String {
    let admin = pg_admin_url();
    let name = format!("t_{hint}_{}", unique_id());
    let mut conn =
        sqlx::PgConnection::connect(&format!("{admin}/postgres")).await.expect("connect to the test Postgres");
    // `name` is built from a fixed hint and hex digits only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    format!("{admin}/{name}")
}

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
    let settings = orderflow_schema_registry::Settings {
        http: orderflow_config::HttpSettings { addr: "127.0.0.1:0".into() },
        database: orderflow_config::DatabaseSettings { url: database_url.clone(), max_connections: 5 },
    };
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = orderflow_schema_registry::run(settings, listener, token).await {
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

/// Polls `check` until it returns true or `deadline` passes (then panics
/// naming `what`).
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + deadline;
    let mut pause = Duration::from_millis(10);
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= until {
            panic!("timed out after {deadline:?} waiting until {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Whether a GET of `url` answers 200.
pub async fn http_ok(url: &str) -> bool {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("http client");
    client.get(url).send().await.is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
}
