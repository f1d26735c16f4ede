//! `orderflow projection`, the real binary against the test harness's
//! system: a rebuild by replay under load ends with the views on the
//! rebuilt generation, equal to a rebuild from scratch; Ctrl-C stops a
//! rebuild and leaves the live generation as it was.

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use orderflow_harness::shop;
use orderflow_harness::system::System;
use reqwest::Method;
use serde_json::json;

fn command(system: &System, args: &[&str]) -> tokio::process::Command {
    let mut command = common::command(system, args);
    command.arg("--database").arg(format!("readmodels={}", system.readmodels_db));
    command.arg("--database").arg(format!("audit={}", system.audit_db));
    command
}

async fn orderflow(system: &System, args: &[&str]) -> Output {
    command(system, args).output().await.expect("run orderflow")
}

async fn live(system: &System) -> i64 {
    let out = orderflow(system, &["projection", "status", "readmodels", "--output", "json"]).await;
    let report = &common::lines(&out)[0];
    report["generations"]
        .as_array()
        .expect("generations")
        .iter()
        .find(|g| g["status"] == "live")
        .and_then(|g| g["generation"].as_i64())
        .expect("a live generation")
}

#[tokio::test]
async fn a_rebuild_under_load_ends_equal_to_live_and_ctrl_c_leaves_the_live_one() {
    let mut system = System::start().await;
    let mut users = Vec::new();
    for n in 0..10 {
        users.push(shop::customer(&system, &format!("rebuild{n}@example.com")).await);
    }
    let before = live(&system).await;

    // Load while the rebuild runs: every user renamed again and again.
    let stop = tokio_util::sync::CancellationToken::new();
    let load = {
        let (api, http, stop) = (system.api.clone(), system.http.clone(), stop.clone());
        let users = users.clone();
        tokio::spawn(async move {
            let mut round = 0;
            while !stop.is_cancelled() {
                for (token, id) in &users {
                    let _ = http
                        .request(Method::PATCH, format!("{api}/api/v1/users/{id}"))
                        .bearer_auth(token)
                        .json(&json!({"last_name": format!("Round{round}")}))
                        .send()
                        .await;
                }
                round += 1;
            }
            round
        })
    };
    let rebuilt = common::lines(&orderflow(&system, &["projection", "rebuild", "readmodels"]).await);
    stop.cancel();
    let rounds = load.await.expect("load");
    assert!(rounds > 0, "the load ran");
    let switched = &rebuilt[0];
    assert_eq!(switched["previous"].as_i64(), Some(before), "{switched}");
    assert!(switched["live"].as_i64().is_some_and(|g| g > before), "{switched}");
    assert_eq!(live(&system).await, switched["live"].as_i64().expect("live"));
    // What it built is what a rebuild from scratch builds, once the load settled.
    shop::assert_rebuild_equals_live(&system).await;

    let listed = common::lines(&orderflow(&system, &["projection", "list", "--output", "json"]).await);
    let names: Vec<&str> = listed.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["readmodels", "audit"], "{listed:#?}");

    // Ctrl-C: the rebuild stops, the live generation is as it was. (With
    // the projector stopped the request waits, so the signal surely comes
    // before the rebuild ends.)
    let serving = live(&system).await;
    system.projector.take().expect("projector").stop().await;
    let child = command(&system, &["projection", "rebuild", "readmodels"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pool = shop::pool(&system.readmodels_db).await;
    orderflow_testkit::eventually("the rebuild is requested", Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM projection.rebuild_requests WHERE finished_at IS NULL")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 1)
    })
    .await;
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill");
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("it stops")
        .expect("output");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("serves on, untouched"), "{said}");
    let error: Option<String> =
        sqlx::query_scalar("SELECT error FROM projection.rebuild_requests ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("the request");
    assert!(error.is_some_and(|e| e.contains("cancelled")));
    assert_eq!(live(&system).await, serving, "the live generation changed");

    let unknown = orderflow(&system, &["projection", "rebuild", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("readmodels, audit"));
    system.stop().await;
}
