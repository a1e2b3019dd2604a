//! The broker binary as a separate process, for the fault and load tests:
//! killed, signalled, restarted on the same file, its memory and open files
//! read from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-assist-broker");

/// One site, `demo`, without creation limits (the tests make thousands of
/// codes from one address).
pub const SITES: &str = r#"
[[site]]
key = "demo"
name = "Demo Shop"
allowed_origins = ["http://127.0.0.1:8080"]
create_limits = { visitor_live = 0, visitor_per_minute = 0, address_live = 0, address_per_minute = 0, site_live = 0 }
"#;

/// A broker process over `dir`'s `sites.toml` and `broker.sqlite3`; killed
/// when dropped.
pub struct BrokerProcess {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes [`SITES`] into `dir` (if it has no site file yet).
pub fn prepare(dir: &Path) {
    let sites = dir.join("sites.toml");
    if !sites.exists() {
        std::fs::write(sites, SITES).expect("site file written");
    }
}

impl BrokerProcess {
    /// Starts the binary on a free port with `extra` arguments and waits
    /// for its listening line.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(dir, extra, "warn", Stdio::null())
    }

    /// Like [`BrokerProcess::start`] with every log line on
    /// (`RUST_LOG=trace`); also returns what it writes to stderr, collected
    /// as it comes.
    pub fn start_logged(dir: &Path) -> (Self, Arc<Mutex<String>>) {
        let mut broker = Self::spawn(dir, &[], "trace", Stdio::piped());
        let stderr = broker.child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        (broker, log)
    }

    fn spawn(dir: &Path, extra: &[&str], log: &str, stderr: Stdio) -> Self {
        prepare(dir);
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(dir.join("sites.toml"))
            .arg("--db")
            .arg(dir.join("broker.sqlite3"))
            .args(extra)
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("broker binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the broker prints its listening line");
        let base = line
            .strip_prefix("agent-assist-broker listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        // Scripts read the port from this line: it must be a real one.
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        assert!(!base.ends_with(":0"), "{base}");
        Self {
            child,
            base,
            dir: dir.to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Sends signal `name` (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit, failing the test after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process's resident memory, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// How many file descriptors the process has open.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("/proc/PID/fd")
            .count()
    }
}

/// Adds an agent to site `demo` with the binary's `agents add`, as an
/// operator would; returns the API token it prints once.
pub fn add_agent(dir: &Path, name: &str) -> String {
    add_agent_on(
        dir,
        name,
        &["--db".as_ref(), dir.join("broker.sqlite3").as_os_str()],
    )
}

/// [`add_agent`] on the store `store` names (`--db FILE`, `--store URL`).
pub fn add_agent_on(dir: &Path, name: &str, store: &[&std::ffi::OsStr]) -> String {
    prepare(dir);
    let out = Command::new(BIN)
        .args([
            "agents", "add", "--site", "demo", "--name", name, "--config",
        ])
        .arg(dir.join("sites.toml"))
        .args(store)
        .output()
        .expect("agents add runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap_or_else(|| panic!("no token= line in {text:?}"))
        .to_owned()
}
