//! Shop helpers for tests of the order saga: customers, orders, and the
//! invariants every saga test checks against both services' own tables.

use std::time::Duration;

use crate::system::{ADMIN_EMAIL, System};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

pub const PASSWORD: &str = "correct horse battery";

/// A registered, logged-in user: (token, user id).
pub async fn customer(system: &System, email: &str) -> (String, String) {
    let (status, body) = system.register(email, PASSWORD).await;
    assert_eq!(status, 201, "register {email}: {body}");
    let token = system.login(email, PASSWORD).await.expect("login");
    (token, body["id"].as_str().expect("id").to_owned())
}

pub async fn admin(system: &System) -> String {
    customer(system, ADMIN_EMAIL).await.0
}

/// An order body of `lines` (quantity, unit price) in EUR, each line's
/// product the one that costs its price (`sku-<price>`; [`stocked`] puts
/// them in the catalog).
pub fn order(lines: &[(i64, i64)]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(quantity, unit_price)| {
            json!({"product_id": format!("sku-{unit_price}"), "name": format!("Widget {unit_price}"), "quantity": quantity, "unit_price": unit_price})
        })
        .collect();
    json!({
        "items": items,
        "currency": "EUR",
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square", "line2": null,
                             "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
        "notes": "leave at the door",
    })
}

/// Puts the products of an order body in the catalog, with ample stock at
/// the prices its lines give ([`System::stock`]); nothing when the system
/// runs no inventory service (its orders are not processed, or are refused
/// before they are sent).
pub async fn stocked(system: &System, body: &Value) {
    if system.inventory.is_none() {
        return;
    }
    let products: Vec<(String, i64)> = body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| Some((i["product_id"].as_str()?.to_owned(), i["unit_price"].as_i64()?)))
                // Only what the catalog would take: a test of bad orders
                // names products no catalog can hold.
                .filter(|(sku, price)| {
                    orderflow_contracts::ids::Sku::problem(sku).is_none()
                        && orderflow_contracts::inventory::check::price(*price).is_ok()
                })
                .collect()
        })
        .unwrap_or_default();
    let currency = body["currency"].as_str().unwrap_or("EUR");
    if !products.is_empty() && orderflow_contracts::inventory::check::currency(currency).is_ok() {
        system.stock(&products, currency).await;
    }
}

/// `POST /orders` (its products stocked first), waiting up to 20 s for the
/// order to leave PENDING.
pub async fn place(system: &System, token: &str, body: Value) -> (u16, Value) {
    stocked(system, &body).await;
    system.call_with(Method::POST, "/api/v1/orders", Some(token), Some(body), &[("prefer", "wait=20")]).await
}

pub async fn pool(url: &str) -> PgPool {
    PgPool::connect(url).await.expect("connect")
}

/// Polls the API until `GET path` satisfies `done`; returns that body.
pub async fn until_api(system: &System, token: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = system.call(Method::GET, path, Some(token), None).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}: last {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the saga of every order is over, as the three services' own
/// tables tell: no order PENDING; every confirmed order's payment captured
/// and its stock sold; every cancelled order's payment declined, voided or
/// refunded, and its stock no longer held.
pub async fn saga_settled(system: &System, orders: i64) {
    let (order_db, payment_db) = (pool(&system.orders_db).await, pool(&system.payments_db).await);
    let inventory_db = pool(&system.inventory_db).await;
    orderflow_testkit::until("every saga is over", Duration::from_secs(120), || {
        let (order_db, payment_db, inventory_db) = (order_db.clone(), payment_db.clone(), inventory_db.clone());
        async move {
            let rows: Vec<(uuid::Uuid, String, i64)> =
                sqlx::query_as("SELECT id, status, version FROM orders").fetch_all(&order_db).await.unwrap_or_default();
            let payments: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT order_id, status FROM payments")
                .fetch_all(&payment_db)
                .await
                .unwrap_or_default();
            let payment = |id: &uuid::Uuid| payments.iter().find(|(o, _)| o == id).map(|(_, s)| s.as_str());
            let reservations: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT order_id, state FROM reservations")
                .fetch_all(&inventory_db)
                .await
                .unwrap_or_default();
            let stock = |id: &uuid::Uuid| reservations.iter().find(|(o, _)| o == id).map(|(_, s)| s.as_str());
            // Over on all three sides: the order's status, its payment, and
            // its stock (sold once confirmed, not held once cancelled).
            let stuck: Vec<_> = rows
                .iter()
                .filter(|(id, status, _)| match status.as_str() {
                    "CONFIRMED" | "SHIPPED" | "DELIVERED" => {
                        !matches!(payment(id), Some("CAPTURED" | "PARTIALLY_REFUNDED" | "REFUNDED"))
                            || stock(id) != Some("SOLD")
                    }
                    "CANCELLED" => {
                        !matches!(payment(id), None | Some("DECLINED" | "VOIDED" | "REFUNDED"))
                            || stock(id) == Some("HELD")
                    }
                    _ => true,
                })
                .collect();
            if rows.len() as i64 == orders && stuck.is_empty() {
                return Ok(());
            }
            // What is stuck, and where: the order, its payment, its stock.
            let mut told = Vec::new();
            for (id, status, version) in stuck.iter().take(5) {
                let held: Option<String> = sqlx::query_scalar("SELECT state FROM reservations WHERE order_id = $1")
                    .bind(id)
                    .fetch_optional(&inventory_db)
                    .await
                    .ok()
                    .flatten();
                told.push(format!("{id} {status} v{version} payment {:?} stock {held:?}", payment(id)));
            }
            Err(format!("{} of {orders} orders, {} not over: {}", rows.len(), stuck.len(), told.join("; ")))
        }
    })
    .await;
}

/// The money invariant, from both services' own tables: one payment per
/// order; a live order's capture is its total; a cancelled order kept
/// nothing (captured − refunded = 0); never a refund above the capture;
/// the read models agree with both services' tables; and the stock with
/// the orders ([`assert_stock_consistent`]).
pub async fn assert_consistent(system: &System) {
    let (order_db, payment_db) = (pool(&system.orders_db).await, pool(&system.payments_db).await);
    let orders: Vec<(uuid::Uuid, String, i64, i64)> =
        sqlx::query_as("SELECT id, status, total, version FROM orders ORDER BY id")
            .fetch_all(&order_db)
            .await
            .expect("orders");
    let payments: Vec<(uuid::Uuid, uuid::Uuid, String, i64, i64, i64)> =
        sqlx::query_as("SELECT id, order_id, status, captured, refunded, version FROM payments ORDER BY order_id")
            .fetch_all(&payment_db)
            .await
            .expect("payments");
    let mut per_order = std::collections::HashMap::new();
    for p in &payments {
        assert!(per_order.insert(p.1, p).is_none(), "one payment per order: {p:?}");
        assert!(p.4 <= p.3, "never a refund above the capture: {p:?}");
    }
    for (id, status, total, _) in &orders {
        let kept = per_order.get(id).map_or(0, |p| p.3 - p.4);
        match status.as_str() {
            "CANCELLED" => assert_eq!(kept, 0, "a cancelled order keeps no money: {id}"),
            _ => assert_eq!(
                per_order.get(id).map(|p| p.3),
                Some(*total),
                "a confirmed order's capture is its total: {id}"
            ),
        }
    }
    // The read models say the same (the projector may lag: wait for it).
    let readmodels = pool(&system.readmodels_db).await;
    let expected_orders: Vec<(uuid::Uuid, String, i64)> = orders.iter().map(|o| (o.0, o.1.clone(), o.3)).collect();
    let expected_payments: Vec<(uuid::Uuid, String, i64, i64, i64)> =
        payments.iter().map(|p| (p.0, p.2.clone(), p.3, p.4, p.5)).collect();
    orderflow_testkit::eventually("the read models agree with the services' tables", Duration::from_secs(60), || {
        let (readmodels, expected_orders, expected_payments) =
            (readmodels.clone(), expected_orders.clone(), expected_payments.clone());
        async move {
            let seen_orders: Vec<(uuid::Uuid, String, i64)> =
                sqlx::query_as("SELECT id, status, version FROM rm.orders ORDER BY id")
                    .fetch_all(&readmodels)
                    .await
                    .unwrap_or_default();
            let seen_payments: Vec<(uuid::Uuid, String, i64, i64, i64)> =
                sqlx::query_as("SELECT id, status, captured, refunded, version FROM rm.payments ORDER BY order_id")
                    .fetch_all(&readmodels)
                    .await
                    .unwrap_or_default();
            seen_orders == expected_orders && seen_payments == expected_payments
        }
    })
    .await;
    assert_stock_consistent(system).await;
}

/// The stock invariant, from the inventory's and the order service's own
/// tables (nothing when the inventory never ran): each product's reserved
/// units are what the orders holding stock hold; a live order's stock is
/// sold, a cancelled order holds none; and the catalog read model agrees.
/// The inventory may still be applying the last cancellations: waits up to
/// a minute for it to hold.
pub async fn assert_stock_consistent(system: &System) {
    let Ok(inventory) = PgPool::connect(&system.inventory_db).await else { return };
    if sqlx::query("SELECT 1 FROM products LIMIT 1").fetch_optional(&inventory).await.is_err() {
        return; // the inventory never ran: no tables
    }
    let (orders, readmodels) = (pool(&system.orders_db).await, pool(&system.readmodels_db).await);
    orderflow_testkit::until("the stock agrees with the orders", Duration::from_secs(60), || {
        stock_problems(inventory.clone(), orders.clone(), readmodels.clone())
    })
    .await;
}

async fn stock_problems(inventory: PgPool, orders: PgPool, readmodels: PgPool) -> Result<(), String> {
    let read = |e: sqlx::Error| e.to_string();
    let products: Vec<(String, i64, i64, i64)> =
        sqlx::query_as("SELECT sku, on_hand, reserved, version FROM products ORDER BY sku")
            .fetch_all(&inventory)
            .await
            .map_err(read)?;
    let held: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.sku, sum(l.quantity)::bigint FROM reservation_lines l JOIN reservations r USING (order_id)
         WHERE r.state = 'HELD' GROUP BY l.sku",
    )
    .fetch_all(&inventory)
    .await
    .map_err(read)?;
    let mut problems = Vec::new();
    for (sku, _, reserved, _) in &products {
        let holding = held.iter().find(|(s, _)| s == sku).map_or(0, |(_, n)| *n);
        if *reserved != holding {
            problems.push(format!("{sku}: {reserved} reserved, the orders holding it hold {holding}"));
        }
    }
    let reservations: std::collections::HashMap<uuid::Uuid, String> =
        sqlx::query_as("SELECT order_id, state FROM reservations")
            .fetch_all(&inventory)
            .await
            .map_err(read)?
            .into_iter()
            .collect();
    let statuses: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, status FROM orders").fetch_all(&orders).await.map_err(read)?;
    for (id, status) in &statuses {
        let state = reservations.get(id).map(String::as_str);
        let right = match status.as_str() {
            "CONFIRMED" | "SHIPPED" | "DELIVERED" => state == Some("SOLD"),
            "CANCELLED" => matches!(state, None | Some("RELEASED" | "FAILED")),
            _ => true,
        };
        if !right {
            problems.push(format!("order {id} is {status}, its stock {state:?}"));
        }
    }
    let seen: Vec<(String, i64, i64, i64)> =
        sqlx::query_as("SELECT sku, on_hand, reserved, version FROM rm.products ORDER BY sku")
            .fetch_all(&readmodels)
            .await
            .map_err(read)?;
    if seen != products {
        problems.push("the catalog read model differs from the inventory's table".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} problems: {}", problems.len(), problems.into_iter().take(5).collect::<Vec<_>>().join("; ")))
    }
}

/// The types of the messages on `topic` for `key`, in order.
pub async fn types_for(system: &System, topic: &str, key: &str) -> Vec<String> {
    orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic(topic))
        .await
        .into_iter()
        .filter(|m| m.key.as_deref() == Some(key))
        .map(|m| m.headers().expect("headers").message_type)
        .collect()
}

/// Starts a service binary with `env` (and a failpoint armed), its output
/// discarded; killed when dropped.
pub fn spawn_binary(binary: &str, env: Vec<(String, String)>, failpoint: Option<&str>) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(binary);
    command
        .envs(env)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(point) = failpoint {
        command.env("OF_FAILPOINTS", point);
    }
    command.spawn().unwrap_or_else(|e| panic!("start {binary}: {e}"))
}

/// Waits for a process armed with a failpoint to die by it.
pub async fn died(mut child: tokio::process::Child, what: &str) {
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap_or_else(|_| panic!("{what}: the failpoint did not fire within a minute"))
        .expect("wait");
    assert!(!status.success(), "{what} died at its failpoint: {status:?}");
}

/// Places `n` orders (every second one above the default decline limit)
/// without waiting.
pub async fn place_many(system: &System, token: &str, n: usize) {
    for i in 0..n {
        let price = if i % 2 == 0 { 100 + i as i64 } else { 2_000_000 };
        let body = order(&[(1, price)]);
        stocked(system, &body).await;
        let (status, body) = system.call(Method::POST, "/api/v1/orders", Some(token), Some(body)).await;
        assert_eq!(status, 202, "{body}");
    }
}

/// Checks that a write answered (with `Prefer: wait`) as a command a
/// service could not apply: 500 `COMMAND_FAILED` naming the command, the
/// same in `GET /commands/{id}` (`failed`, never `pending`), and its dead
/// letter on `<commands_topic>.dlq` keeps the command's id and type.
pub async fn assert_command_failed(
    system: &System,
    token: &str,
    (status, body): (u16, Value),
    command_type: &str,
    commands_topic: &str,
) {
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "COMMAND_FAILED", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    let dlq = orderflow_contracts::topics::dlq(&system.topic(commands_topic));
    assert!(
        message.contains(command_type) && message.contains(&dlq),
        "the message names the command and where it is kept: {message}"
    );
    let id = body["error"]["details"]["command_id"].as_str().expect("command id").to_owned();
    let (status, status_body) = system.call(Method::GET, &format!("/api/v1/commands/{id}"), Some(token), None).await;
    assert_eq!(status, 200, "{status_body}");
    assert_eq!(status_body["status"], "failed", "{status_body}");
    assert_eq!(status_body["reason"], "COMMAND_FAILED", "{status_body}");
    assert_eq!(status_body["command_type"], command_type, "{status_body}");
    let letters = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &dlq).await;
    let letter = letters
        .iter()
        .find(|m| m.headers().is_ok_and(|h| h.message_id.to_string() == id))
        .unwrap_or_else(|| panic!("no dead letter of command {id} on {dlq}"));
    assert_eq!(letter.headers().expect("headers").message_type, command_type);
    assert_eq!(orderflow_bus::header_value(&letter.header_pairs, orderflow_bus::dlq::CAUSE), Some("failed"));
}

/// Rebuilds the read models by replaying every topic and checks they are
/// what they were: the users, orders, payments, command statuses, products
/// and order stock readers see, row by row (naming the first rows that
/// differ).
pub async fn assert_rebuild_equals_live(system: &System) {
    let readmodels = pool(&system.readmodels_db).await;
    let live = read_models(&readmodels).await;
    let request = orderflow_projector::request_rebuild(&readmodels).await.expect("request a rebuild");
    orderflow_projection::wait_for_rebuild(&readmodels, request, Duration::from_secs(180))
        .await
        .expect("the rebuild finished");
    let rebuilt = read_models(&readmodels).await;
    let differ: Vec<(&str, &str)> =
        live.lines().zip(rebuilt.lines()).filter(|(live, rebuilt)| live != rebuilt).take(3).collect();
    assert!(rebuilt == live, "rebuild by replay = live; the first rows that differ (live, rebuilt): {differ:#?}");
}

/// The read models readers see, in a canonical text form.
async fn read_models(pool: &PgPool) -> String {
    let tables = [
        ("users", "id"),
        ("orders", "id"),
        ("payments", "id"),
        ("commands", "command_id"),
        ("order_details", "id"),
        ("products", "sku"),
        ("order_stock", "order_id"),
    ];
    dump(pool, "rm", &tables).await
}

/// The rows of `tables` (name, the columns that order it) of `schema`, in
/// a canonical text form: what two states of a projection compare by.
pub async fn dump(pool: &PgPool, schema: &str, tables: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (table, order) in tables {
        let rows: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(row_to_json(t)::text, E'\\n' ORDER BY {order}) FROM {schema}.{table} t"
        )))
        .fetch_one(pool)
        .await
        .expect("dump");
        out.push_str(&format!("-- {table}\n{}\n", rows.unwrap_or_default()));
    }
    out
}

/// Where in the database at `url` any of `needles` is found (case
/// insensitive), as `schema.table.column` (`schema.table` for a match in
/// a row's text): every table of every schema but Postgres's own, text and
/// JSON through each row's text form, binary columns (outbox payloads,
/// idempotency answers) byte for byte.
pub async fn find_text(url: &str, needles: &[&str]) -> Vec<String> {
    let pool = pool(url).await;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&pool)
    .await
    .expect("tables");
    let mut found = Vec::new();
    for (schema, table) in tables {
        let name = format!("\"{schema}\".\"{table}\"");
        let binary: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'",
        )
        .bind(&schema)
        .bind(&table)
        .fetch_all(&pool)
        .await
        .expect("columns");
        // Each place and the count of its rows that hold the needle ($1).
        let mut places = vec![(
            format!("{schema}.{table}"),
            format!("SELECT count(*) FROM {name} t WHERE t::text ILIKE '%' || $1 || '%'"),
        )];
        places.extend(binary.iter().map(|column| {
            let sql = format!("SELECT count(*) FROM {name} WHERE position(convert_to($1, 'UTF8') IN \"{column}\") > 0");
            (format!("{schema}.{table}.{column}"), sql)
        }));
        for needle in needles {
            for (place, sql) in &places {
                let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(needle)
                    .fetch_one(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("scan {place}: {e}"));
                if hits > 0 {
                    found.push(format!("{place} holds {needle:?} ({hits} rows)"));
                }
            }
        }
    }
    pool.close().await;
    found
}
