//! The session state machine, in one place.
//!
//! [`next`] is the only definition of which state changes exist. The store
//! calls it inside the transaction that writes the change, so a transition
//! that is not in this table can never reach the database, whichever route
//! (or timer, or sweep) asked for it. It is a pure function: no clock, no
//! I/O, so the whole table is tested below, state by event.

use agent_assist_protocol::{EndReason, SessionState};

/// Something that happens to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// An agent of the site entered the live code.
    Redeem,
    /// The visitor allowed the agent in.
    Allow,
    /// The visitor refused the agent.
    Deny,
    /// The visitor withdrew the code or the consent prompt (Cancel, Esc, close).
    DeviceCancel,
    /// The visitor pressed End.
    DeviceEnd,
    /// The agent pressed End.
    AgentEnd,
    /// The code's lifetime ran out before an agent redeemed it.
    CodeExpired,
    /// The visitor did not answer the consent prompt in time.
    ConsentTimeout,
}

impl Event {
    /// Every event, for exhaustive tests.
    pub const ALL: [Event; 8] = [
        Event::Redeem,
        Event::Allow,
        Event::Deny,
        Event::DeviceCancel,
        Event::DeviceEnd,
        Event::AgentEnd,
        Event::CodeExpired,
        Event::ConsentTimeout,
    ];
}

/// `event` cannot happen to a session in state `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed in state {from:?}")]
pub struct IllegalTransition {
    pub from: SessionState,
    pub event: Event,
}

/// The state a session in `state` moves to when `event` happens, with the
/// end reason when that state is `ended`.
pub fn next(
    state: SessionState,
    event: Event,
) -> Result<(SessionState, Option<EndReason>), IllegalTransition> {
    use EndReason as R;
    use Event as E;
    use SessionState as S;
    let ended = |reason| Ok((S::Ended, Some(reason)));
    match (state, event) {
        (S::Pending, E::Redeem) => Ok((S::Authorizing, None)),
        (S::Pending, E::DeviceCancel | E::DeviceEnd) => ended(R::DeviceCancelled),
        (S::Pending, E::CodeExpired) => ended(R::PendingTimeout),

        (S::Authorizing, E::Allow) => Ok((S::Active, None)),
        (S::Authorizing, E::Deny) => ended(R::ConsentDenied),
        (S::Authorizing, E::ConsentTimeout) => ended(R::AuthorizingTimeout),
        // Before consent the visitor has not let anyone in, so ending is
        // the same as withdrawing: the reason says "cancelled", not "ended".
        (S::Authorizing, E::DeviceCancel | E::DeviceEnd) => ended(R::DeviceCancelled),
        (S::Authorizing, E::AgentEnd) => ended(R::AgentEnded),

        (S::Active, E::DeviceEnd) => ended(R::DeviceEnded),
        (S::Active, E::AgentEnd) => ended(R::AgentEnded),

        (from, event) => Err(IllegalTransition { from, event }),
    }
}

/// The timeout that is due for a session at `now_ms`, if any: its code
/// expired while pending, or its consent prompt ran out while authorizing.
/// Timeouts are applied whenever a session is touched and by the sweep, so
/// every reader sees the same answer whether or not a timer already fired.
pub fn due_timeout(
    state: SessionState,
    expires_at: u64,
    consent_expires_at: Option<u64>,
    now_ms: u64,
) -> Option<Event> {
    match state {
        SessionState::Pending if expires_at <= now_ms => Some(Event::CodeExpired),
        SessionState::Authorizing if consent_expires_at.is_some_and(|t| t <= now_ms) => {
            Some(Event::ConsentTimeout)
        }
        _ => None,
    }
}

/// A session's state and end reason as of `now_ms`, with a timeout that is
/// due but not yet applied shown as applied (as every other reader will
/// see it), for reads that do not write.
pub fn as_of(
    state: SessionState,
    end_reason: Option<EndReason>,
    expires_at: u64,
    consent_expires_at: Option<u64>,
    now_ms: u64,
) -> (SessionState, Option<EndReason>) {
    due_timeout(state, expires_at, consent_expires_at, now_ms)
        .and_then(|event| next(state, event).ok())
        .unwrap_or((state, end_reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_assist_protocol::{EndReason as R, SessionState as S};

    const STATES: [S; 4] = [S::Pending, S::Authorizing, S::Active, S::Ended];

    /// The whole table as the design states it; anything not listed is illegal.
    fn expected(state: S, event: Event) -> Option<(S, Option<R>)> {
        use Event as E;
        Some(match (state, event) {
            (S::Pending, E::Redeem) => (S::Authorizing, None),
            (S::Pending, E::DeviceCancel) => (S::Ended, Some(R::DeviceCancelled)),
            (S::Pending, E::CodeExpired) => (S::Ended, Some(R::PendingTimeout)),
            (S::Pending, E::DeviceEnd) => (S::Ended, Some(R::DeviceCancelled)),
            (S::Authorizing, E::Allow) => (S::Active, None),
            (S::Authorizing, E::Deny) => (S::Ended, Some(R::ConsentDenied)),
            (S::Authorizing, E::ConsentTimeout) => (S::Ended, Some(R::AuthorizingTimeout)),
            (S::Authorizing, E::DeviceCancel) => (S::Ended, Some(R::DeviceCancelled)),
            (S::Authorizing, E::DeviceEnd) => (S::Ended, Some(R::DeviceCancelled)),
            (S::Authorizing, E::AgentEnd) => (S::Ended, Some(R::AgentEnded)),
            (S::Active, E::DeviceEnd) => (S::Ended, Some(R::DeviceEnded)),
            (S::Active, E::AgentEnd) => (S::Ended, Some(R::AgentEnded)),
            _ => return None,
        })
    }

    #[test]
    fn every_state_and_event_follows_the_table() {
        let mut legal = 0;
        for state in STATES {
            for event in Event::ALL {
                match (next(state, event), expected(state, event)) {
                    (Ok(got), Some(want)) => {
                        assert_eq!(got, want, "{state:?} + {event:?}");
                        legal += 1;
                    }
                    (Err(e), None) => {
                        assert_eq!(e, IllegalTransition { from: state, event });
                    }
                    (got, want) => panic!("{state:?} + {event:?}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(legal, 12, "the design lists twelve transitions");
    }

    #[test]
    fn an_ended_session_never_changes() {
        for event in Event::ALL {
            assert!(next(S::Ended, event).is_err(), "{event:?}");
        }
    }

    #[test]
    fn ended_comes_with_a_reason_and_nothing_else_does() {
        for state in STATES {
            for event in Event::ALL {
                if let Ok((to, reason)) = next(state, event) {
                    assert_eq!(to == S::Ended, reason.is_some(), "{state:?} + {event:?}");
                }
            }
        }
    }

    #[test]
    fn timeouts_are_due_at_their_deadline_and_not_before() {
        assert_eq!(due_timeout(S::Pending, 10, None, 9), None);
        assert_eq!(
            due_timeout(S::Pending, 10, None, 10),
            Some(Event::CodeExpired)
        );
        assert_eq!(due_timeout(S::Authorizing, 10, Some(20), 19), None);
        assert_eq!(
            due_timeout(S::Authorizing, 10, Some(20), 20),
            Some(Event::ConsentTimeout)
        );
        // The code's expiry no longer matters once it was redeemed.
        assert_eq!(due_timeout(S::Authorizing, 10, None, 1_000), None);
        assert_eq!(due_timeout(S::Active, 10, Some(20), 1_000), None);
        assert_eq!(due_timeout(S::Ended, 10, Some(20), 1_000), None);
    }
}
