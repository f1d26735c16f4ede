//! A request's id and trace follow it onto the bus: the command and every
//! event it causes carry the request id as `correlation_id` and the
//! caller's trace id, and the consumers' log lines say both.

use std::time::Duration;

use orderflow_bus::Headers;
use serde_json::json;

use crate::{Capture, PASSWORD, System};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn headers_of(system: &System, topic: &str) -> Vec<Headers> {
    orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic(topic))
        .await
        .iter()
        .filter_map(|m| m.headers().ok())
        .collect()
}

#[tokio::test]
async fn the_request_id_and_trace_travel_from_the_request_through_command_events_and_logs() {
    let logs = Capture::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,sqlx::query=debug"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the first subscriber of this test process");

    let system = System::start().await;
    let request_id = "req-trace-0001";
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let body = json!({"email": "trace@example.com", "password": PASSWORD, "first_name": "T", "last_name": "R"});
    let response = system
        .http
        .post(format!("{}/api/v1/users", system.api))
        .header("x-request-id", request_id)
        .header("traceparent", &traceparent)
        .header("prefer", "wait=20")
        .json(&body)
        .send()
        .await
        .expect("register");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["x-request-id"], request_id, "the request id comes back");

    let command = headers_of(&system, orderflow_contracts::users::COMMANDS.name).await;
    let command: Vec<&Headers> = command.iter().filter(|h| h.correlation_id == request_id).collect();
    assert_eq!(command.len(), 1, "one command correlated by the request id: {command:?}");
    let command = command[0];
    assert_eq!(command.message_type, "RegisterUser");
    assert_eq!(command.trace_id(), TRACE_ID, "the command is in the caller's trace");
    assert_ne!(command.traceparent, traceparent, "with a span of the ingress's own");

    let mut events = Vec::new();
    orderflow_testkit::eventually("the event is on users.events", Duration::from_secs(20), || {
        let system = &system;
        async move {
            headers_of(system, orderflow_contracts::users::EVENTS.name)
                .await
                .iter()
                .any(|h| h.correlation_id == request_id)
        }
    })
    .await;
    events.extend(headers_of(&system, orderflow_contracts::users::EVENTS.name).await);
    let caused: Vec<&Headers> = events.iter().filter(|h| h.causation_id == command.message_id.to_string()).collect();
    assert!(!caused.is_empty(), "UserRegistered caused by the command");
    for event in &caused {
        assert_eq!(event.correlation_id, request_id, "{event:?}");
        assert_eq!(event.trace_id(), TRACE_ID, "one trace: {event:?}");
    }

    // Without an id of the client's, one is minted and still answered.
    let response = system.http.get(format!("{}/api/v1/users/me", system.api)).send().await.expect("me");
    assert_eq!(response.status().as_u16(), 401);
    let minted = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(uuid::Uuid::parse_str(&minted).is_ok(), "{minted}");
    // An id that is too long or has odd characters is refused, in the one error shape.
    for bad in ["x".repeat(129), "a b".into(), "a\"b".into()] {
        let response = system
            .http
            .get(format!("{}/api/v1/users/me", system.api))
            .header("x-request-id", &bad)
            .send()
            .await
            .expect("me");
        assert_eq!(response.status().as_u16(), 400, "{bad:?}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "INVALID_REQUEST_ID");
    }
    system.stop().await;

    let logs = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    let ingress = logs.lines().find(|l| l.contains("command accepted")).expect("the ingress logged the command");
    assert!(ingress.contains(&format!("request_id={request_id}")), "the request span: {ingress}");
    assert!(ingress.contains(&format!("trace_id={TRACE_ID}")), "{ingress}");
    let consumer = logs
        .lines()
        .filter(|l| l.contains(&format!("correlation_id={request_id}")) && !l.contains("request{"))
        .collect::<Vec<_>>();
    assert!(
        consumer.iter().any(|l| l.contains(&format!("trace_id={TRACE_ID}"))),
        "a consumer's or projection's span says the trace: {consumer:#?}"
    );
}
