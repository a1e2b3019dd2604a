//! Logging: structured lines on stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Stdout is kept for the one "listening on" line that scripts and tests
//! read. Log fields name sessions, sites and agents, never codes, device
//! tokens, agent API tokens, JWTs or stream tickets: a log that leaked them
//! would let anyone who reads it redeem a code or join a session. Nor the
//! content of live-mirror frames: the visitor's page stays between the
//! visitor and the agent (`serve --mirror-capture` is the explicit way to
//! record it). Requests
//! are logged by method and path only (see `access_log` and
//! `request_span` in `lib.rs`),
//! since stream tickets travel in the query and credentials in headers.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Calling it again does nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init` fails only when a subscriber is already installed, which is fine.
    // Colours only for a person at a terminal; a log file or a test harness
    // reading stderr gets plain text.
    let ansi = std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
