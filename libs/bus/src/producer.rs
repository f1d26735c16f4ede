use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, Opts};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use crate::headers::to_owned_headers;

static PRODUCED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounterVec::new(
            Opts::new("orderflow_bus_messages_produced_total", "Records confirmed by the broker, by topic and outcome"),
            &["topic", "outcome"],
        )
        .expect("valid metric"),
    )
});

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

static FATAL: LazyLock<IntCounter> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounter::new("orderflow_bus_producer_renewals_total", "Producers replaced after a fatal error")
            .expect("valid metric"),
    )
});

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(#[source] KafkaError),
    #[error("the broker did not confirm the record on {topic}: {source}")]
    Delivery { topic: String, source: KafkaError },
}

impl ProducerError {
    /// Whether sending the same record again can never succeed (too large,
    /// invalid, not allowed) — as opposed to the broker being unavailable
    /// or slow, which passes.
    pub fn is_permanent(&self) -> bool {
        use RDKafkaErrorCode as C;
        let code = match self {
            ProducerError::Create(_) => return false,
            ProducerError::Delivery { source, .. } => source.rdkafka_error_code(),
        };
        matches!(
            code,
            Some(
                C::MessageSizeTooLarge
                    | C::InvalidMessageSize
                    | C::InvalidMessage
                    | C::InvalidRecord
                    | C::MessageBatchTooLarge
                    | C::TopicAuthorizationFailed
                    | C::ClusterAuthorizationFailed
                    | C::InvalidTopic
                    | C::UnsupportedForMessageFormat
                    | C::PolicyViolation
            )
        )
    }
}

/// An idempotent producer (`enable.idempotence`, `acks=all`): a record is
/// written once and in order per partition even when librdkafka retries.
///
/// An idempotent producer that hits a *fatal* error (the broker fenced its
/// producer id, a sequence gap) refuses every later record. Rather than
/// failing every request from then on, the producer is replaced by a fresh
/// one (a new producer id) the first time a send sees it; the failed send
/// is reported to its caller, who has not acknowledged anything.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<RwLock<FutureProducer>>,
    config: Arc<ClientConfig>,
    max_message_bytes: usize,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    pub fn new(settings: &orderflow_config::KafkaSettings) -> Result<Self, ProducerError> {
        let mut config = crate::client_config(settings);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000")
            .set("compression.type", "none");
        let inner = config.create().map_err(ProducerError::Create)?;
        let max_message_bytes =
            config.get("message.max.bytes").and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        Ok(Self { inner: Arc::new(RwLock::new(inner)), config: Arc::new(config), max_message_bytes })
    }

    /// Refuses, without sending anything, a record the client would refuse
    /// as too large (`message.max.bytes` against key, value and headers,
    /// as librdkafka counts them). A caller that pipelines sends checks
    /// first, so the later records of the same key are not sent ahead of
    /// one that can never go.
    pub fn check_size(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), ProducerError> {
        // Each header: its name and value, and two length varints.
        let headers: usize = headers.iter().map(|(name, value)| name.len() + value.len() + 10).sum();
        if key.len() + payload.len() + headers > self.max_message_bytes {
            return Err(ProducerError::Delivery {
                topic: topic.to_owned(),
                source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
            });
        }
        Ok(())
    }

    fn current(&self) -> FutureProducer {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces `failed` by a fresh producer if it has a fatal error (and
    /// nobody replaced it yet).
    fn renew_if_fatal(&self, failed: &FutureProducer) {
        let Some((code, reason)) = failed.client().fatal_error() else { return };
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if !std::ptr::eq(inner.client().native_ptr(), failed.client().native_ptr()) {
            return; // another send renewed it already
        }
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                FATAL.inc();
                tracing::error!(?code, %reason, "the producer hit a fatal error; replaced it with a fresh one");
                *inner = fresh;
            }
            Err(error) => tracing::error!(%error, "the producer hit a fatal error and cannot be replaced"),
        }
    }

    /// Sends one record and waits for the broker's confirmation. A full
    /// local queue is waited out (up to the message timeout), not dropped.
    pub async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> Result<(i32, i64), ProducerError> {
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(to_owned_headers(headers));
        let producer = self.current();
        match producer.send(record, Duration::from_secs(30)).await {
            Ok(delivery) => {
                PRODUCED.with_label_values(&[topic, "ok"]).inc();
                Ok((delivery.partition, delivery.offset))
            }
            Err((source, _)) => {
                PRODUCED.with_label_values(&[topic, "error"]).inc();
                self.renew_if_fatal(&producer);
                Err(ProducerError::Delivery { topic: topic.to_owned(), source })
            }
        }
    }

    /// Waits until everything queued is delivered (shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.current().flush(timeout) {
            tracing::warn!(%error, "producer flush did not complete");
        }
    }

    /// Whether the broker answers a metadata request (readiness).
    pub async fn ping(&self) -> Result<(), String> {
        let inner = self.current();
        tokio::task::spawn_blocking(move || {
            inner.client().fetch_metadata(None, Duration::from_secs(3)).map(|_| ()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
