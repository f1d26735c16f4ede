//! What an operator sees with kcat and a Confluent client.

use crate::{PASSWORD, System};

const HEADERS: [&str; 7] =
    ["message_id", "message_type", "correlation_id", "causation_id", "occurred_at", "traceparent", "actor"];

#[tokio::test]
async fn kcat_shows_key_and_headers_and_confluent_client_decodes_the_value() {
    let system = System::start().await;
    let (status, body) = system.register("kcat@example.com", PASSWORD).await;
    assert_eq!(status, 201);
    let id = body["id"].as_str().expect("id").to_owned();
    let topic = system.topic(orderflow_contracts::users::EVENTS.name);
    let root = std::env::var("OF_ROOT").expect("OF_ROOT is set by scripts/test");

    let kcat = tokio::process::Command::new(format!("{root}/scripts/kcat"))
        .args(["-b", &system.kafka.brokers, "-C", "-t", &topic, "-e", "-q", "-f", "%k|%h\n"])
        .output()
        .await
        .expect("run scripts/kcat");
    let out = String::from_utf8_lossy(&kcat.stdout);
    assert!(kcat.status.success(), "kcat failed: {}", String::from_utf8_lossy(&kcat.stderr));
    let line =
        out.lines().find(|l| l.contains("UserRegistered")).unwrap_or_else(|| panic!("no UserRegistered in {out}"));
    let (key, headers) = line.split_once('|').expect("key|headers");
    assert_eq!(key, id, "the user id is the key");
    for header in HEADERS {
        assert!(headers.contains(&format!("{header}=")), "{header} missing from {headers}");
    }
    assert!(headers.contains("actor=anonymous"));

    let script = r#"
import sys, json
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField
brokers, registry, topic = sys.argv[1:4]
c = Consumer({"bootstrap.servers": brokers, "group.id": "py-" + topic, "auto.offset.reset": "earliest"})
c.subscribe([topic])
des = AvroDeserializer(SchemaRegistryClient({"url": registry}))
m = None
for _ in range(60):
    m = c.poll(0.5)
    if m is not None and not m.error():
        break
value = des(m.value(), SerializationContext(topic, MessageField.VALUE))
print(json.dumps(value, default=str))
c.close()
"#;
    let python = std::env::var("OF_TEST_PYTHON").expect("OF_TEST_PYTHON is set by scripts/test");
    let decoded = tokio::process::Command::new(python)
        .args(["-W", "ignore", "-c", script, &system.kafka.brokers, &system.registry.url, &topic])
        .output()
        .await
        .expect("python");
    assert!(decoded.status.success(), "{}", String::from_utf8_lossy(&decoded.stderr));
    let value: serde_json::Value = serde_json::from_slice(&decoded.stdout).expect("json");
    assert_eq!(value["user_id"].as_str(), Some(id.as_str()));
    // Personal fields travel sealed with the user's data key: a string
    // still, ciphertext to anyone without the key.
    assert!(value["email"].as_str().is_some_and(|e| e.starts_with("enc:v1:")), "{value}");
    assert!(!String::from_utf8_lossy(&decoded.stdout).contains("kcat@example.com"));
    system.stop().await;
}
