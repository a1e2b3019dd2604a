//! A Redis server of the test's own, for the Redis backend: Debian's
//! `redis-server` (which `cargo xtask test` installs), on a unix socket in
//! the test's folder (no port to race for) or on a loopback port, with
//! nothing written to disk. It is stopped when dropped, or when the test
//! process ends: a shell beside it waits for its stdin, a pipe from the
//! test, to close, and then stops it.
//!
//! `AGENT_ASSIST_TEST_STORE=redis` runs the API suite on Redis: every
//! broker [`super::Broker`] starts is then over a server of this kind,
//! one per database path, so that a broker restarted "on the same file"
//! finds its data again.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The suite runs on Redis (else on SQLite).
pub fn enabled() -> bool {
    std::env::var("AGENT_ASSIST_TEST_STORE").is_ok_and(|v| v == "redis")
}

/// Where a Redis server listens.
#[derive(Debug, Clone)]
enum Listen {
    Socket(PathBuf),
    Port(u16),
}

/// A running `redis-server`.
pub struct RedisServer {
    /// The shell watching the pipe, and the pipe.
    child: Mutex<Option<(Child, ChildStdin)>>,
    listen: Listen,
    /// Where it keeps an append-only file (fsync on every write), if it
    /// keeps one.
    persist: Option<PathBuf>,
}

impl RedisServer {
    /// A server on a unix socket in `dir`.
    pub fn start_in(dir: &Path) -> Self {
        let server = RedisServer {
            child: Mutex::new(None),
            listen: Listen::Socket(dir.join("redis.sock")),
            persist: None,
        };
        server.resume();
        server
    }

    /// A server on a free loopback port that keeps what it acknowledged in
    /// `dir` (append-only file, fsync on every write), so that it has it
    /// again after [`Self::stop`] and [`Self::resume`].
    pub fn start_tcp(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = RedisServer {
            child: Mutex::new(None),
            listen: Listen::Port(port),
            persist: Some(dir.to_owned()),
        };
        server.resume();
        server
    }

    /// The URL a broker connects with.
    pub fn url(&self) -> String {
        match &self.listen {
            Listen::Socket(path) => format!("redis+unix://{}", path.display()),
            Listen::Port(port) => format!("redis://127.0.0.1:{port}"),
        }
    }

    /// Stops the server (its data is gone: nothing is saved).
    pub fn stop(&self) {
        if let Some((mut child, pipe)) = self.child.lock().unwrap().take() {
            drop(pipe);
            let _ = child.wait();
        }
        if let Listen::Socket(path) = &self.listen {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Starts the server again at the same place (after [`Self::stop`]).
    pub fn resume(&self) {
        let mut args: Vec<String> = ["--save", "", "--databases", "1"].map(str::to_owned).into();
        match &self.persist {
            None => args.extend(["--appendonly".into(), "no".into()]),
            Some(dir) => {
                args.extend(
                    ["--appendonly", "yes", "--appendfsync", "always", "--dir"].map(str::to_owned),
                );
                args.push(dir.display().to_string());
            }
        }
        match &self.listen {
            Listen::Socket(path) => {
                args.extend(["--port".into(), "0".into(), "--unixsocket".into()]);
                args.push(path.display().to_string());
            }
            Listen::Port(port) => {
                args.extend(["--bind".into(), "127.0.0.1".into(), "--port".into()]);
                args.push(port.to_string());
            }
        }
        // `redis-server "$@" &`, then wait for the pipe to close: the test
        // stopped the server, or ended.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(
                "command -v redis-server >/dev/null || exit 127; \
                 redis-server \"$@\" & pid=$!; cat >/dev/null; kill $pid; wait $pid",
            )
            .arg("redis")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sh starts");
        let pipe = child.stdin.take().expect("piped stdin");
        *self.child.lock().unwrap() = Some((child, pipe));
        self.wait_ready();
    }

    /// Waits until the server answers PING.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.ping() {
                return;
            }
            if let Some((child, _)) = self.child.lock().unwrap().as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "redis-server did not start ({status}); `cargo xtask test` installs \
                         it (Debian's redis-server package)"
                    );
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn ping(&self) -> bool {
        let answer = |stream: &mut dyn ReadWrite| -> bool {
            if stream.write_all(b"PING\r\n").is_err() {
                return false;
            }
            let mut buf = [0u8; 7];
            stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
        };
        match &self.listen {
            Listen::Socket(path) => UnixStream::connect(path).is_ok_and(|mut s| answer(&mut s)),
            Listen::Port(port) => {
                std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok_and(|mut s| answer(&mut s))
            }
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server for the database at `db` (see the module's docs), started on
/// first use; it lives as long as the test.
pub fn server_for(db: &Path) -> Arc<RedisServer> {
    static SERVERS: OnceLock<Mutex<HashMap<PathBuf, Arc<RedisServer>>>> = OnceLock::new();
    let mut servers = SERVERS.get_or_init(Default::default).lock().unwrap();
    let dir = db.parent().expect("the database is in a folder");
    Arc::clone(
        servers
            .entry(db.to_owned())
            .or_insert_with(|| Arc::new(RedisServer::start_in(dir))),
    )
}
