//! `serve --mirror-capture FILE`: every frame the mirror sockets receive,
//! appended to a file, for privacy audits (what did a visitor's browser
//! actually send?) and for tests.
//!
//! The file holds what the frames hold: page content, form values the
//! visitor's browser let through, and the credentials of the hellos. It is
//! opened for appending, created with the process's umask; keep it safe.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// An open capture file.
#[derive(Debug)]
pub struct Capture {
    path: PathBuf,
    // A std mutex: a frame is written whole while it is held (so frames from
    // different sockets never interleave) and it is never held across an
    // await. The write blocks the task for as long as the disk takes, which
    // is acceptable for an audit tool that is off in normal operation.
    file: Mutex<File>,
}

impl Capture {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `payload` as received, then a newline, and flushes.
    pub fn record(&self, payload: &[u8]) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        // The frame and its newline in one write.
        let mut line = Vec::with_capacity(payload.len() + 1);
        line.extend_from_slice(payload);
        line.push(b'\n');
        if let Err(e) = file.write_all(&line).and_then(|()| file.flush()) {
            tracing::error!(
                error = %e, path = %self.path.display(),
                "writing the mirror capture failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_appended_one_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capture.log");
        std::fs::write(&path, "earlier\n").unwrap();
        let capture = Capture::open(&path).unwrap();
        capture.record(br#"{"t":"hello","token":"x"}"#);
        capture.record(&[0, 159, 146, 150]);
        let written = std::fs::read(&path).unwrap();
        let mut want = b"earlier\n{\"t\":\"hello\",\"token\":\"x\"}\n".to_vec();
        want.extend_from_slice(&[0, 159, 146, 150, b'\n']);
        assert_eq!(written, want);
    }
}
