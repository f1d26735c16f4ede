//! A dead-lettered command settles as failed, and a dead letter never undoes
//! an outcome: a command that succeeded (an operator replayed it from its
//! DLQ, or a rebuild reads the events first) stays succeeded.

use std::time::Duration;

use orderflow_bus::{HandlerError, Headers, InboundMessage, Producer, dead_letter_headers};
use orderflow_harness::system::System;
use reqwest::Method;

/// Puts a dead letter of command `headers` (key `key`) on users.commands.dlq,
/// as a consumer that gave up on it would.
async fn dead_letter(system: &System, producer: &Producer, key: &str, headers: &Headers) {
    let commands = system.topic(orderflow_contracts::users::COMMANDS.name);
    let letter = dead_letter_headers(
        &headers.to_pairs(),
        &commands,
        0,
        0,
        "user-service",
        &HandlerError::Permanent("the handler failed".into()),
    );
    let topic = system.topic(orderflow_contracts::users::DEAD_COMMANDS.name);
    producer.send(&topic, key, b"\0\0\0\0\x01", &letter).await.expect("send the dead letter");
}

async fn status(system: &System, id: &str) -> serde_json::Value {
    system.call(Method::GET, &format!("/api/v1/commands/{id}"), None, None).await.1
}

#[tokio::test]
async fn a_dead_letter_settles_a_pending_command_failed_but_never_undoes_an_outcome() {
    let system = System::start().await;
    let (status_code, user) = system.register("settled@example.com", "correct horse battery").await;
    assert_eq!(status_code, 201, "{user}");
    let key = user["id"].as_str().expect("id").to_owned();
    // The command that registered the user, as its event names it.
    let events = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic("users.events")).await;
    let registered: &InboundMessage = events.iter().find(|m| m.key.as_deref() == Some(key.as_str())).expect("event");
    let command = registered.headers().expect("headers").causation_id;
    let producer = Producer::new(&system.kafka).expect("producer");
    let mut original = Headers::new_root("RegisterUser", "anonymous");
    original.message_id = command.parse().expect("uuid");
    dead_letter(&system, &producer, &key, &original).await;
    // A command nobody settled, after it on the same key (so the same
    // partition, read in order): once it reads failed, the first letter
    // has been applied too.
    let never = Headers::new_root("UpdateUserProfile", "anonymous");
    dead_letter(&system, &producer, &key, &never).await;
    let never_id = never.message_id.to_string();
    let body = orderflow_testkit::until("the dead letter settled the command", Duration::from_secs(30), || async {
        let body = status(&system, &never_id).await;
        if body["status"] == "failed" { Ok(body) } else { Err(body.to_string()) }
    })
    .await;
    assert_eq!(body["reason"], "COMMAND_FAILED", "{body}");
    let body = status(&system, &command).await;
    assert_eq!(body["status"], "succeeded", "a dead letter after the outcome changes nothing: {body}");
    system.stop().await;
}
