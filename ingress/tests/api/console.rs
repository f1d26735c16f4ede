//! The console (`/console`) in a real browser against the whole system:
//! `console/e2e/console.mjs` (playwright-core driving Debian's chromium)
//! signs in, watches an order placed through the API turn CONFIRMED
//! without a reload, is refused another user's order, refunds in part as
//! an admin and sees the refund on the timeline; axe-core finds no serious
//! violation on any page; a screenshot of each page is kept under
//! `target/console-screenshots`.

use std::process::Stdio;
use std::time::Duration;

use orderflow_harness::shop;
use reqwest::Method;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::System;

#[tokio::test]
async fn the_console_shows_an_order_live_refunds_it_and_keeps_others_out() {
    // No payment service yet: the order stays PENDING until the page watches it.
    let mut system = System::start().await;
    system.start_inventory_service().await;
    system.start_order_service().await;
    system.start_audit_log().await;
    // The bus page probes these (the payment service starts later: it
    // shows as not reachable until then).
    let mut processes = Vec::new();
    for (name, component) in [
        ("user-service", &system.user),
        ("order-service", &system.order),
        ("inventory-service", &system.inventory),
        ("projector", &system.projector),
    ] {
        let url = component.as_ref().expect(name).ops_url.clone();
        processes.push(orderflow_ingress::monitor::Process { name: name.into(), url });
    }
    system.restart_ingress_with(|s| s.monitor.processes = processes).await;
    shop::admin(&system).await;
    let (customer, _) = shop::customer(&system, "console.customer@example.com").await;
    let (other, _) = shop::customer(&system, "console.other@example.com").await;
    let body = shop::order(&[(2, 1500)]);
    shop::stocked(&system, &body).await;
    let (status, theirs) = system.call(Method::POST, "/api/v1/orders", Some(&other), Some(body.clone())).await;
    assert_eq!(status, 202, "{theirs}");
    let their_order =
        shop::until_api(&system, &other, "/api/v1/orders/mine", "their order is listed", |page| page["total"] == 1)
            .await["items"][0]["id"]
            .as_str()
            .expect("their order")
            .to_owned();

    let root = std::env::var("OF_ROOT").expect("OF_ROOT is set by scripts/test");
    let chromium = std::env::var("OF_TEST_CHROMIUM").expect("OF_TEST_CHROMIUM is set by scripts/test");
    let shots = format!("{root}/target/console-screenshots");
    let mut browser = tokio::process::Command::new("node")
        .arg(format!("{root}/console/e2e/console.mjs"))
        .env("OF_E2E_BASE", &system.api)
        .env("OF_E2E_CHROMIUM", chromium)
        .env("OF_E2E_SHOTS", &shots)
        .env("OF_E2E_CUSTOMER", "console.customer@example.com")
        .env("OF_E2E_ADMIN", crate::ADMIN_EMAIL)
        .env("OF_E2E_PASSWORD", shop::PASSWORD)
        .env("OF_E2E_OTHER_ORDER", &their_order)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut to_browser = browser.stdin.take().expect("stdin");
    let mut from_browser = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    let mut done = false;
    let run = async {
        while let Some(line) = from_browser.next_line().await.expect("read") {
            match line.as_str() {
                "need-order" => {
                    let (status, placed) =
                        system.call(Method::POST, "/api/v1/orders", Some(&customer), Some(body.clone())).await;
                    assert_eq!(status, 202, "{placed}");
                    let mine = shop::until_api(&system, &customer, "/api/v1/orders/mine", "the order is listed", |p| {
                        p["total"] == 1
                    })
                    .await;
                    let id = mine["items"][0]["id"].as_str().expect("id").to_owned();
                    to_browser.write_all(format!("{id}\n").as_bytes()).await.expect("write");
                }
                "watching" => {
                    system.start_payment_service().await;
                    to_browser.write_all(b"ok\n").await.expect("write");
                }
                "done" => done = true,
                other => eprintln!("browser: {other}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(240), run).await.expect("the browser run finished in time");
    let status = browser.wait().await.expect("node");
    assert!(status.success() && done, "the browser run failed (its stderr is above; screenshots in {shots})");
    for page in [
        "sign-in",
        "my-orders",
        "order-customer",
        "not-yours",
        "products",
        "my-profile",
        "orders-admin",
        "order-admin",
        "users",
        "user",
        "audit",
        "bus",
        "order-phone",
    ] {
        assert!(std::path::Path::new(&format!("{shots}/{page}.png")).is_file(), "no screenshot of {page}");
    }
}
