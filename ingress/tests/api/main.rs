//! The users flow through the whole system: ingress → users.commands → user
//! service → outbox → users.events → projector → read model → ingress.

mod browser;
mod catalog;
mod console;
mod erasure;
mod flow;
mod graphql;
mod idempotency;
mod inspect;
mod limits;
mod metrics;
mod openapi;
mod ops;
mod probe;
mod refused;
mod revocation;
mod roles;
mod secrets;
mod sessions;
mod shutdown;
mod tokens;
mod trace;
mod uniqueness;
mod waiting;

use reqwest::Method;

pub use orderflow_harness::system::{ADMIN_EMAIL, System};

pub const PASSWORD: &str = "correct horse battery";

/// Registers `email` and logs in; returns (user id, token).
pub async fn user(system: &System, email: &str) -> (String, String) {
    let (status, body) = system.register(email, PASSWORD).await;
    assert_eq!(status, 201, "register {email}: {body}");
    let token = system.login(email, PASSWORD).await.expect("login");
    (body["id"].as_str().expect("id").to_owned(), token)
}

pub async fn get(system: &System, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    system.call(Method::GET, path, token, None).await
}

/// Another ingress with `settings` (another replica, on the same databases
/// and topics): its API's URL, and how to stop it.
pub async fn replica(
    settings: orderflow_ingress::Settings,
) -> (String, tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>) {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", api.local_addr().expect("addr"));
    let ready = format!("http://{}/health/ready", ops.local_addr().expect("addr"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        let listeners = orderflow_ingress::Listeners { api, ops };
        orderflow_ingress::run(settings, listeners, token).await.expect("the other ingress");
    });
    orderflow_testkit::eventually("the other ingress is ready", std::time::Duration::from_secs(30), || {
        let ready = ready.clone();
        async move { orderflow_testkit::http_ok(&ready).await }
    })
    .await;
    (url, shutdown, task)
}

/// Log lines captured in memory (a `tracing` writer), to grep.
#[derive(Debug, Clone, Default)]
pub struct Capture(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many `message_type` commands `actor` sent, as `users.commands` holds them.
pub async fn commands_of(system: &System, message_type: &str, actor: &str) -> usize {
    orderflow_testkit::topic::read_topic(
        &system.kafka.brokers,
        &system.topic(orderflow_contracts::users::COMMANDS.name),
    )
    .await
    .iter()
    .filter_map(|m| m.headers().ok())
    .filter(|h| h.message_type == message_type && h.actor == actor)
    .count()
}

/// Every log line of every component of this test process (each test is a
/// process of its own) goes to `make`, at the most verbose level.
pub fn tracing_subscriber_init<W>(make: impl Fn() -> W + Send + Sync + 'static)
where
    W: std::io::Write + 'static,
{
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,h2=info,hyper=info,reqwest=info"))
        .with_writer(make)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the first subscriber of this test process");
}
