//! Test support shared by every crate's integration tests.
//!
//! The test command (`scripts/test`) starts a private Postgres and a nisshi
//! broker on their own ports and exports where they are:
//!
//! - `OF_TEST_PG`: an admin URL (`postgres://postgres@127.0.0.1:55433`);
//! - `OF_TEST_KAFKA`: the broker (`127.0.0.1:19092`).
//!
//! Every test then isolates itself: [`fresh_database`] creates a database no
//! other test uses, [`kafka_settings`] a topic prefix and group names no
//! other test uses. Nothing is waited for with sleeps: [`eventually`] polls
//! with a deadline. This crate is a leaf: the whole-system harness, which
//! starts services, is `orderflow-harness` (tests/harness).

pub mod broker;
pub mod postgres;
pub mod registry;
pub mod topic;

use std::future::Future;
use std::time::Duration;

use sqlx::Connection;

/// The admin URL of the test Postgres cluster.
pub fn pg_admin_url() -> String {
    std::env::var("OF_TEST_PG")
        .expect("OF_TEST_PG is not set: run the tests with scripts/test, which starts Postgres and the broker")
}

/// The test broker's bootstrap servers.
pub fn kafka_brokers() -> String {
    std::env::var("OF_TEST_KAFKA")
        .expect("OF_TEST_KAFKA is not set: run the tests with scripts/test, which starts Postgres and the broker")
}

/// Settings for the test broker with a topic prefix of their own.
pub fn kafka_settings() -> orderflow_config::KafkaSettings {
    orderflow_config::KafkaSettings {
        topic_prefix: unique_prefix(),
        ..orderflow_config::KafkaSettings::development(kafka_brokers())
    }
}

/// Tracing for tests: `RUST_LOG` decides, quiet by default.
pub fn init_tracing() {
    orderflow_telemetry::init_tracing("warn");
}

/// A port nothing listens on now (the kernel's choice for an ephemeral bind).
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("its address").port()
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
    fresh_database_on(&pg_admin_url(), hint).await
}

/// Creates an empty database in the cluster at `admin` and returns its URL.
pub async fn fresh_database_on(admin: &str, hint: &str) -> String {
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

/// Polls `check` until it returns true or `deadline` passes (then panics
/// naming `what`).
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until(what, deadline, || {
        let checked = check();
        async move { if checked.await { Ok(()) } else { Err(String::new()) } }
    })
    .await
}

/// Polls `check` until it returns `Ok(value)` and returns the value, or
/// panics once `deadline` passed, naming `what` and the last `Err` it said
/// (what was seen instead), so a timeout explains itself.
pub async fn until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let until = tokio::time::Instant::now() + deadline;
    let mut pause = Duration::from_millis(10);
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= until {
            let seen = if seen.is_empty() { String::new() } else { format!("; last seen: {seen}") };
            panic!("timed out after {deadline:?} waiting until {what}{seen}");
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
