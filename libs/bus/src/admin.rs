//! Creating the contract's topics.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::topics::Retention;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot create the Kafka admin client: {0}")]
    Client(#[source] rdkafka::error::KafkaError),
    #[error("cannot create topic {topic}: {problem}")]
    Create { topic: String, problem: String },
}

/// Creates the topics that do not exist yet (with the settings' partition
/// count and the retention of their kind); existing ones are left alone.
pub async fn ensure_topics(
    settings: &orderflow_config::KafkaSettings,
    topics: &[(String, Retention)],
) -> Result<(), AdminError> {
    let admin: AdminClient<DefaultClientContext> =
        crate::client_config(settings).create().map_err(AdminError::Client)?;
    let names: Vec<String> = topics.iter().map(|(name, _)| settings.topic(name)).collect();
    let configs: Vec<Vec<(&str, &str)>> = topics.iter().map(|(_, retention)| retention.configs()).collect();
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .zip(&configs)
        .map(|(name, config)| {
            config
                .iter()
                .fold(NewTopic::new(name, settings.partitions, TopicReplication::Fixed(1)), |t, (k, v)| t.set(k, v))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .map_err(|e| AdminError::Create { topic: names.join(","), problem: e.to_string() })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Create { topic, problem: code.to_string() }),
        }
    }
    Ok(())
}
