//! `orderflow status`, the real binary against the test harness's system:
//! every process ready, every group and projection caught up; then a
//! stopped consumer shows as not ready, with the lag of what it has not
//! read, and the command says so with exit 1.

mod common;

use std::process::Output;
use std::time::Duration;

use orderflow_harness::shop;
use orderflow_harness::system::System;
use serde_json::Value;

async fn orderflow_status(system: &System, processes: &[(&str, &str)]) -> Output {
    let mut command = common::command(system, &["status", "--output", "json"]);
    for (name, url) in processes {
        command.arg("--process").arg(format!("{name}={url}"));
    }
    for (name, url) in system.databases() {
        command.arg("--database").arg(format!("{name}={url}"));
    }
    command.output().await.expect("run orderflow")
}

fn report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)))
}

fn lag_of(report: &Value, reader: &str, topic: &str) -> i64 {
    report["consumer_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(|l| l["reader"] == reader && l["topic"].as_str().is_some_and(|t| t.ends_with(topic)))
        .map(|l| l["lag"].as_i64().expect("lag"))
        .sum()
}

#[tokio::test]
async fn status_shows_every_process_and_a_stopped_consumers_lag() {
    let mut system = System::start_all().await;
    let admin = shop::admin(&system).await;
    let (token, _) = shop::customer(&system, "status@example.com").await;
    shop::stocked(&system, &shop::order(&[(1, 1250)])).await;
    let (status, placed) = shop::place(&system, &token, shop::order(&[(1, 1250)])).await;
    assert_eq!(status, 201, "{placed}");
    shop::saga_settled(&system, 1).await;
    let payment = system.payment.as_ref().expect("payment service").ops_url.clone();
    let processes = [
        ("user-service", system.user.as_ref().expect("user service").ops_url.clone()),
        ("order-service", system.order.as_ref().expect("order service").ops_url.clone()),
        ("payment-service", payment),
        ("projector", system.projector.as_ref().expect("projector").ops_url.clone()),
    ];
    let named: Vec<(&str, &str)> = processes.iter().map(|(n, u)| (*n, u.as_str())).collect();

    let all_well = orderflow_testkit::until("every group caught up", Duration::from_secs(30), || async {
        let out = orderflow_status(&system, &named).await;
        let found = report(&out);
        if out.status.success() && lag_of(&found, "payment-service", "orders.events") == 0 {
            Ok(found)
        } else {
            Err(found.to_string())
        }
    })
    .await;
    assert!(all_well["processes"].as_array().expect("processes").iter().all(|p| p["ready"] == true), "{all_well}");
    let readmodels = all_well["projections"].as_array().expect("projections");
    assert!(readmodels.iter().any(|l| l["reader"] == "readmodels"), "projection positions: {all_well}");
    let outboxes = all_well["outboxes"].as_array().expect("outboxes");
    let orders = outboxes.iter().find(|o| o["service"] == "order-service").expect("the order service's outbox");
    assert_eq!(orders["parked"], 0, "{orders}");
    assert!(orders["unpublished"].as_i64().is_some(), "{orders}");

    // The payment service stops; an order it would read waits for it.
    system.payment.take().expect("payment service").stop().await;
    // (Its saga waits for the payment service: accepted, not settled.)
    let (status_code, placed) = shop::place(&system, &token, shop::order(&[(1, 1250)])).await;
    assert!(status_code == 201 || status_code == 202, "{placed}");
    let stopped = orderflow_testkit::until("the stopped group's lag shows", Duration::from_secs(30), || async {
        let out = orderflow_status(&system, &named).await;
        let found = report(&out);
        if lag_of(&found, "payment-service", "orders.events") > 0 { Ok(out) } else { Err(found.to_string()) }
    })
    .await;
    assert_eq!(stopped.status.code(), Some(1), "a process that is not ready is a finding");
    let found = report(&stopped);
    let payment = found["processes"].as_array().expect("processes").iter().find(|p| p["name"] == "payment-service");
    assert_eq!(payment.map(|p| p["ready"].clone()), Some(Value::Bool(false)), "{found}");
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("not ready"));
    let _ = admin;
    system.stop().await;
}
