//! `kill -9` mid-saga: the order service aborts between its database commit and
//! its offset commit (the real binary, a failpoint), a fresh process takes
//! over, and every order still ends CONFIRMED or CANCELLED with its money
//! right.

use std::time::Duration;

use orderflow_harness::system::System;
use tokio::process::Child;

use crate::{assert_consistent, customer, died, place_many, pool, saga_settled, spawn_binary};

fn order_service(system: &System, failpoint: Option<&str>) -> Child {
    spawn_binary(env!("CARGO_BIN_EXE_order-service"), system.order_service_env(), failpoint)
}

#[tokio::test]
async fn the_order_service_killed_between_its_commit_and_its_offset_commit() {
    let mut system = System::start().await;
    system.start_inventory_service().await;
    system.start_payment_service().await;
    let (token, user_id) = customer(&system, "crash-order@example.com").await;
    // A first process learns the customer and stops; the doomed one's first
    // commit is then a saga step.
    let mut first = order_service(&system, None);
    let orders = pool(&system.orders_db).await;
    orderflow_testkit::eventually("the order service knows the customer", Duration::from_secs(60), || {
        let (orders, user_id) = (orders.clone(), user_id.clone());
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM customers WHERE id = $1::uuid")
                .bind(user_id)
                .fetch_one(&orders)
                .await
                .is_ok_and(|n| n == 1)
        }
    })
    .await;
    first.kill().await.expect("stop the first process");

    let doomed = order_service(&system, Some("consumer.after_commit"));
    place_many(&system, &token, 10).await;
    died(doomed, "the order service").await;
    let survivor = order_service(&system, None);
    saga_settled(&system, 10).await;
    assert_consistent(&system).await;
    let inbox_dupes: i64 = sqlx::query_scalar("SELECT count(*) - count(DISTINCT message_id) FROM inbox")
        .fetch_one(&orders)
        .await
        .expect("inbox");
    assert_eq!(inbox_dupes, 0);
    drop(survivor);
    system.stop().await;
}
