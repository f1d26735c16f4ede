//! Given/when/then for a service's rules, without I/O (the idea of cqrs-es's
//! `TestFramework`, for this kit's [`Decided`]): given the state a rule
//! loads, when an input is decided, then these events (and this state), or
//! this refusal, or nothing, or "not yet".
//!
//! ```ignore
//! given(Some(confirmed_order))
//!     .when(|order| rules::command(order, &id, Status::Shipped, timing))
//!     .then_emits(&["OrderShipped"]);
//! ```

use std::fmt::Debug;

use orderflow_contracts::Reason;

use crate::{Decided, Decision, DomainError, Emit};

/// The state before an input is decided.
#[derive(Debug)]
#[must_use = "a given needs a when"]
pub struct Given<S>(S);

/// Starts a scenario from `state` (what the rule's service would load).
pub fn given<S>(state: S) -> Given<S> {
    Given(state)
}

impl<S> Given<S> {
    /// Decides an input: `rule` is the pure decision, called with the state.
    pub fn when<T>(self, rule: impl FnOnce(S) -> Decided<T>) -> Then<T> {
        Then(rule(self.0))
    }
}

/// What a rule decided, to assert on.
#[derive(Debug)]
#[must_use = "a when needs a then"]
pub struct Then<T>(Decided<T>);

impl<T: Debug> Then<T> {
    /// Asserts the input changed the state and published exactly the events
    /// `names` (in order); returns the new state and the events for closer
    /// looks.
    #[track_caller]
    pub fn then_emits(self, names: &[&str]) -> (T, Vec<Emit>) {
        match self.0 {
            Ok(Decision::Changed { state, events }) => {
                let emitted: Vec<&str> = events.iter().map(|e| e.message.name()).collect();
                assert_eq!(emitted, names, "the events published (new state: {state:?})");
                (state, events)
            }
            other => panic!("expected a change publishing {names:?}, got {other:?}"),
        }
    }

    /// Asserts the input was refused for `reason`; returns the message the
    /// client would read.
    #[track_caller]
    pub fn then_refused(self, reason: Reason) -> String {
        match self.0 {
            Err(DomainError::Refused(refusal)) => {
                assert_eq!(refusal.reason, reason, "the reason of the refusal ({})", refusal.message);
                refusal.message
            }
            other => panic!("expected a refusal {reason}, got {other:?}"),
        }
    }

    /// Asserts the input changed and published nothing; returns why.
    #[track_caller]
    pub fn then_unchanged(self) -> &'static str {
        match self.0 {
            Ok(Decision::Unchanged(why)) => why,
            other => panic!("expected no change, got {other:?}"),
        }
    }

    /// Asserts the input cannot be decided yet (its key waits and is
    /// retried); returns why.
    #[track_caller]
    pub fn then_waits(self) -> String {
        match self.0 {
            Err(DomainError::NotYet(why)) => why,
            other => panic!("expected \"not yet\", got {other:?}"),
        }
    }
}
