//! What an operator sees of a saga with kcat and a Confluent client: keyed
//! by the order id, the contract's headers, values decodable through the
//! registry.

use orderflow_harness::system::System;

use crate::{customer, order, place, saga_settled};

const HEADERS: [&str; 7] =
    ["message_id", "message_type", "correlation_id", "causation_id", "occurred_at", "traceparent", "actor"];

const DECODE: &str = r#"
import sys, json
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField
brokers, registry, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({"bootstrap.servers": brokers, "group.id": "py-" + topic, "auto.offset.reset": "earliest"})
c.subscribe([topic])
des = AvroDeserializer(SchemaRegistryClient({"url": registry}))
out = []
for _ in range(120):
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    value = des(m.value(), SerializationContext(topic, MessageField.VALUE))
    out.append({"key": m.key().decode(), "headers": {k: v.decode() for k, v in (m.headers() or [])}, "value": value})
    if len(out) >= count:
        break
c.close()
print(json.dumps(out, default=str))
"#;

#[tokio::test]
async fn saga_events_decode_with_a_confluent_client_keyed_by_order_with_the_contract_headers() {
    let system = System::start_all().await;
    let (token, user_id) = customer(&system, "inspector@example.com").await;
    let (status, placed) = place(&system, &token, order(&[(2, 1250)])).await;
    assert_eq!(status, 201, "{placed}");
    let id = placed["id"].as_str().expect("id").to_owned();
    saga_settled(&system, 1).await;

    let python = std::env::var("OF_TEST_PYTHON").expect("OF_TEST_PYTHON is set by scripts/test");
    for (topic, types) in [
        ("orders.events", &["OrderPlaced", "OrderStockReserved", "OrderConfirmed"][..]),
        ("payments.events", &["PaymentAuthorized", "PaymentCaptured"][..]),
    ] {
        let full = system.topic(topic);
        let output = tokio::process::Command::new(&python)
            .args([
                "-W",
                "ignore",
                "-c",
                DECODE,
                &system.kafka.brokers,
                &system.registry.url,
                &full,
                &types.len().to_string(),
            ])
            .output()
            .await
            .expect("python");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let messages: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(messages.len(), types.len(), "{topic}: {messages:?}");
        for (message, expected) in messages.iter().zip(types) {
            assert_eq!(message["key"].as_str(), Some(id.as_str()), "{topic}: keyed by the order id");
            assert_eq!(message["value"]["order_id"].as_str(), Some(id.as_str()));
            assert_eq!(message["headers"]["message_type"], *expected);
            for header in HEADERS {
                assert!(message["headers"][header].is_string(), "{topic}: {header} missing: {message}");
            }
            assert_eq!(message["headers"]["actor"].as_str(), Some(user_id.as_str()), "the customer acted");
        }
        if topic == "orders.events" {
            assert_eq!(messages[0]["value"]["total"], 2500);
            assert_eq!(messages[0]["value"]["currency"], "EUR");
        }
    }
    system.stop().await;
}
