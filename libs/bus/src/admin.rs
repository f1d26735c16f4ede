//! Creating the contract's topics.

use std::time::Duration;

use orderflow_contracts::Retention;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot create the Kafka admin client: {0}")]
    Client(#[source] rdkafka::error::KafkaError),
    #[error("cannot create topic {topic}: {problem}")]
    Create { topic: String, problem: String },
}

/// Creates the topics that do not exist yet, with the settings' partition
/// count, replication factor and `min.insync.replicas` and the retention of
/// their kind; existing ones are left alone.
pub async fn ensure_topics(
    settings: &orderflow_config::KafkaSettings,
    topics: &[(String, Retention)],
) -> Result<(), AdminError> {
    let admin: AdminClient<DefaultClientContext> =
        crate::client_config(settings).create().map_err(AdminError::Client)?;
    let names: Vec<String> = topics.iter().map(|(name, _)| settings.topic(name)).collect();
    let min_isr = settings.min_insync_replicas.to_string();
    let configs: Vec<Vec<(&str, String)>> = topics
        .iter()
        .map(|(_, retention)| {
            let mut config = retention.configs();
            config.push(("min.insync.replicas", min_isr.clone()));
            config
        })
        .collect();
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .zip(&configs)
        .map(|(name, config)| {
            let replication = TopicReplication::Fixed(settings.replication_factor);
            config.iter().fold(NewTopic::new(name, settings.partitions, replication), |t, (k, v)| t.set(k, v))
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
