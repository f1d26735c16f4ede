//! A broker of a test's own, for the tests that kill it.
//!
//! The shared test broker (`OF_TEST_KAFKA`) must never go away under the
//! other tests; a test that kills or restarts the broker starts its own:
//! the same nisshi binary (`OF_TEST_NISSHI`, exported by `scripts/test`) on
//! a free port, keeping its log in a fresh database of the test Postgres,
//! so what it acknowledged survives a SIGKILL, as on the dev stack.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A nisshi broker with durable storage that the test can kill and restart
/// on the same address. Killed when dropped.
#[derive(Debug)]
pub struct PrivateBroker {
    /// Its bootstrap servers (`127.0.0.1:PORT`).
    pub brokers: String,
    port: u16,
    storage: String,
    child: Option<Child>,
}

impl PrivateBroker {
    /// Starts one on a free port with its log in a fresh database.
    pub async fn start() -> Self {
        let storage = crate::fresh_database("broker").await;
        let port = crate::free_port();
        let mut broker = Self { brokers: format!("127.0.0.1:{port}"), port, storage, child: None };
        broker.restart().await;
        broker
    }

    /// Settings for this broker with a topic prefix of their own.
    pub fn kafka_settings(&self) -> orderflow_config::KafkaSettings {
        orderflow_config::KafkaSettings { brokers: self.brokers.clone(), ..crate::kafka_settings() }
    }

    /// Kills it with SIGKILL (no shutdown of any kind) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL the broker");
            child.wait().await.expect("wait for the killed broker");
        }
    }

    /// Starts it (again) on its address and storage, and waits until it accepts connections.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is running");
        let binary = std::env::var("OF_TEST_NISSHI")
            .expect("OF_TEST_NISSHI is not set: run the tests with scripts/test, which builds the broker");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(binary)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--group-initial-rebalance-delay", "0s", "--storage-engine", &self.storage])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the broker");
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        crate::eventually("the private broker accepts connections", Duration::from_secs(30), || {
            let address = address.clone();
            async move { tokio::net::TcpStream::connect(address).await.is_ok() }
        })
        .await;
    }
}
