//! `orderflow outbox` and `orderflow audit verify`, the real binary
//! against the test harness's system: parked outbox rows are listed with
//! their error and released in key order; a tampered audit record fails
//! the verification with exit 1, naming where.

mod common;

use std::process::Output;
use std::time::Duration;

use orderflow_contracts::topics::Retention;
use orderflow_harness::shop;
use orderflow_harness::system::System;
use serde_json::Value;

async fn orderflow(system: &System, args: &[&str]) -> Output {
    let mut command = common::command(system, args);
    for (name, url) in [("users", &system.users_db), ("audit", &system.audit_db)] {
        command.arg("--database").arg(format!("{name}={url}"));
    }
    command.output().await.expect("run orderflow")
}

#[tokio::test]
async fn parked_outbox_rows_are_listed_and_released_in_order() {
    let system = System::start().await;
    let topic = system.topic("cli.parked");
    orderflow_bus::admin::ensure_topics(&system.kafka, &[("cli.parked".into(), Retention::Week)]).await.expect("topic");
    let pool = shop::pool(&system.users_db).await;
    // Two rows of one key the relay gave up on (as after a broker refusing them).
    let mut ids = Vec::new();
    for n in 0..2 {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (topic, message_key, payload, header_names, header_values, attempts, last_error, parked_at)
             VALUES ($1, 'k', $2, '{}', '{}', 10, 'Broker: message too large', now()) RETURNING id",
        )
        .bind(&topic)
        .bind(format!("record {n}").into_bytes())
        .fetch_one(&pool)
        .await
        .expect("a parked row");
        ids.push(id);
    }
    let status = common::lines(&orderflow(&system, &["outbox", "status", "user-service", "--output", "json"]).await);
    let parked = status[0]["parked"].as_array().expect("parked");
    assert_eq!(parked.len(), 2, "{status:#?}");
    assert_eq!(parked[0]["last_error"], "Broker: message too large");
    let table = orderflow(&system, &["outbox", "status"]).await;
    assert!(String::from_utf8_lossy(&table.stdout).contains("parked user-service #"), "every outbox in one table");

    let released = common::lines(&orderflow(&system, &["outbox", "unpark", "user-service", &ids[0].to_string()]).await);
    assert_eq!(released[0]["released"], 2, "the later row of its key comes with it");
    orderflow_testkit::eventually("the relay publishes them", Duration::from_secs(30), || async {
        // (A published row leaves the outbox: the topic is the record.)
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox WHERE topic = $1")
            .bind(&topic)
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 0)
    })
    .await;
    let on_topic = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &topic).await;
    let values: Vec<&[u8]> = on_topic.iter().filter_map(|m| m.payload.as_deref()).collect();
    assert_eq!(values, [b"record 0".as_slice(), b"record 1".as_slice()], "in their order");

    let again = orderflow(&system, &["outbox", "unpark", "user-service", &ids[0].to_string()]).await;
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no parked row"));
    let unknown = orderflow(&system, &["outbox", "status", "mail-service"]).await;
    assert_eq!(unknown.status.code(), Some(2));
    system.stop().await;
}

#[tokio::test]
async fn audit_verify_passes_an_intact_log_and_names_a_tampered_record() {
    let mut system = System::start().await;
    system.start_audit_log().await;
    for n in 0..3 {
        shop::customer(&system, &format!("audited{n}@example.com")).await;
    }
    let pool = shop::pool(&system.audit_db).await;
    orderflow_testkit::eventually("the audit log has the users", Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit.records WHERE message_type = 'UserRegistered'")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 3)
    })
    .await;
    // One request's story: the registration's events, in causal order.
    let correlation: String =
        sqlx::query_scalar("SELECT correlation_id FROM audit.records WHERE message_type = 'UserRegistered' LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("a correlation id");
    let story = common::lines(&orderflow(&system, &["trace", &correlation, "--output", "json"]).await);
    assert_eq!(story[0]["type"], "UserRegistered", "{story:#?}");
    assert!(story.iter().all(|r| r["payload"].get("email").is_none()), "no personal field in a trace");
    let none = orderflow(&system, &["trace", "no-such-request"]).await;
    assert_eq!(none.status.code(), Some(1));

    let intact = common::lines(&orderflow(&system, &["audit", "verify", "--full"]).await);
    assert_eq!((intact[0]["intact"].as_bool(), intact[0]["mode"].as_str()), (Some(true), Some("full")), "{intact:#?}");

    sqlx::query(
        "UPDATE audit.records SET actor = 'someone-else'
         WHERE (topic, partition, seq) = (SELECT topic, partition, max(seq) FROM audit.records
                                          WHERE message_type = 'UserRegistered' GROUP BY topic, partition LIMIT 1)",
    )
    .execute(&pool)
    .await
    .expect("tamper");
    let broken = orderflow(&system, &["audit", "verify", "--full"]).await;
    assert_eq!(broken.status.code(), Some(1), "a finding: {}", String::from_utf8_lossy(&broken.stderr));
    let said = String::from_utf8_lossy(&broken.stderr);
    assert!(said.contains("not intact") && said.contains("breaks at seq"), "{said}");
    let report: Value = serde_json::from_slice(&broken.stdout).expect("the report");
    assert_eq!(report["intact"], false);
    system.stop().await;
}

#[tokio::test]
async fn completions_and_a_man_page_come_from_the_commands_themselves() {
    let run = |args: &'static [&'static str]| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow")).args(args).output().await.expect("run")
    };
    let bash = run(&["completions", "bash"]).await;
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(bash.status.success() && script.contains("orderflow") && script.contains("replay"), "{script}");
    let man = run(&["man"]).await;
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success() && page.contains(".TH orderflow"), "{page}");
    assert!(page.contains("status") && page.contains("dlq"), "every command is in it");
    let wrong = run(&["completions", "tcsh"]).await;
    assert_eq!(wrong.status.code(), Some(2), "an unknown shell is wrong usage");
}
