//! Crash points for the crash tests.
//!
//! `ORDERFLOW_FAILPOINTS=consumer.after_commit,relay.after_ack` makes the
//! process abort (like `kill -9`: no destructors, no offset commit, no
//! graceful anything) the first time it reaches a named point. Unset in
//! production, where [`hit`] is a cheap environment lookup cached once.

use std::sync::OnceLock;

static ARMED: OnceLock<Vec<String>> = OnceLock::new();

/// Aborts the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    let armed = ARMED.get_or_init(|| {
        std::env::var("ORDERFLOW_FAILPOINTS")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    });
    if armed.iter().any(|a| a == name) {
        eprintln!("failpoint {name} hit: aborting the process");
        std::process::abort();
    }
}
