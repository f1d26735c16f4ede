//! The right to erasure: `POST /api/v1/users/{id}/erase` leaves nothing
//! personal of a user in any database of the system — read models, the
//! services' own tables, the audit log, the ingress's sessions and stored
//! answers — while their orders and payments stay, with amounts and
//! states; the event topics hold their personal fields only sealed with a
//! key that is now destroyed (kcat sees ciphertext, a Confluent client
//! still decodes every event); a rebuild by replay keeps them erased, with
//! no dead letter; and every wrong erase is a clear error.

use orderflow_harness::shop::{self, find_text};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{Capture, PASSWORD, System, tracing_subscriber_init};
use orderflow_contracts::{orders, users};

/// `topic` from its beginning to its end as `scripts/kcat` prints it with
/// `format`: nothing if the topic is empty or missing.
async fn kcat(system: &System, topic: &str, format: &str) -> Vec<u8> {
    let root = std::env::var("OF_ROOT").expect("OF_ROOT is set by scripts/test");
    let out = tokio::process::Command::new(format!("{root}/scripts/kcat"))
        .args(["-b", &system.kafka.brokers, "-C", "-t", topic, "-e", "-q", "-f", format])
        .output()
        .await
        .expect("run scripts/kcat");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || stderr.contains("Unknown topic"), "kcat on {topic}: {stderr}");
    out.stdout
}

fn contains(haystack: &[u8], text: &str) -> bool {
    haystack.windows(text.len()).any(|w| w == text.as_bytes())
}

/// Every record of `topics`, decoded by the Confluent Python client through
/// the registry: `{"topic", "key", "value"}` each.
async fn confluent_decode(system: &System, topics: &[String]) -> Vec<Value> {
    let script = r#"
import sys, json
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField
brokers, registry, topics = sys.argv[1], sys.argv[2], sys.argv[3:]
c = Consumer({"bootstrap.servers": brokers, "group.id": "py-erasure", "enable.auto.commit": False})
assign, remaining = [], {}
for t in topics:
    for p in c.list_topics(t, timeout=10).topics[t].partitions:
        lo, hi = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
        if hi > lo:
            assign.append(TopicPartition(t, p, lo))
            remaining[(t, p)] = hi
c.assign(assign)
des = AvroDeserializer(SchemaRegistryClient({"url": registry}))
while remaining:
    m = c.poll(10)
    if m is None:
        sys.exit("timed out with %r left" % remaining)
    if m.error():
        continue
    value = des(m.value(), SerializationContext(m.topic(), MessageField.VALUE))
    print(json.dumps({"topic": m.topic(), "key": m.key().decode(), "value": value}, default=str))
    if m.offset() + 1 >= remaining.get((m.topic(), m.partition()), 0):
        remaining.pop((m.topic(), m.partition()), None)
c.close()
"#;
    let python = std::env::var("OF_TEST_PYTHON").expect("OF_TEST_PYTHON is set by scripts/test");
    let out = tokio::process::Command::new(python)
        .args(["-W", "ignore", "-c", script, &system.kafka.brokers, &system.registry.url])
        .args(topics)
        .output()
        .await
        .expect("python");
    assert!(out.status.success(), "the Confluent client: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// What the user told the system about themselves, one way or another.
const PERSONAL: &[&str] = &["erase.me@example.com", "Zelda", "Quixote", "7 Erasure Lane", "ring the bell twice"];

async fn erase(system: &System, id: &str, token: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/users/{id}/erase");
    system.call_with(Method::POST, &path, Some(token), Some(body), &[("prefer", "wait=20")]).await
}

fn order() -> Value {
    let mut body = shop::order(&[(1, 1250)]);
    body["shipping_address"]["name"] = json!("Zelda Quixote");
    body["shipping_address"]["line1"] = json!("7 Erasure Lane");
    body["notes"] = json!("ring the bell twice");
    body
}

#[tokio::test]
async fn an_erased_user_leaves_nothing_personal_anywhere_and_their_orders_stay() {
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber_init(move || writer.clone());
    let mut system = System::start_all().await;
    system.start_audit_log().await;
    let admin = shop::admin(&system).await;
    let (token, id) = shop::customer(&system, "Erase.Me@example.com").await;
    let renamed = json!({"first_name": "Zelda", "last_name": "Quixote"});
    let (status, user) = system
        .call_with(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&token), Some(renamed), &[("prefer", "wait=20")])
        .await;
    assert_eq!(status, 200, "{user}");
    let mut orders = Vec::new();
    for _ in 0..2 {
        let (status, placed) = shop::place(&system, &token, order()).await;
        assert_eq!(status, 201, "{placed}");
        let id = placed["id"].as_str().expect("id").to_owned();
        shop::until_api(&system, &admin, &format!("/api/v1/orders/{id}"), "confirmed", |o| o["status"] == "CONFIRMED")
            .await;
        orders.push(id);
    }
    // Before: the system holds it (the scan can find what it looks for).
    let before = find_text(&system.readmodels_db, PERSONAL).await;
    assert!(before.iter().any(|hit| hit.contains("Quixote")), "the scan finds the name before: {before:#?}");

    // Wrong erasures first: each is refused, naming why, and loses nothing.
    let (other_token, other) = shop::customer(&system, "bystander@example.com").await;
    let (status, body) = erase(&system, &id, &other_token, json!({"password": PASSWORD})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "another user: {body}");
    let (status, body) = erase(&system, &id, &token, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("VALIDATION_FAILED")), "no password: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("password")), "{body}");
    let (status, body) = erase(&system, &id, &token, json!({"password": "not my password"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("WRONG_PASSWORD")), "{body}");
    let (status, body) = erase(&system, &id, &token, json!({"password": PASSWORD, "why": "x"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("INVALID_BODY")), "an unknown field: {body}");
    let unknown = uuid::Uuid::now_v7().to_string();
    let (status, body) = erase(&system, &unknown, &admin, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("USER_NOT_FOUND")), "{body}");
    let (status, me) = system.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
    assert_eq!((status, me["last_name"].as_str()), (200, Some("Quixote")), "nothing was lost: {me}");

    // The user erases themselves.
    let (status, erased) = erase(&system, &id, &token, json!({"password": PASSWORD})).await;
    assert_eq!(status, 200, "{erased}");
    assert!(erased["erased_at"].is_string(), "{erased}");
    assert_eq!(
        (erased["email"].as_str(), erased["first_name"].as_str(), erased["active"].as_bool()),
        (Some(""), Some(""), Some(false))
    );
    // Their token and their login are dead.
    let (status, _) = system.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
    assert_eq!(status, 401, "the erased user's token still works");
    assert!(system.login("erase.me@example.com", PASSWORD).await.is_none(), "the erased user can log in");
    // Twice: a clear conflict.
    let (status, body) = erase(&system, &id, &admin, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("USER_ERASED")), "{body}");

    // Their orders and payments stay, with amounts and states, and no address.
    for order in &orders {
        let (status, body) = system.call(Method::GET, &format!("/api/v1/orders/{order}"), Some(&admin), None).await;
        assert_eq!(
            (status, body["status"].as_str(), body["total"].as_i64()),
            (200, Some("CONFIRMED"), Some(1250)),
            "{body}"
        );
        assert!(body["shipping_address"].is_null() && body["notes"].is_null(), "{body}");
        let (status, payment) =
            system.call(Method::GET, &format!("/api/v1/payments/by-order/{order}"), Some(&admin), None).await;
        assert_eq!((status, payment["status"].as_str()), (200, Some("CAPTURED")), "{payment}");
    }
    let (_, list) = system.call(Method::GET, &format!("/api/v1/orders?user={id}"), Some(&admin), None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "still listed: {list}");
    // The audit log recorded the erasure.
    shop::until_api(
        &system,
        &admin,
        &format!("/api/v1/audit?entity={id}&type=UserErased"),
        "the erasure is audited",
        |page| page["items"].as_array().is_some_and(|items| items.iter().any(|r| r["message_type"] == "UserErased")),
    )
    .await;
    // The other user is untouched.
    let (status, body) = system.call(Method::GET, &format!("/api/v1/users/{other}"), Some(&admin), None).await;
    assert_eq!((status, body["email"].as_str()), (200, Some("bystander@example.com")), "{body}");

    // Nowhere, in any database of the system.
    let mut found = Vec::new();
    for (name, url) in system.databases() {
        found.extend(find_text(url, PERSONAL).await.into_iter().map(|hit| format!("{name}: {hit}")));
    }
    assert!(found.is_empty(), "personal data left after the erasure: {found:#?}");

    // Nowhere on the event topics either: their bytes (as kcat prints
    // them) hold the personal fields only sealed, and a Confluent client
    // decodes every event through the registry, ciphertext and all.
    let topics = [users::EVENTS.name, users::CREDENTIALS.name, orders::EVENTS.name].map(|t| system.topic(t));
    for topic in &topics {
        let bytes = kcat(&system, topic, "%s\n").await;
        for text in PERSONAL {
            assert!(!contains(&bytes, text), "{text} in clear on {topic}");
        }
    }
    let decoded = confluent_decode(&system, &topics).await;
    let registered = decoded
        .iter()
        .find(|r| r["key"] == id.as_str() && r["topic"] == topics[0].as_str() && r["value"]["email"].is_string())
        .unwrap_or_else(|| panic!("no UserRegistered of {id} among {} records", decoded.len()));
    for field in ["email", "first_name", "last_name"] {
        assert!(registered["value"][field].as_str().is_some_and(|v| v.starts_with("enc:v1:")), "{registered}");
    }
    let placed = decoded
        .iter()
        .filter(|r| r["value"]["customer_id"] == id.as_str() && r["value"]["shipping_address"].is_object())
        .collect::<Vec<_>>();
    assert_eq!(placed.len(), 2, "both OrderPlaced decode");
    assert!(
        placed
            .iter()
            .all(|r| r["value"]["shipping_address"]["line1"].as_str().is_some_and(|v| v.starts_with("enc:v1:")))
    );
    let all = serde_json::to_string(&decoded).expect("json");
    assert!(PERSONAL.iter().all(|text| !all.contains(text)), "personal data decoded after the erasure");
    assert!(!all.contains("bystander@example.com"), "the other user's email is sealed too");

    // Replayed from every topic, the read models are the same: still
    // erased, and nothing was dead-lettered on the way.
    shop::assert_rebuild_equals_live(&system).await;
    let after = find_text(&system.readmodels_db, PERSONAL).await;
    assert!(after.is_empty(), "personal data back after a rebuild: {after:#?}");
    let (_, bystander) = system.call(Method::GET, &format!("/api/v1/users/{other}"), Some(&admin), None).await;
    assert_eq!(bystander["email"].as_str(), Some("bystander@example.com"), "opened after the rebuild: {bystander}");
    for topic in &topics {
        let dlq = orderflow_contracts::topics::dlq(topic);
        assert_eq!(kcat(&system, &dlq, "x\n").await, b"", "dead letters on {dlq}");
    }

    // Without waiting for the outcome: 202, and the user's sessions end at once.
    let path = format!("/api/v1/users/{other}/erase");
    let (status, body) = system.call(Method::POST, &path, Some(&admin), Some(json!({}))).await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = system.call(Method::GET, "/api/v1/users/me", Some(&other_token), None).await;
    assert_eq!(status, 401, "the erased user's session outlived the erasure");
    system.stop().await;
    // No log line of any component, at any level, ever showed them.
    let logs = logs.0.lock().expect("lock").clone();
    assert!(logs.len() > 1000, "logs were captured ({} bytes)", logs.len());
    for text in PERSONAL {
        assert!(!contains(&logs, text), "{text} in the logs");
    }
}

/// Events written before personal fields were sealed carry them in clear,
/// and a log cannot be rewritten: an erasure still hides them from every
/// read model, and a rebuild by replay keeps them hidden (`UserErased`
/// follows them on the user's partition).
#[tokio::test]
async fn events_written_in_clear_before_sealing_stay_hidden_after_an_erasure() {
    let system = System::start().await;
    let admin = shop::admin(&system).await;
    let id = uuid::Uuid::now_v7();
    let (email, last_name) = ("before.sealing@example.com", "Oldtimer");
    // The user service's row, as an older version left it: no data key.
    let users_db = shop::pool(&system.users_db).await;
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, first_name, last_name, roles, active, version, created_at, updated_at)
         VALUES ($1, $2, 'x', 'Ada', $3, ARRAY['user'], true, 1, now(), now())",
    )
    .bind(id)
    .bind(email)
    .bind(last_name)
    .execute(&users_db)
    .await
    .expect("an older version's user");
    // Its event, in clear, as an older producer wrote it (a codec that
    // seals nothing).
    let registered = users::UserRegistered {
        user_id: id.to_string(),
        email: email.into(),
        first_name: "Ada".into(),
        last_name: last_name.into(),
        roles: vec!["user".into()],
        version: 1,
        registered_at: chrono::Utc::now().timestamp_millis(),
    };
    let payload = orderflow_contracts::Codec::new(&system.registry.url).encode(&registered).await.expect("encode");
    let producer = orderflow_bus::Producer::new(&system.kafka).expect("producer");
    let headers = orderflow_bus::Headers::new_root("UserRegistered", "system").to_pairs();
    let topic = system.topic(users::EVENTS.name);
    producer.send(&topic, &id.to_string(), &payload, &headers).await.expect("send");
    let path = format!("/api/v1/users/{id}");
    shop::until_api(&system, &admin, &path, "the old user is projected", |u| u["email"] == email).await;

    let (status, body) = erase(&system, &id.to_string(), &admin, json!({})).await;
    assert_eq!(status, 200, "{body}");
    // The topic keeps the clear text (it cannot be rewritten) ...
    assert!(contains(&kcat(&system, &topic, "%s\n").await, last_name), "the old event is on the topic");
    // ... and nothing of orderflow shows it, before or after a replay.
    let (_, user) = system.call(Method::GET, &path, Some(&admin), None).await;
    assert_eq!((user["email"].as_str(), user["last_name"].as_str()), (Some(""), Some("")), "{user}");
    assert!(find_text(&system.readmodels_db, &[email, last_name]).await.is_empty());
    shop::assert_rebuild_equals_live(&system).await;
    assert!(find_text(&system.readmodels_db, &[email, last_name]).await.is_empty(), "back after a rebuild");
    system.stop().await;
}
