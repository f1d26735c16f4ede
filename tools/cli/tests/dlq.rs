//! `orderflow dlq`, the real binary against the test harness's system: a
//! command the user service cannot apply (a failpoint) is dead-lettered;
//! `list` shows it and why; after the fix `replay` applies it once (a
//! dry run first sends nothing; a second replay is refused, and forced it
//! changes nothing: the inbox knows its message id); an entry whose key
//! moved on since is refused rather than applied out of order, and can be
//! discarded.

mod common;

use std::time::Duration;

use common::{lines, orderflow};
use orderflow_harness::shop::{assert_command_failed, customer, spawn_binary};
use orderflow_harness::system::{System, binary};
use reqwest::Method;
use serde_json::{Value, json};

/// A user service whose handler fails every `UpdateUserProfile`.
fn failing(system: &System) -> tokio::process::Child {
    let path = binary("user-service");
    spawn_binary(path.to_str().expect("path"), system.user_service_env(), Some("handle.UpdateUserProfile=error"))
}

async fn rename(system: &System, token: &str, id: &str, last_name: &str) -> (u16, Value) {
    let body = json!({"last_name": last_name});
    let path = format!("/api/v1/users/{id}");
    system.call_with(Method::PATCH, &path, Some(token), Some(body), &[("prefer", "wait=30")]).await
}

async fn last_name(system: &System, token: &str) -> String {
    let (status, me) = system.call(Method::GET, "/api/v1/users/me", Some(token), None).await;
    assert_eq!(status, 200, "{me}");
    me["last_name"].as_str().expect("last name").to_owned()
}

async fn duplicates(system: &System) -> f64 {
    let group = system.user_settings().consumer.group;
    let url = format!("{}/metrics", system.user.as_ref().expect("the user service").ops_url);
    let text = reqwest::get(url).await.expect("metrics").text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with("orderflow_inbox_duplicates_total") && l.contains(&format!("group=\"{group}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_dead_letter_is_replayed_once_after_the_fix_and_never_out_of_order() {
    let mut system = System::start_without_user_service().await;
    let mut broken = failing(&system);
    let (token, id) = customer(&system, "dlq@example.com").await;
    let answer = rename(&system, &token, &id, "Replayed").await;
    assert_command_failed(&system, &token, answer, "UpdateUserProfile", "users.commands").await;

    let listed = lines(&orderflow(&system, &["dlq", "list", "--output", "json"]).await);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let entry = &listed[0];
    assert_eq!(
        (entry["dlq"].as_str(), entry["key"].as_str(), entry["type"].as_str(), entry["source"]["topic"].as_str()),
        (Some("users.commands.dlq"), Some(id.as_str()), Some("UpdateUserProfile"), Some("users.commands")),
        "{entry}"
    );
    assert!(entry["error"].as_str().is_some_and(|e| e.contains("failpoint")), "says why: {entry}");
    let offset = entry["offset"].as_i64().expect("offset").to_string();
    let table = orderflow(&system, &["dlq", "list"]).await;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("UpdateUserProfile") && table.contains("1 × users.commands.dlq"), "{table}");
    let shown = orderflow(&system, &["dlq", "show", "users.commands.dlq", &offset]).await;
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("show prints JSON");
    assert_eq!(shown["record"]["type"], "orderflow.users.commands.UpdateUserProfile", "{shown}");

    // The fix: a service that works.
    broken.kill().await.expect("kill");
    system.start_user_service().await;
    let dry = lines(&orderflow(&system, &["dlq", "replay", "users.commands", "--dry-run"]).await);
    assert_eq!((dry.len(), dry[0]["dry_run"].as_bool()), (1, Some(true)), "{dry:#?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(last_name(&system, &token).await, "User", "a dry run sent something");

    let replayed = lines(&orderflow(&system, &["dlq", "replay", "users.commands.dlq"]).await);
    assert_eq!(replayed.len(), 1, "{replayed:#?}");
    orderflow_testkit::eventually("the replayed rename applies", Duration::from_secs(30), || async {
        last_name(&system, &token).await == "Replayed"
    })
    .await;
    assert!(lines(&orderflow(&system, &["dlq", "list", "--output", "json"]).await).is_empty(), "nothing waits");

    // Twice: refused, naming why; forced, the inbox skips it.
    let again = orderflow(&system, &["dlq", "replay", "users.commands.dlq", &offset]).await;
    assert_eq!(again.status.code(), Some(1), "{}", String::from_utf8_lossy(&again.stderr));
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("replayed already") && said.contains("--force"), "{said}");
    let before = duplicates(&system).await;
    lines(&orderflow(&system, &["dlq", "replay", "users.commands.dlq", &offset, "--force"]).await);
    orderflow_testkit::eventually("the inbox skips the second replay", Duration::from_secs(30), || async {
        duplicates(&system).await > before
    })
    .await;
    assert_eq!(last_name(&system, &token).await, "Replayed");

    // A key that moved on: its dead letter is not applied over newer changes.
    system.user.take().expect("the user service").stop().await;
    let mut broken = failing(&system);
    let answer = rename(&system, &token, &id, "Stale").await;
    assert_command_failed(&system, &token, answer, "UpdateUserProfile", "users.commands").await;
    broken.kill().await.expect("kill");
    system.start_user_service().await;
    let (status, body) = rename(&system, &token, &id, "Newest").await;
    assert_eq!(status, 200, "{body}");
    let waiting = lines(&orderflow(&system, &["dlq", "list", "--output", "json"]).await);
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    let stale = waiting[0]["offset"].as_i64().expect("offset").to_string();
    let refused = orderflow(&system, &["dlq", "replay", "users.commands.dlq"]).await;
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("later records of its key"), "{said}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(last_name(&system, &token).await, "Newest", "nothing was sent");
    let discarded = orderflow(&system, &["dlq", "discard", "users.commands.dlq", &stale]).await;
    assert!(discarded.status.success(), "{}", String::from_utf8_lossy(&discarded.stderr));
    assert!(lines(&orderflow(&system, &["dlq", "list", "--output", "json"]).await).is_empty());
    let all = lines(&orderflow(&system, &["dlq", "list", "--all", "--output", "json"]).await);
    let actions: Vec<&str> = all.iter().filter_map(|e| e["settled"]["action"].as_str()).collect();
    assert_eq!(actions, ["replayed", "discarded"], "{all:#?}");

    // Wrong usage: exit 2, naming what was wrong.
    let missing = orderflow(&system, &["dlq", "replay", "users.commands.dlq", "999"]).await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no entry at offset 999"));
    system.stop().await;
}
