//! One real `strata` process per test: a free port on 127.0.0.1, a private data dir, its
//! output captured to a file (printed when the test fails), readiness meaning "answers
//! ApiVersions", and the ways a broker stops: SIGTERM, kill -9, drop.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::tools::{strata_bin, tail, wait_with_deadline};
use crate::wire::probe_api_versions;

/// How long a broker may take to answer its first ApiVersions.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a broker may take to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or stopped, restartable) strata process owned by one test.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    overrides: Vec<(String, String)>,
    dir: TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
}

impl Broker {
    /// Starts a broker with the default configuration.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with extra `--override key=value` settings (after the harness's own
    /// `listeners` and `log.dirs`, so a test may replace those too).
    pub fn start_with(overrides: &[(&str, &str)]) -> Broker {
        let mut broker = Broker::spawn_on(free_port(), overrides);
        broker.wait_ready();
        broker
    }

    /// `127.0.0.1:<port>`, for clients' bootstrap.servers.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The listener's socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's `log.dirs`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A scratch directory private to this test (removed with the broker).
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file holding the broker's stdout and stderr (all runs, appended).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the broker printed so far.
    pub fn log_contents(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Where the running broker's /metrics and health endpoint listens, from its
    /// "metrics listening on http://ADDR" log line (the latest run's). `None` when the
    /// endpoint is disabled or has not been bound yet.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        const MARK: &str = "metrics listening on http://";
        let log = self.log_contents();
        let run_start = log
            .rfind("===== strata-tests: starting broker")
            .unwrap_or(0);
        let line = log.get(run_start..)?;
        let at = line.find(MARK)? + MARK.len();
        let addr: String = line
            .get(at..)?
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
            .collect();
        addr.parse().ok()
    }

    /// The OS process id of the running broker. Panics when it is not running.
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("the broker is not running"),
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Panics (with the broker log) unless the process is still running.
    pub fn assert_running(&mut self, context: &str) {
        if !self.is_running() {
            panic!(
                "the broker is no longer running ({context})\n--- broker log ---\n{}",
                tail(self.log_contents().as_bytes())
            );
        }
    }

    /// Resident set size of the broker in KiB, from /proc/<pid>/status VmRSS.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The largest resident set size the broker has had, in KiB (VmHWM): catches a buffer
    /// that was allocated and freed between two looks at VmRSS.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status_path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&status_path)
            .unwrap_or_else(|e| panic!("cannot read {status_path}: {e}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} line in {status_path}"))
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit; panics if it does not come.
    pub fn sigterm_and_wait(&mut self) -> ExitStatus {
        let pid = self.pid();
        let pid = libc::pid_t::try_from(pid)
            .unwrap_or_else(|_| panic!("pid {pid} does not fit in pid_t"));
        // SAFETY: kill(2) only sends a signal; `pid` is our own child, which has not been
        // reaped yet (we still hold its Child), so the pid cannot have been reused.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        if rc != 0 {
            panic!("kill(SIGTERM) failed: {}", std::io::Error::last_os_error());
        }
        let Some(mut child) = self.child.take() else {
            panic!("the broker is not running");
        };
        match wait_with_deadline(&mut child, SHUTDOWN_TIMEOUT) {
            Some(status) => status,
            None => panic!(
                "the broker did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM (killed it)\n\
                 --- broker log ---\n{}",
                tail(self.log_contents().as_bytes())
            ),
        }
    }

    /// SIGKILL, then reap. The data dir stays for `restart`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a broker on `port` without waiting for it to serve: members of a cluster only
    /// serve once a quorum of them is up, so a test spawns them all, then waits for each
    /// ([`Broker::wait_until_serving`]). `overrides` come after the harness's own.
    pub fn spawn_on(port: u16, overrides: &[(&str, &str)]) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("strata-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for the broker: {e}"));
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("broker.log");
        let mut broker = Broker {
            child: None,
            port,
            overrides: overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dir,
            data_dir,
            log_path,
        };
        broker.spawn();
        broker
    }

    /// Waits until a broker from [`Broker::spawn_on`] (or [`Broker::respawn`]) serves.
    pub fn wait_until_serving(&mut self) {
        self.wait_ready();
    }

    /// Starts a stopped broker again without waiting for it to serve.
    pub fn respawn(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts the broker again on the same port and data dir and waits until it serves.
    /// Stop it first (`sigterm_and_wait` or `kill9`); a still-running broker is killed.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_and_wait_ready();
    }

    fn spawn_and_wait_ready(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    fn spawn(&mut self) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log_path.display()));
        let _ = writeln!(
            log,
            "===== strata-tests: starting broker on port {} =====",
            self.port
        );
        let stderr = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone the log handle: {e}"));
        let mut cmd = Command::new(strata_bin());
        cmd.arg("--override")
            .arg(format!("listeners=PLAINTEXT://{}", self.bootstrap()))
            .arg("--override")
            .arg(format!("log.dirs={}", self.data_dir.display()))
            // Many test brokers share this machine: the metrics endpoint takes a free port
            // (see `metrics_addr`) instead of the default 9308.
            .arg("--override")
            .arg("metrics.listener=http://127.0.0.1:0");
        for (key, value) in &self.overrides {
            cmd.arg("--override").arg(format!("{key}={value}"));
        }
        cmd.current_dir(self.dir.path())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        self.child = Some(child);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "the broker exited with {status} before serving\n--- broker log ---\n{}",
                        tail(self.log_contents().as_bytes())
                    );
                }
            }
            let last_error = match probe_api_versions(self.addr(), Duration::from_secs(2)) {
                Ok(_) => return,
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "the broker did not answer ApiVersions on {} within {STARTUP_TIMEOUT:?} \
                     (last error: {last_error})\n--- broker log ---\n{}",
                    self.bootstrap(),
                    tail(self.log_contents().as_bytes())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- strata log ({}) ---\n{}\n--- end of strata log ---",
                self.log_path.display(),
                tail(self.log_contents().as_bytes())
            );
        }
    }
}

/// A port that was free a moment ago, below the ephemeral range where it can be (see below).
pub fn free_port() -> u16 {
    // Below the kernel's ephemeral range: a port from that range, free when we look, can be
    // handed to any `bind(:0)` or outgoing connection before the broker binds it; a restarted
    // broker's own metrics endpoint (bound first, on port 0) once took its Kafka port so.
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOWEST: u16 = 10_000;
    if first_ephemeral > LOWEST + 1_000 {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let span = u32::from(first_ephemeral - LOWEST);
        // Spread test processes over the range (pid), then walk it.
        let start = std::process::id().wrapping_mul(2_654_435_761) % span;
        for _ in 0..span {
            let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let candidate = LOWEST + u16::try_from((start + step * 7) % span).unwrap_or(0);
            if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
                return candidate;
            }
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind an ephemeral port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the ephemeral port: {e}"))
        .port()
}

/// Runs strata with `args` (no harness overrides) and returns once it exits, killing it
/// after `timeout`. For config-contract tests of processes expected to refuse to start.
pub fn run_strata_to_exit(args: &[&str], cwd: &Path, timeout: Duration) -> std::process::Output {
    let mut cmd = Command::new(strata_bin());
    cmd.args(args).current_dir(cwd);
    crate::tools::run_with_deadline(cmd, None, timeout)
}

/// Creates `path` with `contents` (e.g. a server.properties for `--config`).
pub fn write_file(path: &Path, contents: &str) {
    let mut file =
        File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    file.write_all(contents.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

#[cfg(test)]
mod port_tests {
    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_bindable() {
        let first_ephemeral: u16 =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                .ok()
                .and_then(|range| range.split_whitespace().next()?.parse().ok())
                .unwrap_or(32768);
        for _ in 0..20 {
            let port = super::free_port();
            assert!(
                first_ephemeral <= 11_000 || port < first_ephemeral,
                "port {port} is in the ephemeral range (from {first_ephemeral})"
            );
            assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        }
    }
}
