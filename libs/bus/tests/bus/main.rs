//! The bus against a real broker (nisshi in tests).

mod avro;
mod broker;
mod capabilities;
mod consumer;

use orderflow_config::KafkaSettings;

/// Kafka settings with a topic prefix no other test uses.
pub fn settings() -> KafkaSettings {
    orderflow_testkit::init_tracing();
    orderflow_testkit::kafka_settings()
}
