//! A command the order service cannot apply (a failpoint makes its handler
//! fail every time) is dead-lettered and settles as failed: the client
//! waiting on it is told, and its status never stays pending.

use orderflow_harness::shop::{assert_command_failed, customer, order, place, spawn_binary};
use orderflow_harness::system::System;

#[tokio::test]
async fn a_command_the_service_cannot_apply_ends_failed_not_pending() {
    let mut system = System::start().await;
    system.start_inventory_service().await;
    system.start_payment_service().await;
    let _service =
        spawn_binary(env!("CARGO_BIN_EXE_order-service"), system.order_service_env(), Some("handle.PlaceOrder=error"));
    let (token, _) = customer(&system, "failing-order@example.com").await;
    let answer = place(&system, &token, order(&[(1, 500)])).await;
    assert_command_failed(&system, &token, answer, "PlaceOrder", orderflow_contracts::orders::COMMANDS.name).await;
    system.stop().await;
}
