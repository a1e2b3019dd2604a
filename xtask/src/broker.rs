//! A broker process for the xtask steps that need one running (the bench,
//! the schema run): started on a free loopback port over a given site file
//! and database, its address read from the "listening on" line, its log in
//! a file, stopped by its pid (SIGTERM: it drains and exits) and killed if
//! the step ends any other way, so it never outlives the step.

use crate::{exec, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

pub struct Broker {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    // Held so the broker's stdout stays open for as long as it runs.
    _stdout: BufReader<ChildStdout>,
}

impl Broker {
    /// Runs `bin serve` with `config` and `db`, logging to `log`.
    pub fn start(bin: &Path, config: &Path, db: &Path, log: &Path) -> Result<Self> {
        Self::start_on(bin, config, &["--db".as_ref(), db.as_os_str()], log)
    }

    /// Runs `bin serve` with `config` and `store` (`--db FILE` or `--store
    /// URL`), logging to `log`.
    pub fn start_on(
        bin: &Path,
        config: &Path,
        store: &[&std::ffi::OsStr],
        log: &Path,
    ) -> Result<Self> {
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(store)
            // Port 0: the broker picks a free one and prints it.
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", bin.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no broker stdout")?);
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        match line
            .trim()
            .strip_prefix("agent-assist-broker listening on ")
        {
            Some(url) => Ok(Self {
                url: url.to_owned(),
                child,
                _stdout: stdout,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the broker did not start; see {}", log.display()))
            }
        }
    }

    /// Resident memory now, in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .map_err(|e| format!("reading the broker's /proc status: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| "no VmRSS line in the broker's /proc status".into())
    }

    /// SIGTERM to the broker's pid (it drains and exits), then waits.
    pub fn stop(mut self) -> Result {
        let pid = self.child.id().to_string();
        exec(Command::new("kill").args(["-TERM", &pid]))?;
        self.child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Only if `stop` was not reached (an error on the way).
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
