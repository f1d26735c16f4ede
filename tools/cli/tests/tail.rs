//! `orderflow tail`, the real binary against the test harness's system:
//! every record of a topic, decoded through the registry, without the
//! personal fields unless asked; a key's records only; bounded at the end
//! the topic had when it started; clear errors with their exit codes.

mod common;

use common::{lines, orderflow};
use orderflow_harness::system::System;

#[tokio::test]
async fn tail_decodes_every_record_of_a_topic_and_keeps_personal_data_out_unless_asked() {
    let system = System::start().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, body) = system.register(&format!("tail{i}@example.com"), "correct horse battery").await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let produced = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic("users.events")).await;

    let events = lines(&orderflow(&system, &["tail", "users.events"]).await);
    assert_eq!(events.len(), produced.len(), "one line per record: {events:#?}");
    for line in &events {
        let at = (line["partition"].as_i64(), line["offset"].as_i64());
        let record = produced
            .iter()
            .find(|r| (Some(i64::from(r.partition)), Some(r.offset)) == at)
            .unwrap_or_else(|| panic!("no record at {at:?}: {line}"));
        assert_eq!(line["key"].as_str(), record.key.as_deref(), "{line}");
        assert_eq!(line["type"], "orderflow.users.events.UserRegistered", "{line}");
        assert!(line["schema_id"].as_u64().is_some(), "{line}");
        assert_eq!(line["value"]["user_id"].as_str(), record.key.as_deref(), "{line}");
        for personal in ["email", "first_name", "last_name"] {
            assert!(line["value"].get(personal).is_none(), "{personal} shown without --sensitive: {line}");
        }
    }
    let mut registered: Vec<&str> = events.iter().filter_map(|l| l["key"].as_str()).collect();
    registered.sort_unstable();
    ids.sort_unstable();
    assert_eq!(registered, ids, "the users registered");

    // Asked for: the personal fields, the headers, one key's records.
    let shown =
        lines(&orderflow(&system, &["tail", "users.events", "--sensitive", "--headers", "--key", &ids[1]]).await);
    assert_eq!(shown.len(), 1, "{shown:#?}");
    // As the topic holds it: sealed with the user's data key.
    assert!(shown[0]["value"]["email"].as_str().is_some_and(|e| e.starts_with("enc:v1:")), "{}", shown[0]);
    assert_eq!(shown[0]["headers"]["message_type"], "UserRegistered");
    // Commands too, their password hashes hidden.
    let all = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic("users.commands")).await;
    let commands = lines(&orderflow(&system, &["tail", "users.commands"]).await);
    assert_eq!(commands.len(), all.len(), "{commands:#?}");
    let later = lines(&orderflow(&system, &["tail", "users.commands", "--from", "1"]).await);
    assert_eq!(later.len(), all.iter().filter(|r| r.offset >= 1).count(), "from offset 1: {later:#?}");
    assert!(
        commands
            .iter()
            .all(|c| c["type"] == "orderflow.users.commands.RegisterUser" && c["value"].get("password_hash").is_none())
    );
    // Bounded: from the end there is nothing to print, and it returns.
    assert!(lines(&orderflow(&system, &["tail", "users.events", "--from", "end"]).await).is_empty());

    // Wrong usage and no broker: their exit codes, and what was wrong.
    let unknown = orderflow(&system, &["tail", "no.such.topic"]).await;
    assert_eq!(unknown.status.code(), Some(2));
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("no topic") && said.contains("users.events"), "names the topics there are: {said}");
    let bad = orderflow(&system, &["tail", "users.events", "--from", "yesterday"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    let nowhere = orderflow(&system, &["--kafka", "127.0.0.1:1", "tail", "users.events"]).await;
    assert_eq!(nowhere.status.code(), Some(3), "{}", String::from_utf8_lossy(&nowhere.stderr));
    system.stop().await;
}
