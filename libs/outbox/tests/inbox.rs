//! The inbox against a real Postgres.

use orderflow_outbox::inbox::{self, Entry, Outcome};
use sqlx::PgPool;

#[tokio::test]
async fn an_id_named_twice_in_one_claim_is_claimed_once_and_never_again() {
    let pool = PgPool::connect(&orderflow_testkit::fresh_database("inbox").await).await.expect("database");
    orderflow_outbox::migrate(&pool).await.expect("migrate");
    let entry = |message_id| Entry { message_id, topic: "orders.events", message_type: "OrderPlaced" };
    // The original and its redelivery in one run, with another message.
    let run = [entry("m-1"), entry("m-2"), entry("m-1")];
    let mut tx = pool.begin().await.expect("tx");
    let claimed = inbox::claim_all(&mut tx, &run, Outcome::Handled).await.expect("claimed in one statement");
    tx.commit().await.expect("commit");
    let mut claimed: Vec<String> = claimed.into_iter().collect();
    claimed.sort();
    assert_eq!(claimed, ["m-1", "m-2"]);

    let mut tx = pool.begin().await.expect("tx");
    let again = inbox::claim_all(&mut tx, &run, Outcome::Handled).await.expect("claim");
    assert!(again.is_empty(), "claimed again: {again:?}");
}
