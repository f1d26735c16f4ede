//! Crash points and fault injection for the tests, compiled in only with
//! the `failpoints` feature (which only tests turn on).
//!
//! `OF_FAILPOINTS=consumer.after_commit,relay.after_ack` makes the process
//! abort (like `kill -9`: no destructors, no offset commit, no graceful
//! anything) the first time it reaches a named point; `name=panic` makes
//! the task that reaches it panic instead (a background task dying);
//! `name=error` makes [`fails`] answer `true` there every time (a handler
//! that cannot apply a message).

#[cfg(feature = "failpoints")]
fn armed() -> &'static [(String, String)] {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ARMED.get_or_init(|| {
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
    })
}

#[cfg(feature = "failpoints")]
fn action(name: &str) -> Option<&'static str> {
    armed().iter().find(|(point, _)| point == name).map(|(_, action)| action.as_str())
}

/// Aborts the process (or panics the task) if the failpoint `name` is armed.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    match action(name) {
        Some("error") => {}
        Some("panic") => panic!("failpoint {name} hit: panicking"),
        Some(_) => {
            eprintln!("failpoint {name} hit: aborting the process");
            std::process::abort();
        }
        None => {}
    }
}

/// Whether the failpoint `<point>.<subject>` (e.g. `handle.PlaceOrder`)
/// is armed to make the work there fail (`=error`).
#[cfg(feature = "failpoints")]
pub fn fails(point: &str, subject: &str) -> bool {
    armed().iter().any(|(name, action)| {
        action == "error" && name.strip_prefix(point).and_then(|rest| rest.strip_prefix('.')) == Some(subject)
    })
}

/// Failpoints are compiled out: nothing happens.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Failpoints are compiled out: nothing fails.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn fails(_point: &str, _subject: &str) -> bool {
    false
}
