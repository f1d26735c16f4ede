//! A request's id and trace follow it onto the bus: the command and every
//! event it causes carry the request id as `correlation_id` and the
//! caller's trace id, and the consumers' log lines say both. Exported
//! over OTLP, an order is one trace: one tree of spans from the request
//! through every process it reaches.

use std::time::Duration;

use orderflow_bus::Headers;
use orderflow_harness::otlp::{Collector, Span};
use orderflow_harness::system::{Process, binary, free_addr, spawn_process};
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

async fn spawned<T: serde::Serialize>(name: &str, settings: &T, ops: &str, collector: &Collector) -> Process {
    let env = [("ORDERFLOW_TELEMETRY__OTLP_ENDPOINT", collector.endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    spawn_process(&binary(name), settings, ops, &env).await
}

/// The order, inventory and payment services, the projector, the audit
/// log and the ingress, each a binary of its own exporting to `collector`;
/// `system.api` is then that ingress.
async fn exporting(system: &mut System, collector: &Collector) -> Vec<Process> {
    {
        let mut processes = Vec::new();
        macro_rules! service {
            ($name:literal, $settings:expr) => {{
                let mut settings = $settings;
                settings.http.addr = free_addr();
                let ops = settings.http.addr.clone();
                processes.push(spawned($name, &settings, &ops, collector).await);
            }};
        }
        service!("projector", system.projector_settings());
        service!("audit-log", system.audit_log_settings());
        service!("inventory-service", system.inventory_settings());
        service!("order-service", system.order_settings());
        service!("payment-service", system.payment_settings());
        let mut ingress = system.ingress_settings();
        (ingress.http.addr, ingress.ops.addr) = (free_addr(), free_addr());
        system.api = format!("http://{}", ingress.http.addr);
        let ops = ingress.ops.addr.clone();
        processes.push(spawned("ingress", &ingress, &ops, collector).await);
        processes
    }
}

/// Places an order of `quantity` units in the trace of `traceparent` and
/// waits until it is CONFIRMED.
async fn confirmed_order(system: &System, token: &str, traceparent: &str, quantity: i64) {
    let response = system
        .http
        .post(format!("{}/api/v1/orders", system.api))
        .bearer_auth(token)
        .header("traceparent", traceparent)
        .header("prefer", "wait=30")
        .json(&orderflow_harness::shop::order(&[(quantity, 1250)]))
        .send()
        .await
        .expect("place");
    let status = response.status().as_u16();
    let order: serde_json::Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().expect("id").to_owned();
    orderflow_harness::shop::until_api(system, token, &format!("/api/v1/orders/{id}"), "CONFIRMED", |o| {
        o["status"] == "CONFIRMED"
    })
    .await;
}

#[tokio::test]
async fn an_order_is_one_trace_across_every_process_it_reaches() {
    let collector = Collector::start().await;
    let mut system = System::prepared().await;
    // In this test process, which exports nothing: registration is not
    // part of the order's trace.
    system.start_user_service().await;
    let processes = exporting(&mut system, &collector).await;
    system.stock(&[("sku-1250".into(), 1250)], "EUR").await;
    let (_, token) = crate::user(&system, "traced@example.com").await;

    // The caller's span: the ingress's server span is its child.
    let caller = orderflow_telemetry::trace::new_traceparent();
    let trace_id = caller.split('-').nth(1).expect("trace id").to_owned();
    let caller_span = caller.split('-').nth(2).expect("span id").to_owned();
    confirmed_order(&system, &token, &caller, 2).await;

    let confirmed_by = |spans: &[Span], service: &str| {
        spans.iter().any(|s| {
            s.service == service
                && s.kind == Span::CONSUMER
                && s.attributes.get("orderflow.message.type").is_some_and(|t| t == "OrderConfirmed")
        })
    };
    // Spans whose parent has not arrived (yet): each process exports on
    // its own schedule.
    let roots = |spans: &[Span]| -> Vec<Span> {
        let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        spans.iter().filter(|s| !ids.contains(s.parent_span_id.as_str())).cloned().collect()
    };
    let spans = collector
        .trace(&trace_id, Duration::from_secs(30), |spans| {
            confirmed_by(spans, "projector") && confirmed_by(spans, "audit-log") && roots(spans).len() == 1
        })
        .await;

    // From every process the order passed through.
    let services: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    for service in ["ingress", "order-service", "inventory-service", "payment-service", "projector", "audit-log"] {
        assert!(services.contains(service), "no span from {service}: {services:?}");
    }
    // One tree: one root, the request's server span under the caller's
    // span; every other span's parent is a span of the trace.
    let roots = roots(&spans);
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    let root = &roots[0];
    assert_eq!(root.parent_span_id, caller_span, "the request's span continues the caller's");
    assert_eq!(
        (root.service.as_str(), root.name.as_str(), root.kind),
        ("ingress", "POST /api/v1/orders", Span::SERVER)
    );
    assert_eq!(root.attributes.get("http.route").map(String::as_str), Some("/api/v1/orders"));
    assert_eq!(root.attributes.get("http.response.status_code").map(String::as_str), Some("201"));
    let child_of = |parent: &Span, service: &str, name: &str| {
        let under = |s: &&Span| s.parent_span_id == parent.span_id;
        spans.iter().filter(under).find(|s| s.service == service && s.name == name).unwrap_or_else(|| {
            let children: Vec<_> = spans.iter().filter(under).map(|s| (&s.service, &s.name)).collect();
            panic!("no `{name}` of {service} under `{}` ({}); its children: {children:?}", parent.name, parent.service)
        })
    };
    // The command's path, after the messaging conventions.
    let commands = system.topic(orderflow_contracts::orders::COMMANDS.name);
    let events = system.topic(orderflow_contracts::orders::EVENTS.name);
    let send = child_of(root, "ingress", &format!("send {commands}"));
    assert_eq!(send.kind, Span::PRODUCER);
    assert_eq!(send.attributes.get("messaging.system").map(String::as_str), Some("kafka"));
    child_of(root, "ingress", "wait for command");
    let handled = child_of(send, "order-service", &format!("process {commands}"));
    assert_eq!(handled.kind, Span::CONSUMER);
    assert_eq!(handled.attributes.get("orderflow.message.type").map(String::as_str), Some("PlaceOrder"));
    let placed = child_of(handled, "order-service", &format!("create {events}"));
    assert_eq!(placed.attributes.get("orderflow.message.type").map(String::as_str), Some("OrderPlaced"));
    // Published by the order service's relay.
    child_of(placed, "order-service", &format!("send {events}"));
    // The payment provider's calls, made outside any transaction, are
    // client spans in the same tree.
    for call in ["authorize", "capture"] {
        assert!(
            spans.iter().any(|s| s.service == "payment-service" && s.name == call && s.kind == Span::CLIENT),
            "no `{call}` call of the payment service in the trace"
        );
    }
    for reader in ["inventory-service", "projector", "audit-log"] {
        assert!(
            spans.iter().any(|s| s.parent_span_id == placed.span_id && s.service == reader && s.kind == Span::CONSUMER),
            "{reader} processed OrderPlaced under the span that created it"
        );
    }

    // A caller that did not sample its trace: nothing of it is exported,
    // in any process (each follows the decision its input carries).
    let sampled = orderflow_telemetry::trace::new_traceparent();
    let unsampled = format!("{}-00", sampled.strip_suffix("-01").expect("sampled"));
    let quiet = unsampled.split('-').nth(1).expect("trace id").to_owned();
    confirmed_order(&system, &token, &unsampled, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // ten export intervals
    let leaked: Vec<Span> = collector.spans().into_iter().filter(|s| s.trace_id == quiet).collect();
    assert!(leaked.is_empty(), "an unsampled trace was exported: {leaked:#?}");
    drop(processes);
    system.stop().await;
}
