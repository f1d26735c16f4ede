//! What the CLI's tests share: running the real binary against a test
//! system, and reading its JSON lines. (Each test binary uses part of it.)
#![allow(dead_code)]

use std::process::Output;

use orderflow_harness::system::System;
use serde_json::Value;

/// `orderflow ARGS` joined to `system` (its broker, prefix and registry).
pub async fn orderflow(system: &System, args: &[&str]) -> Output {
    command(system, args).output().await.expect("run orderflow")
}

/// The command [`orderflow`] runs, for a test that adds to it.
pub fn command(system: &System, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"));
    command
        .args(args)
        .env("ORDERFLOW_KAFKA__BROKERS", &system.kafka.brokers)
        .env("ORDERFLOW_KAFKA__TOPIC_PREFIX", &system.kafka.topic_prefix)
        .env("ORDERFLOW_REGISTRY__URL", &system.registry.url);
    command
}

/// Its standard output, one JSON value a line; it must have succeeded.
pub fn lines(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "orderflow failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect()
}
