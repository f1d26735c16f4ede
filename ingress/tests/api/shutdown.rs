//! A stopping ingress does not hold its clients or its exit: a request
//! waiting for an outcome (`Prefer: wait`) is answered at once with what a
//! wait that runs out answers (202 and the status URL: the command is on
//! the bus), and the process exits promptly after SIGTERM.

use std::time::{Duration, Instant};

use orderflow_harness::system::{binary, free_addr, spawn_process};
use serde_json::json;

use crate::{PASSWORD, System};

#[tokio::test]
async fn sigterm_answers_the_waiting_requests_and_the_process_exits_promptly() {
    // No user service: a registration stays pending for as long as asked.
    let system = System::start_without_user_service().await;
    let mut settings = system.ingress_settings();
    (settings.http.addr, settings.ops.addr) = (free_addr(), free_addr());
    settings.monitor.interval_secs = 1; // its looks run while it stops
    let api = format!("http://{}", settings.http.addr);
    let ops = settings.ops.addr.clone();
    let mut ingress = spawn_process(&binary("ingress"), &settings, &ops, &[]).await;

    let waiting: Vec<_> = (0..3)
        .map(|i| {
            let (http, api) = (system.http.clone(), api.clone());
            tokio::spawn(async move {
                let body = json!({"email": format!("wait{i}@example.com"), "password": PASSWORD, "first_name": "W", "last_name": "X"});
                let response =
                    http.post(format!("{api}/api/v1/users")).header("prefer", "wait=30").json(&body).send().await;
                (Instant::now(), response.map(|r| r.status().as_u16()))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await; // accepted, and waiting
    let asked = Instant::now();
    let status = ingress.terminate(Duration::from_secs(8)).await;
    let stopped = asked.elapsed();
    assert!(status.success(), "the ingress stopped cleanly: {status:?}");
    assert!(stopped < Duration::from_secs(5), "the ingress took {stopped:?} to stop");
    for request in waiting {
        let (at, status) = request.await.expect("request task");
        assert_eq!(status.expect("an answer, not a dropped connection"), 202, "a pending command is accepted");
        assert!(at.duration_since(asked) < Duration::from_secs(3), "answered {:?} after SIGTERM", at - asked);
    }
    system.stop().await;
}
