//! Timeouts that are pushed, not only noticed: a timer per consent prompt,
//! and a periodic sweep.
//!
//! Every timeout is also applied lazily whenever a session is touched (see
//! [`crate::lifecycle::due_timeout`]), so these only decide how soon the
//! parties *hear* about it. The per-session timer makes an unanswered prompt
//! end on time and reach both event streams at once; the sweep is the
//! backstop for what no timer watches (expired codes, and prompts that were
//! open when the broker restarted).

use std::time::Duration;

use crate::AppState;

/// How often the sweep runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Ends the session (`authorizing_timeout`) at `deadline_ms` by the state's
/// clock, unless it has moved on by then; stops early when the broker shuts
/// down.
pub fn arm_consent_timer(state: &AppState, session_id: String, deadline_ms: u64) {
    let state = state.clone();
    let closed = state.closed();
    tokio::spawn(async move {
        tokio::select! {
            () = closed => {}
            () = state.clock.sleep_until(deadline_ms) => {
                // Reading the session applies the timeout if it is still
                // due, and publishes it; otherwise it changes nothing.
                if let Err(e) = state.session(&session_id).await {
                    tracing::error!(error = %e, %session_id, "consent timeout failed");
                }
            }
        }
    });
}

/// Runs [`AppState::sweep`] every [`SWEEP_INTERVAL`], the first time one
/// interval after the start, until the broker shuts down.
pub async fn sweep_periodically(state: AppState) {
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + SWEEP_INTERVAL, SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closed = state.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            () = &mut closed => return,
            _ = tick.tick() => {}
        }
        match state.sweep().await {
            Ok(events) if events.is_empty() => {}
            Ok(events) => tracing::info!(ended = events.len(), "timed-out sessions swept"),
            Err(e) => tracing::error!(error = %e, "sweeping timed-out sessions failed"),
        }
    }
}
