//! Crash points and fault injection for the tests, compiled in only with
//! the `failpoints` feature (which only tests turn on).
//!
//! `OF_FAILPOINTS=consumer.after_commit,relay.after_ack` makes the process
//! abort (like `kill -9`: no destructors, no offset commit, no graceful
//! anything) the first time it reaches a named point; `name=panic` makes
//! the task that reaches it panic instead (a background task dying).

/// Aborts the process (or panics the task) if the failpoint `name` is armed.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        std::env::var("OF_FAILPOINTS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| match s.split_once('=') {
                        Some((point, action)) => (point.to_owned(), action.to_owned()),
                        None => (s.to_owned(), "abort".to_owned()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    match armed.iter().find(|(point, _)| point == name).map(|(_, action)| action.as_str()) {
        Some("panic") => panic!("failpoint {name} hit: panicking"),
        Some(_) => {
            eprintln!("failpoint {name} hit: aborting the process");
            std::process::abort();
        }
        None => {}
    }
}

/// Failpoints are compiled out: nothing happens.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
