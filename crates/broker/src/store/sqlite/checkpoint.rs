//! WAL checkpoints off the request path, with a bound.
//!
//! SQLite's automatic checkpoint runs in the connection that committed,
//! right after its commit: the request whose write crossed the threshold
//! waited for the WAL's frames to be copied into the database and for two
//! `fsync`s, 5–10 ms on this kind of machine, about one request in a
//! hundred. Here the write connection's WAL hook only looks at the WAL's
//! size after each commit and wakes a [`Checkpointer`] thread, which runs a
//! `PASSIVE` checkpoint on a connection of its own while writes go on.
//!
//! A passive checkpoint never blocks the writer, so under steady writes it
//! can fall behind (or, being always a little behind, never let the WAL
//! start over from its beginning). The bound: once the WAL holds
//! [`WalLimits::max_pages`] frames, the writer checkpoints itself, in the
//! hook, before it takes its next batch — what SQLite does at every
//! threshold, but only this rarely, and with most of the copying already
//! done by the thread. The WAL thus never grows past `max_pages` plus one
//! batch's frames.
//!
//! Durability is the same as with the automatic checkpoint: commits go to
//! the WAL exactly as before (`synchronous` is untouched), and a checkpoint
//! only moves committed frames into the database file.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use crate::store::StoreError;

/// When checkpoints happen, in WAL frames (one frame per page written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalLimits {
    /// The thread is woken once this many frames have been added since its
    /// last checkpoint (SQLite's own threshold is 1,000).
    pub checkpoint_at: u32,
    /// From this size on, the writer checkpoints itself after its commit.
    pub max_pages: u32,
}

impl Default for WalLimits {
    fn default() -> Self {
        // 1,000 frames of 4 KiB pages is SQLite's default. The bound is
        // forty times that (about 160 MB of WAL), a size a passive
        // checkpoint only lets the WAL reach under writes that never
        // pause. Each time it is reached the writer stops for a
        // checkpoint's two fsyncs (7–22 ms measured on the bench machine),
        // so it is set to be reached rarely: at 5,000 codes a second,
        // about 1.2 frames each, once every seven seconds or so.
        Self {
            checkpoint_at: 1_000,
            max_pages: 40_000,
        }
    }
}

/// What the WAL hook and the thread share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the thread (a checkpoint is wanted, or it must stop), and
    /// wakes a writer waiting for the thread's checkpoint to end.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// WAL frames after the writer's latest commit.
    pages: u32,
    /// Frames the thread's latest checkpoint had copied.
    copied: u32,
    wanted: bool,
    running: bool,
    stop: bool,
    /// Checkpoints run by the thread, and by the writer at the bound.
    background: u64,
    inline: u64,
}

/// How many checkpoints ran where (for tests and the bench's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckpointCounts {
    pub background: u64,
    pub inline: u64,
}

/// The checkpoint thread of one database file. Dropping it stops the thread
/// (a checkpoint under way finishes first).
pub struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Takes over checkpointing for `writer` (a connection in WAL mode):
    /// turns its automatic checkpoint off and installs the WAL hook, and
    /// starts the thread on `own`, a second connection to the same file.
    pub fn start(
        writer: &mut Connection,
        own: Connection,
        limits: WalLimits,
    ) -> Result<Self, StoreError> {
        let backend = |e: rusqlite::Error| StoreError::Backend(Box::new(e));
        let shared = Arc::new(Shared::default());
        let hook = Arc::clone(&shared);
        // Installing a WAL hook replaces SQLite's automatic checkpoint
        // (which is itself a WAL hook), so nothing checkpoints inline but
        // the bound below.
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
                let pages = u32::try_from(pages).unwrap_or(0);
                if pages >= limits.max_pages {
                    hook.checkpoint_inline(wal);
                } else {
                    hook.note(pages, limits);
                }
                // Never an error: the commit that called the hook has
                // happened, and an error here would make it look failed.
                Ok(())
            }))
            .map_err(backend)?;
        let run = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run.serve(&own))
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// How many checkpoints have run so far, and where.
    pub fn counts(&self) -> CheckpointCounts {
        let s = self.shared.lock();
        CheckpointCounts {
            background: s.background,
            inline: s.inline,
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few counters and flags, consistent after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a commit below the bound: wakes the thread once enough new
    /// frames have piled up since its last checkpoint.
    fn note(&self, pages: u32, limits: WalLimits) {
        let mut s = self.lock();
        if pages < s.copied {
            // The WAL started over from its beginning.
            s.copied = 0;
        }
        s.pages = pages;
        if !s.wanted && pages >= s.copied.saturating_add(limits.checkpoint_at) {
            s.wanted = true;
            self.wake.notify_all();
        }
    }

    /// At the bound, in the writer's hook: checkpoints on the writer's own
    /// connection. If the thread is checkpointing right now (a passive
    /// checkpoint is then refused as busy), waits for it and tries again.
    fn checkpoint_inline(&self, wal: &mut rusqlite::hooks::Wal) {
        for _ in 0..3 {
            match wal.checkpoint() {
                Ok(()) => {
                    let mut s = self.lock();
                    s.inline += 1;
                    s.copied = 0;
                    return;
                }
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                    let s = self.lock();
                    // Bounded, in case the thread is stuck behind a reader.
                    let _ = self
                        .wake
                        .wait_timeout_while(s, Duration::from_secs(1), |s| s.running);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint at the size bound failed");
                    return;
                }
            }
        }
    }

    /// The thread: a passive checkpoint each time one is wanted.
    fn serve(&self, conn: &Connection) {
        loop {
            {
                let mut s = self.lock();
                while !s.wanted && !s.stop {
                    s = self.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
                if s.stop {
                    return;
                }
                s.wanted = false;
                s.running = true;
            }
            let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(2));
            let mut s = self.lock();
            s.running = false;
            match done {
                Ok(copied) => {
                    s.background += 1;
                    s.copied = u32::try_from(copied).unwrap_or(0);
                }
                Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
            }
            drop(s);
            // A writer may be waiting at the bound for this checkpoint.
            self.wake.notify_all();
        }
    }
}
