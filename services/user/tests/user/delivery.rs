use std::time::Duration;

use orderflow_bus::Headers;
use orderflow_contracts::topics::dlq;
use orderflow_contracts::users::{RegisterUser, UpdateUserProfile};
use orderflow_harness::system::System;

use crate::{events, send, until_users_db};

fn register(id: &str, email: &str) -> RegisterUser {
    RegisterUser {
        user_id: id.into(),
        email: email.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        first_name: "Dup".into(),
        last_name: "Licate".into(),
    }
}

#[tokio::test]
async fn every_command_delivered_twice_has_one_effect() {
    let system = System::start().await;
    let id = "0190a0a0-0000-7000-8000-0000000000d1";
    let register_headers = Headers::new_root("RegisterUser", "anonymous");
    send(&system, &register(id, "twice@example.com"), &register_headers).await;
    send(&system, &register(id, "twice@example.com"), &register_headers).await;
    let update = UpdateUserProfile { user_id: id.into(), first_name: Some("Once".into()), last_name: None };
    let update_headers = Headers::new_root("UpdateUserProfile", id);
    send(&system, &update, &update_headers).await;
    send(&system, &update, &update_headers).await;
    // A last command on the same key: once it took effect, everything
    // before it (same partition) was handled.
    let marker = UpdateUserProfile { user_id: id.into(), first_name: None, last_name: Some("Marker".into()) };
    send(&system, &marker, &Headers::new_root("UpdateUserProfile", id)).await;
    until_users_db(&system, "the marker took effect", "SELECT count(*) FROM users WHERE last_name = 'Marker'", 1).await;

    let pool = crate::users_db(&system).await;
    let (version, first_name): (i64, String) =
        sqlx::query_as("SELECT version, first_name FROM users WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("user");
    assert_eq!((version, first_name.as_str()), (3, "Once"), "register + one update + marker");
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox").fetch_one(&pool).await.expect("inbox");
    assert_eq!(inbox, 3, "three distinct message ids");

    // Exactly one event per effect reaches the bus.
    let seen = orderflow_testkit::until("three events are on the bus", Duration::from_secs(30), || async {
        let seen = events(&system).await;
        if seen.len() >= 3 { Ok(seen) } else { Err(format!("{:?}", seen.iter().map(|(t, _)| t).collect::<Vec<_>>())) }
    })
    .await;
    let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["UserRegistered", "UserProfileUpdated", "UserProfileUpdated"]);
    let causes: Vec<String> = seen.iter().map(|(_, m)| m.headers().expect("headers").causation_id).collect();
    assert_eq!(causes[0], register_headers.message_id.to_string());
    assert_eq!(causes[1], update_headers.message_id.to_string());
    system.stop().await;
}

#[tokio::test]
async fn poison_commands_are_dead_lettered_with_their_headers_and_the_partition_moves_on() {
    let system = System::start().await;
    let id = "0190a0a0-0000-7000-8000-0000000000e1";
    let producer = orderflow_bus::Producer::new(&system.kafka).expect("producer");
    let headers = Headers::new_root("RegisterUser", "anonymous");
    let commands = system.topic(orderflow_contracts::users::COMMANDS.name);
    // Not Avro at all; then a message without the contract headers.
    producer.send(&commands, id, b"{\"not\": \"avro\"}", &headers.to_pairs()).await.expect("send");
    producer.send(&commands, id, b"\0\0\0\0\x01garbage", &[]).await.expect("send");
    // Then a good command for the same key (same partition).
    send(&system, &register(id, "after-poison@example.com"), &Headers::new_root("RegisterUser", "anonymous")).await;
    until_users_db(&system, "the good command after the poison was handled", "SELECT count(*) FROM users", 1).await;

    let dlq_topic = dlq(&commands);
    let header = |m: &orderflow_bus::InboundMessage, name: &str| {
        m.header_pairs.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let group = format!("{}user-service", system.kafka.topic_prefix);
    // Every consumer group dead-letters what *it* cannot handle: the user
    // service both messages, the projector (which reads only the headers of
    // commands) the one without headers.
    let letters = orderflow_testkit::until("three dead letters", Duration::from_secs(30), || async {
        let letters = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &dlq_topic).await;
        if letters.len() >= 3 { Ok(letters) } else { Err(format!("{} dead letters", letters.len())) }
    })
    .await;
    let (ours, theirs): (Vec<_>, Vec<_>) =
        letters.iter().partition(|m| header(m, "dlq_consumer_group").as_deref() == Some(group.as_str()));
    assert_eq!(ours.len(), 2, "both poison messages dead-lettered by the user service");
    assert_eq!(theirs.len(), 1, "the projector dead-letters the header-less one");
    assert!(header(theirs[0], "dlq_consumer_group").expect("group").contains("projection-readmodels"));
    let first = ours.iter().find(|m| header(m, "dlq_original_offset").as_deref() == Some("0")).expect("offset 0");
    assert_eq!(first.key.as_deref(), Some(id));
    assert_eq!(first.payload.as_deref(), Some(&b"{\"not\": \"avro\"}"[..]), "original value kept");
    assert_eq!(header(first, "message_id"), Some(headers.message_id.to_string()), "original headers kept");
    assert_eq!(header(first, "dlq_original_topic"), Some(commands.clone()));
    assert!(header(first, "dlq_error").expect("error").contains("Confluent"), "the error says why");
    let second = ours.iter().find(|m| header(m, "dlq_original_offset").as_deref() == Some("1")).expect("offset 1");
    assert!(header(second, "dlq_error").expect("error").contains("message_id"), "the missing header is named");
    system.stop().await;
}
