//! `/graphql` against the whole system: nested fields batched (statements
//! bounded by fields, not rows), access at every depth, the limits, the
//! mutations through the REST write path, and live order status pushed to
//! a real GraphQL client (Python's `gql`) over WebSocket.

use std::time::Duration;

use orderflow_harness::shop;
use reqwest::Method;
use serde_json::{Value, json};

use crate::System;

/// `POST /graphql`: (HTTP status, body).
async fn graphql(system: &System, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
    let mut request = system.http.post(format!("{}/graphql", system.api)).json(&json!({
        "query": query, "variables": variables,
    }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST /graphql");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

/// The `extensions.code` of each error.
fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn messages(body: &Value) -> String {
    body["errors"].to_string()
}

const EVERYTHING: &str = r#"
query Orders($first: Int) {
  orders(first: $first) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id status total currency
      items { productId name quantity unitPrice reservation { state } }
      shippingAddress { city }
      customer { id email orders(first: 3) { id status } }
      payment { id status captured order { id status } }
      auditTrail { messageType depth }
    } }
  }
}"#;

#[tokio::test]
async fn nested_fields_cost_one_statement_each_however_many_rows() {
    let mut system = System::start_all().await;
    system.start_audit_log().await;
    let admin = shop::admin(&system).await;
    let (token, _) = shop::customer(&system, "many@example.com").await;
    let (status, body) = shop::place(&system, &token, shop::order(&[(1, 1250)])).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id");
    shop::until_api(&system, &admin, &format!("/api/v1/orders/{id}"), "captured", |o| {
        o["payment"]["status"] == "CAPTURED"
    })
    .await;

    let (status, one) = graphql(&system, Some(&admin), EVERYTHING, json!({"first": 100})).await;
    assert_eq!(status, 200, "{one}");
    assert!(one["errors"].is_null(), "{one}");
    let edges = one["data"]["orders"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 1);
    let node = &edges[0]["node"];
    assert_eq!(node["status"], "CONFIRMED", "{node}");
    assert_eq!(node["customer"]["email"], "many@example.com");
    assert_eq!(node["payment"]["status"], "CAPTURED");
    assert_eq!(node["payment"]["order"]["id"], node["id"]);
    assert_eq!(node["items"][0]["reservation"]["state"], "SOLD");
    assert_eq!(node["customer"]["orders"][0]["id"], node["id"]);
    // orders, customers, their orders, payments, the payments' orders,
    // the audit trails: one statement each.
    assert_eq!(one["extensions"]["sqlStatements"], 6, "{one}");

    // A hundred orders: the same statements.
    let body = shop::order(&[(1, 1250)]);
    for _ in 0..99 {
        let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(body.clone())).await;
        assert_eq!(status, 202, "{answer}");
    }
    shop::saga_settled(&system, 100).await;
    // The audit log records each saga a little after the read models: wait
    // until it has every order's, so every trail is there to be loaded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let hundred = loop {
        let (_, answer) = graphql(&system, Some(&admin), EVERYTHING, json!({"first": 100})).await;
        let trails = answer["data"]["orders"]["edges"].as_array().cloned().unwrap_or_default();
        let recorded = trails.iter().all(|e| e["node"]["auditTrail"].as_array().is_some_and(|t| !t.is_empty()));
        if recorded || tokio::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(hundred["errors"].is_null(), "{hundred}");
    let edges = hundred["data"]["orders"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 100);
    assert!(edges.iter().all(|e| e["node"]["customer"]["email"] == "many@example.com"));
    assert!(edges.iter().all(|e| e["node"]["payment"]["order"]["id"] == e["node"]["id"]));
    assert!(edges.iter().all(|e| !e["node"]["auditTrail"].as_array().expect("trail").is_empty()));
    assert_eq!(hundred["extensions"]["sqlStatements"], 6, "bounded by fields, not rows: {}", hundred["extensions"]);

    // Paging on: a cursor continues strictly after the last row seen.
    let (_, first) = graphql(
        &system,
        Some(&admin),
        "{ orders(first: 60) { pageInfo { hasNextPage endCursor } edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(first["data"]["orders"]["pageInfo"]["hasNextPage"], true);
    let cursor = first["data"]["orders"]["pageInfo"]["endCursor"].as_str().expect("cursor").to_owned();
    let (_, rest) = graphql(
        &system,
        Some(&admin),
        "query($after: String) { orders(first: 60, after: $after) { pageInfo { hasNextPage } edges { node { id } } } }",
        json!({"after": cursor}),
    )
    .await;
    assert_eq!(rest["data"]["orders"]["pageInfo"]["hasNextPage"], false);
    let mut ids: Vec<String> = [&first, &rest]
        .iter()
        .flat_map(|page| page["data"]["orders"]["edges"].as_array().expect("edges").clone())
        .map(|e| e["node"]["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "every order once across the pages");
}

#[tokio::test]
async fn a_user_gets_nothing_of_another_users_order_at_any_depth() {
    let system = System::start_all().await;
    let (alice, alice_id) = shop::customer(&system, "alice.gql@example.com").await;
    let (bob, bob_id) = shop::customer(&system, "bob.gql@example.com").await;
    let (_, mine) = shop::place(&system, &alice, shop::order(&[(1, 700)])).await;
    let (_, theirs) = shop::place(&system, &bob, shop::order(&[(2, 700)])).await;
    let (mine, theirs) = (mine["id"].as_str().expect("id"), theirs["id"].as_str().expect("id"));
    let (_, payment) = system.call(Method::GET, &format!("/api/v1/payments/by-order/{theirs}"), Some(&bob), None).await;
    let their_payment = payment["id"].as_str().expect("payment id");

    // Directly: refused by name, and nothing of it in the data.
    let (_, body) = graphql(
        &system,
        Some(&alice),
        "query($id: UUID!) { order(id: $id) { id total customer { email } } }",
        json!({"id": theirs}),
    )
    .await;
    assert_eq!(body["data"]["order"], Value::Null, "{body}");
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");
    assert!(!body.to_string().contains("bob.gql"), "{body}");
    let (_, body) = graphql(
        &system,
        Some(&alice),
        "query($id: UUID!) { payment(id: $id) { id order { id } } }",
        json!({"id": their_payment}),
    )
    .await;
    assert_eq!(body["data"]["payment"], Value::Null, "{body}");
    assert_eq!(codes(&body), ["FORBIDDEN"]);
    let (_, body) =
        graphql(&system, Some(&alice), "query($id: UUID!) { user(id: $id) { email } }", json!({"id": bob_id})).await;
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");
    let (_, body) = graphql(
        &system,
        Some(&alice),
        "query($id: UUID!) { orders(filter: {customerId: $id}) { edges { node { id } } } }",
        json!({"id": bob_id}),
    )
    .await;
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");

    // Lists and every nesting: only her own.
    let nested = r#"{
      orders { edges { node { id customer { id orders { id payment { order { id customer { id email } } } } } } } }
      payments { edges { node { id order { id customer { id } } } } }
      me { id orders { id customer { id } } }
    }"#;
    let (_, body) = graphql(&system, Some(&alice), nested, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let text = body.to_string();
    assert!(text.contains(mine) && text.contains(&alice_id), "{body}");
    for other in [theirs, bob_id.as_str(), their_payment, "bob.gql"] {
        assert!(!text.contains(other), "{other} leaked: {body}");
    }

    // Admin-only fields and lists; a token is needed for what is not public.
    let (_, body) = graphql(
        &system,
        Some(&alice),
        "query($id: UUID!) { order(id: $id) { id auditTrail { messageType } } }",
        json!({"id": mine}),
    )
    .await;
    assert_eq!(body["data"]["order"]["id"], mine, "the rest of the order still comes: {body}");
    assert_eq!(body["data"]["order"]["auditTrail"], Value::Null);
    assert_eq!(codes(&body), ["INSUFFICIENT_ROLE"], "{body}");
    let (_, body) = graphql(&system, Some(&alice), "{ users { edges { node { email } } } }", json!({})).await;
    assert_eq!(codes(&body), ["INSUFFICIENT_ROLE"], "{body}");
    let (_, body) = graphql(&system, None, "{ orders { edges { node { id } } } }", json!({})).await;
    assert_eq!(codes(&body), ["UNAUTHORIZED"], "{body}");
    let (status, body) = graphql(&system, Some("not-a-token"), "{ me { id } }", json!({})).await;
    assert_eq!(status, 401, "a bad token is refused like REST: {body}");
    // What anyone may read, anyone may.
    let (_, body) = graphql(&system, None, r#"{ product(sku: "sku-700") { sku price available } }"#, json!({})).await;
    assert_eq!(body["data"]["product"]["price"], 700, "{body}");
}

#[tokio::test]
async fn too_deep_too_costly_too_large_and_introspection_are_refused_clearly() {
    let system = System::start().await;
    let (token, _) = shop::customer(&system, "limits.gql@example.com").await;
    let deep = "{ me { orders(first: 1) { customer { orders(first: 1) { customer { orders(first: 1) { customer { orders(first: 1) { customer { orders(first: 1) { customer { id } } } } } } } } } } } }";
    let (_, body) = graphql(&system, Some(&token), deep, json!({})).await;
    assert!(messages(&body).contains("nested too deep"), "{body}");
    assert_eq!(body["data"], Value::Null);

    let costly =
        "{ orders(first: 100) { edges { node { customer { orders(first: 100) { id customer { id email } } } } } } }";
    let (_, body) = graphql(&system, Some(&token), costly, json!({})).await;
    assert!(messages(&body).contains("too complex"), "{body}");

    let (_, body) =
        graphql(&system, Some(&token), "{ orders(first: 1000) { edges { node { id } } } }", json!({})).await;
    assert_eq!(codes(&body), ["INVALID_QUERY"], "{body}");
    assert!(messages(&body).contains("first: must be between 1 and 100"), "{body}");
    let (_, body) =
        graphql(&system, Some(&token), r#"{ orders(after: "nonsense") { edges { node { id } } } }"#, json!({})).await;
    assert!(messages(&body).contains("after: not a cursor this API gave out"), "{body}");
    let (_, body) = graphql(&system, Some(&token), "{ nosuchfield }", json!({})).await;
    assert!(messages(&body).contains("Unknown field \\\"nosuchfield\\\""), "{body}");

    // Introspection: on in development (the test system), off once turned off
    // (as it is outside development by default).
    let (_, body) = graphql(&system, None, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query", "{body}");
    let mut settings = system.ingress_settings();
    settings.graphql.introspection = Some(false);
    let (url, stop, task) = crate::replica(settings).await;
    let response = system
        .http
        .post(format!("{url}/graphql"))
        .json(&json!({"query": "{ __schema { queryType { name } } }"}))
        .send()
        .await
        .expect("POST");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"]["__schema"], Value::Null, "introspection is off: {body}");
    stop.cancel();
    task.await.expect("replica");
}

#[tokio::test]
async fn mutations_take_the_rest_write_path_with_its_checks_idempotency_and_waits() {
    let mut system = System::start_all().await;
    let hash = orderflow_auth::hash_password(crate::roles::SECRET).expect("hash");
    system
        .restart_ingress_with(|s| {
            s.service_clients =
                vec![orderflow_ingress::settings::ServiceClient { id: "fulfilment".into(), secret_hash: hash }];
        })
        .await;
    let admin = shop::admin(&system).await;
    let (token, _) = shop::customer(&system, "mutate.gql@example.com").await;
    shop::stocked(&system, &shop::order(&[(1, 990)])).await;
    let place = r#"mutation($input: PlaceOrderInput!, $wait: Int, $key: String) {
      placeOrder(input: $input, wait: $wait, idempotencyKey: $key) {
        commandId state statusUrl order { id status total payment { id status } }
      }
    }"#;
    let input = json!({
        "items": [{"productId": "sku-990", "quantity": 2, "unitPrice": 990}],
        "currency": "EUR",
        "shippingAddress": {"name": "Ada", "line1": "1 Way", "city": "London", "postalCode": "N1", "country": "GB"},
    });
    let (_, body) = graphql(&system, Some(&token), place, json!({"input": input, "wait": 20, "key": "gql-1"})).await;
    assert!(body["errors"].is_null(), "{body}");
    let placed = &body["data"]["placeOrder"];
    assert_eq!(placed["state"], "SUCCEEDED", "{body}");
    assert_eq!(placed["order"]["status"], "CONFIRMED");
    assert_eq!(placed["order"]["total"], 1980, "the total is computed, never taken");
    let order_id = placed["order"]["id"].as_str().expect("id").to_owned();
    let payment_id = placed["order"]["payment"]["id"].as_str().expect("payment").to_owned();
    assert!(placed["commandId"].is_string(), "{body}");

    // The same key again: the first answer, nothing sent twice.
    let (_, again) = graphql(&system, Some(&token), place, json!({"input": input, "wait": 20, "key": "gql-1"})).await;
    assert_eq!(again["data"]["placeOrder"]["order"]["id"], order_id.as_str(), "{again}");
    let (_, mine) = system.call(Method::GET, "/api/v1/orders/mine", Some(&token), None).await;
    assert_eq!(mine["total"], 1, "{mine}");

    // REST's validation and the catalog's checks, with their codes.
    let bad = json!({"items": [{"productId": "sku-990", "quantity": 0, "unitPrice": 990}], "currency": "EUR",
        "shippingAddress": input["shippingAddress"]});
    let (_, body) = graphql(&system, Some(&token), place, json!({"input": bad})).await;
    assert_eq!(codes(&body), ["VALIDATION_FAILED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["status"], 422);
    let forged = json!({"items": [{"productId": "sku-990", "quantity": 1, "unitPrice": 1}], "currency": "EUR",
        "shippingAddress": input["shippingAddress"]});
    let (_, body) = graphql(&system, Some(&token), place, json!({"input": forged})).await;
    assert_eq!(codes(&body), ["PRICE_CHANGED"], "{body}");
    // Without wait: accepted, with the command's id to follow.
    let (_, body) = graphql(&system, Some(&token), place, json!({"input": input})).await;
    assert_eq!(body["data"]["placeOrder"]["state"], "ACCEPTED", "{body}");
    let command = body["data"]["placeOrder"]["commandId"].as_str().expect("command id").to_owned();
    let (_, body) = graphql(
        &system,
        Some(&token),
        "query($id: UUID!) { commandStatus(id: $id) { status } }",
        json!({"id": command}),
    )
    .await;
    assert!(body["data"]["commandStatus"]["status"].is_string(), "{body}");

    // Roles as REST: a customer cannot ship; an admin ships, delivers, refunds.
    let ship = "mutation($id: UUID!) { ship(id: $id, wait: 20) { state order { status } } }";
    let (_, body) = graphql(&system, Some(&token), ship, json!({"id": order_id})).await;
    assert_eq!(codes(&body), ["INSUFFICIENT_ROLE"], "{body}");
    let (_, body) = graphql(&system, Some(&admin), ship, json!({"id": order_id})).await;
    assert_eq!(body["data"]["ship"]["order"]["status"], "SHIPPED", "{body}");
    let cancel = "mutation($id: UUID!) { cancelOrder(id: $id, wait: 20) { state } }";
    let (_, body) = graphql(&system, Some(&token), cancel, json!({"id": order_id})).await;
    assert_eq!(codes(&body), ["ILLEGAL_TRANSITION"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["status"], 409);
    let refund =
        "mutation($id: UUID!) { refund(paymentId: $id, amount: 500, wait: 20) { state payment { status refunded } } }";
    let (_, body) = graphql(&system, Some(&admin), refund, json!({"id": payment_id})).await;
    assert_eq!(body["data"]["refund"]["payment"]["status"], "PARTIALLY_REFUNDED", "{body}");
    assert_eq!(body["data"]["refund"]["payment"]["refunded"], 500);

    // A service token: staff for orders and payments (it delivers and reads
    // any order), nothing of users, no list of its own.
    let (_, issued) = crate::roles::service_token(&system, "fulfilment", crate::roles::SECRET).await;
    let service = issued["access_token"].as_str().expect("service token");
    let deliver = "mutation($id: UUID!) { deliver(id: $id, wait: 20) { order { status payment { refunded } } } }";
    let (_, body) = graphql(&system, Some(service), deliver, json!({"id": order_id})).await;
    assert_eq!(body["data"]["deliver"]["order"]["status"], "DELIVERED", "{body}");
    let (_, body) =
        graphql(&system, Some(service), "{ orders { nodes { id } } payments { nodes { id } } }", json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["orders"]["nodes"].as_array().map(Vec::len), Some(2), "{body}");
    let (_, body) = graphql(&system, Some(service), "{ orders { nodes { id customer { email } } } }", json!({})).await;
    assert!(!body.to_string().contains("mutate.gql@example.com"), "a service reads orders, not people: {body}");
    for query in ["{ users { nodes { id } } }", "{ me { id } }"] {
        let (_, body) = graphql(&system, Some(service), query, json!({})).await;
        assert_eq!(codes(&body), ["INSUFFICIENT_ROLE"], "{query}: {body}");
    }
}

/// The Python `gql` client: subscribes to `myOrders` over WebSocket
/// (graphql-transport-ws), places an order with a mutation over HTTP, and
/// prints each state the subscription pushes until CONFIRMED.
const GQL_CLIENT: &str = r#"
import asyncio, json, sys
from gql import Client, gql
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport

api, token, sku, price = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ws = api.replace("http://", "ws://") + "/graphql"

async def main():
    socket = WebsocketsTransport(url=ws, init_payload={"Authorization": "Bearer " + token},
                                 subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    async with Client(transport=socket) as live:
        updates = live.subscribe(gql("subscription { myOrders { id status payment { status } } }"))
        first = asyncio.ensure_future(updates.__anext__())
        await asyncio.sleep(0.5)
        http = Client(transport=RequestsHTTPTransport(url=api + "/graphql", headers={"Authorization": "Bearer " + token}))
        placed = await asyncio.to_thread(http.execute, gql("""
            mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { commandId state } }"""),
            variable_values={"input": {"items": [{"productId": sku, "quantity": 1, "unitPrice": price}], "currency": "EUR",
                "shippingAddress": {"name": "Ada", "line1": "1 Way", "city": "London", "postalCode": "N1", "country": "GB"}}})
        print(json.dumps({"placed": placed["placeOrder"]}), flush=True)
        update = await asyncio.wait_for(first, 60)
        while True:
            print(json.dumps({"update": update["myOrders"]}), flush=True)
            if update["myOrders"]["status"] in ("CONFIRMED", "CANCELLED"):
                return
            update = await asyncio.wait_for(updates.__anext__(), 60)

asyncio.run(main())
"#;

#[tokio::test]
async fn a_graphql_client_places_an_order_and_is_pushed_confirmed_without_polling() {
    let system = System::start_all().await;
    let (token, _) = shop::customer(&system, "live.gql@example.com").await;
    shop::stocked(&system, &shop::order(&[(1, 4321)])).await;
    let python = std::env::var("OF_TEST_GQL_PYTHON").expect("OF_TEST_GQL_PYTHON is set by scripts/test");
    let run = tokio::process::Command::new(python)
        .args(["-W", "ignore", "-c", GQL_CLIENT, &system.api, &token, "sku-4321", "4321"])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the client finished").expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "gql client: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines[0]["placed"]["state"], "ACCEPTED", "{stdout}");
    let updates: Vec<&Value> = lines.iter().filter_map(|l| l.get("update")).collect();
    let last = updates.last().expect("an update");
    assert_eq!(last["status"], "CONFIRMED", "{stdout}");
    let ids: std::collections::HashSet<&str> = updates.iter().filter_map(|u| u["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "one order: {stdout}");
}

/// Subscribes to `myOrders` with the first token, logs that token out (its
/// session ends), then places an order with the second: the change the
/// order makes must end the first token's subscription with the reason,
/// and push nothing of the order.
const REVOKED_CLIENT: &str = r#"
import asyncio, json, sys
import requests
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

api, old, fresh, body = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ws = api.replace("http://", "ws://") + "/graphql"

async def main():
    socket = WebsocketsTransport(url=ws, init_payload={"Authorization": "Bearer " + old},
                                 subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    async with Client(transport=socket) as live:
        updates = live.subscribe(gql("subscription { myOrders { id status } }"))
        first = asyncio.ensure_future(updates.__anext__())
        await asyncio.sleep(0.5)
        out = await asyncio.to_thread(requests.post, api + "/api/v1/auth/logout",
                                      headers={"Authorization": "Bearer " + old})
        print(json.dumps({"logout": out.status_code}), flush=True)
        placed = await asyncio.to_thread(requests.post, api + "/api/v1/orders", json=body,
                                         headers={"Authorization": "Bearer " + fresh, "Prefer": "wait=10"})
        print(json.dumps({"placed": placed.json().get("status")}), flush=True)
        try:
            update = await asyncio.wait_for(first, 30)
            print(json.dumps({"update": update}), flush=True)
        except Exception as error:
            print(json.dumps({"error": str(error)}), flush=True)

asyncio.run(main())
"#;

#[tokio::test]
async fn a_subscription_ends_when_its_token_is_revoked_and_pushes_nothing_after() {
    let system = System::start_all().await;
    let email = "revoked.gql@example.com";
    let (old, _) = shop::customer(&system, email).await;
    let fresh = system.login(email, shop::PASSWORD).await.expect("a second session");
    let body = shop::order(&[(1, 4322)]);
    shop::stocked(&system, &body).await;
    let python = std::env::var("OF_TEST_GQL_PYTHON").expect("OF_TEST_GQL_PYTHON is set by scripts/test");
    let run = tokio::process::Command::new(python)
        .args(["-W", "ignore", "-c", REVOKED_CLIENT, &system.api, &old, &fresh, &body.to_string()])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the client finished").expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "gql client: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines[0]["logout"], 204, "{stdout}");
    assert_eq!(lines[1]["placed"], "CONFIRMED", "{stdout}");
    assert!(lines.iter().all(|l| l.get("update").is_none()), "a revoked token was pushed an order: {stdout}");
    let error = lines[2]["error"].as_str().unwrap_or_default();
    assert!(error.contains("revoked") && error.contains("session has ended"), "the reason: {stdout}");
}
