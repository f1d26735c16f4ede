//! Altering, deleting or inserting a row directly in the database is
//! reported by verify, with the place where the chain breaks.

use orderflow_harness::system::System;
use serde_json::Value;

use crate::{Events, admin_token, audit_db, caught_up, get};

async fn verify(system: &System, token: &str, full: bool) -> Value {
    let (status, report) = get(system, &format!("/api/v1/audit/verify?full={full}"), token).await;
    assert_eq!(status, 200, "{report}");
    report
}

fn break_of(report: &Value) -> (i64, String) {
    assert_eq!(report["intact"], false, "{report}");
    let at = &report["first_break"];
    (at["seq"].as_i64().expect("seq"), at["problem"].as_str().expect("problem").to_owned())
}

#[tokio::test]
async fn verify_reports_where_a_chain_was_altered_cut_or_extended() {
    let mut system = System::start().await;
    // A checkpoint every 4 records: quick verification starts at the newest.
    system
        .start_audit_log_with({
            let mut settings = system.audit_log_settings();
            settings.domain.checkpoint_every = 4;
            settings
        })
        .await;
    let admin = admin_token(&system).await;
    let events = Events::new(&system);
    // One user: all on one partition, one chain of 14 records (15 if the
    // admin's registration landed there too): checkpoints at 4, 8, 12.
    for n in 0..14 {
        events.update(n, 1).await;
    }
    let pool = audit_db(&system).await;
    caught_up(&system, &pool, Some(&events)).await;
    let (topic, partition): (String, i32) = sqlx::query_as(
        "SELECT topic, partition FROM audit.records WHERE aggregate_key = '0190a0a0-0000-7000-8000-000000000000' LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("chain");
    let report = verify(&system, &admin, false).await;
    assert_eq!(report["intact"], true, "{report}");
    let chain = report["chains"]
        .as_array()
        .expect("chains")
        .iter()
        .find(|c| c["topic"] == topic.as_str() && c["partition"] == partition)
        .expect("the chain")
        .clone();
    let head = chain["head_seq"].as_i64().expect("head");
    assert!(head >= 14, "{chain}");
    assert!(chain["recomputed"].as_i64().expect("n") < head, "quick mode recomputes only after a checkpoint: {chain}");
    let chain_sql = "topic = $1 AND partition = $2 AND seq = $3";

    // 1. Alter the content of a recent record (after the newest checkpoint).
    let recent = head;
    let actor: String =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT actor FROM audit.records WHERE {chain_sql}")))
            .bind(&topic)
            .bind(partition)
            .bind(recent)
            .fetch_one(&pool)
            .await
            .expect("actor");
    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE audit.records SET actor = 'someone-else' WHERE {chain_sql}")))
        .bind(&topic)
        .bind(partition)
        .bind(recent)
        .execute(&pool)
        .await
        .expect("alter");
    let (seq, problem) = break_of(&verify(&system, &admin, false).await);
    assert_eq!(seq, recent, "{problem}");
    assert!(problem.contains("content"), "{problem}");
    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE audit.records SET actor = $4 WHERE {chain_sql}")))
        .bind(&topic)
        .bind(partition)
        .bind(recent)
        .bind(&actor)
        .execute(&pool)
        .await
        .expect("restore");
    assert_eq!(verify(&system, &admin, true).await["intact"], true, "restored");

    // 2. Alter an old record's payload (before the newest checkpoint): the
    // full verification finds it ...
    let old = 2_i64;
    let original: (String, String) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT payload, hash FROM audit.records WHERE {chain_sql}")))
            .bind(&topic)
            .bind(partition)
            .bind(old)
            .fetch_one(&pool)
            .await
            .expect("original");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE audit.records SET payload = replace(payload, '\"version\":', '\"version\":1') WHERE {chain_sql}"
    )))
    .bind(&topic)
    .bind(partition)
    .bind(old)
    .execute(&pool)
    .await
    .expect("alter old");
    let (seq, problem) = break_of(&verify(&system, &admin, true).await);
    assert_eq!(seq, old, "{problem}");
    // ... and the quick one too once the forger also changes its hash: the
    // next record no longer links to it.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE audit.records SET hash = md5(hash) || md5(hash) WHERE {chain_sql}"
    )))
    .bind(&topic)
    .bind(partition)
    .bind(old)
    .execute(&pool)
    .await
    .expect("forge hash");
    let (seq, problem) = break_of(&verify(&system, &admin, false).await);
    assert_eq!(seq, old + 1, "{problem}");
    assert!(problem.contains("prev_hash"), "{problem}");
    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE audit.records SET payload = $4, hash = $5 WHERE {chain_sql}")))
        .bind(&topic)
        .bind(partition)
        .bind(old)
        .bind(&original.0)
        .bind(&original.1)
        .execute(&pool)
        .await
        .expect("restore");
    assert_eq!(verify(&system, &admin, true).await["intact"], true, "restored");

    // 3. Delete a record in the middle.
    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM audit.records WHERE {chain_sql}")))
        .bind(&topic)
        .bind(partition)
        .bind(6_i64)
        .execute(&pool)
        .await
        .expect("delete");
    let (seq, problem) = break_of(&verify(&system, &admin, false).await);
    assert_eq!(seq, 6, "{problem}");
    assert!(problem.contains("missing"), "{problem}");
    system.stop().await;
}

#[tokio::test]
async fn a_forged_record_at_the_end_and_a_cut_off_end_are_reported() {
    let mut system = System::start().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let events = Events::new(&system);
    for n in 0..5 {
        events.update(n, 1).await;
    }
    let pool = audit_db(&system).await;
    caught_up(&system, &pool, Some(&events)).await;
    let (topic, partition, head): (String, i32, i64) = sqlx::query_as(
        "SELECT topic, partition, max(seq) FROM audit.records WHERE aggregate_key = '0190a0a0-0000-7000-8000-000000000000'
         GROUP BY 1, 2",
    )
    .fetch_one(&pool)
    .await
    .expect("chain");

    // An inserted record, linked to the last one, with a hash its forger made up.
    sqlx::query(
        "INSERT INTO audit.records (topic, partition, seq, source_offset, message_id, message_type, aggregate_key, actor,
                                    correlation_id, causation_id, occurred_at, payload, prev_hash, hash)
         SELECT topic, partition, seq + 1, source_offset + 1, gen_random_uuid(), 'UserDeactivated', aggregate_key, actor,
                correlation_id, causation_id, occurred_at, '{}', hash, md5('forged') || md5('forged')
         FROM audit.records WHERE topic = $1 AND partition = $2 AND seq = $3",
    )
    .bind(&topic)
    .bind(partition)
    .bind(head)
    .execute(&pool)
    .await
    .expect("insert");
    let (seq, problem) = break_of(&verify(&system, &admin, false).await);
    assert_eq!(seq, head + 1, "{problem}");

    // Remove it and the last genuine record: the chain now ends early.
    sqlx::query("DELETE FROM audit.records WHERE topic = $1 AND partition = $2 AND seq >= $3")
        .bind(&topic)
        .bind(partition)
        .bind(head)
        .execute(&pool)
        .await
        .expect("cut");
    let (seq, problem) = break_of(&verify(&system, &admin, false).await);
    assert_eq!(seq, head, "{problem}");
    assert!(problem.contains("missing"), "{problem}");
    system.stop().await;
}
