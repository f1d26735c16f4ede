//! The projection building block against a real Postgres and broker, with a
//! tiny projection of its own: `items(id, value)` from one topic, where the
//! message key is the id and the payload the value (`poison` fails).
//!
//! Run with `scripts/test -p orderflow-projection` (it provides
//! `OF_TEST_PG` and `OF_TEST_KAFKA`).

mod engine;
mod fencing;

use std::time::Duration;

use orderflow_bus::{HandlerError, InboundMessage, Producer};
use orderflow_config::KafkaSettings;
use orderflow_contracts::Retention;
use orderflow_contracts::topics::dlq;
use orderflow_projection::{Applied, Definition, Engine, Options, Projection, Routes};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

async fn fresh_database() -> PgPool {
    let url = orderflow_testkit::fresh_database("projection").await;
    let pool = PgPool::connect(&url).await.expect("connect");
    // The dead letters go through the outbox.
    orderflow_outbox::migrate(&pool).await.expect("outbox tables");
    pool
}

pub use orderflow_testkit::eventually;

pub const V1: &str = "CREATE TABLE items (id TEXT PRIMARY KEY, value TEXT NOT NULL);";
/// The same read model with another shape: one more column.
pub const V2: &str = "CREATE TABLE items (id TEXT PRIMARY KEY, value TEXT NOT NULL, length INTEGER NOT NULL);";

#[derive(Debug)]
pub struct Items {
    definition: Definition,
    routes: Routes<Item>,
}

/// One message of the topic: the key is the id, the payload the value.
#[derive(Debug)]
pub struct Item {
    id: String,
    value: String,
}

impl Item {
    fn read(message: &InboundMessage) -> Result<Self, HandlerError> {
        let id = message.key.clone().unwrap_or_default();
        Ok(Self { id, value: String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default()).into_owned() })
    }
}

impl Items {
    pub fn new(topic: &str, template: &str) -> Self {
        Self {
            definition: Definition {
                name: "items".into(),
                template: template.to_owned(),
                tables: vec!["items".into()],
                view_schema: "views".into(),
                notify_channel: Some("items_changed".into()),
            },
            routes: Routes::new().as_is(topic, Item::read),
        }
    }
}

impl Projection for Items {
    type Input = Item;

    fn definition(&self) -> &Definition {
        &self.definition
    }

    fn routes(&self) -> &Routes<Item> {
        &self.routes
    }

    async fn apply(&self, tx: &mut PgConnection, item: Item, _: &InboundMessage) -> Result<Applied, HandlerError> {
        let Item { id, value } = item;
        if value == "poison" {
            return Err(HandlerError::Permanent("poison".into()));
        }
        if value == "slow" {
            // Long enough for a test to act while a replay is under way.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sql = if self.definition.template == V1 {
            "INSERT INTO items (id, value) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value"
        } else {
            "INSERT INTO items (id, value, length) VALUES ($1, $2, length($2))
             ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, length = EXCLUDED.length"
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .bind(&value)
            .execute(&mut *tx)
            .await
            .map_err(orderflow_outbox::classify)?;
        Ok(Applied::notify(id))
    }
}

/// A database, a topic of its own and a producer.
#[derive(Debug)]
pub struct Harness {
    pub pool: PgPool,
    pub kafka: KafkaSettings,
    pub topic: String,
    producer: Producer,
}

/// A running engine.
#[derive(Debug)]
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), orderflow_projection::Error>>,
}

impl Running {
    pub async fn stop(self) -> Result<(), orderflow_projection::Error> {
        self.shutdown.cancel();
        self.task.await.expect("engine task")
    }

    /// Whether the engine has ended on its own.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Harness {
    pub async fn new() -> Self {
        orderflow_testkit::init_tracing();
        let kafka = orderflow_testkit::kafka_settings();
        orderflow_bus::admin::ensure_topics(
            &kafka,
            &[("items".into(), Retention::Forever), (dlq("items"), Retention::Week)],
        )
        .await
        .expect("topics");
        let producer = Producer::new(&kafka).expect("producer");
        Self { pool: fresh_database().await, topic: kafka.topic("items"), kafka, producer }
    }

    pub fn options(&self) -> Options {
        Options {
            check_interval: Duration::from_millis(100),
            give_up_after: Duration::from_secs(10),
            ..Options::new(self.kafka.clone())
        }
    }

    pub fn start_with(&self, template: &str, options: Options) -> Running {
        let shutdown = CancellationToken::new();
        let engine = Engine::new(self.pool.clone(), Items::new(&self.topic, template), options);
        Running { task: tokio::spawn(engine.run(shutdown.clone())), shutdown }
    }

    pub fn start(&self, template: &str) -> Running {
        self.start_with(template, self.options())
    }

    pub async fn send(&self, id: &str, value: &str) {
        self.producer.send(&self.topic, id, value.as_bytes(), &[]).await.expect("send");
    }

    /// The rows readers see (through the views), `id=value` sorted.
    pub async fn items(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT id || '=' || value FROM views.items ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default()
    }

    pub async fn wait_for_items(&self, n: usize) {
        eventually(&format!("{n} items are visible"), Duration::from_secs(30), || async move {
            self.items().await.len() == n
        })
        .await;
    }
}
