//! Locating and running the external programs the suite drives: the `strata` binary, the
//! venv's Python (kafka-python, confluent-kafka) and kcat. A missing tool is a loud failure
//! that names `scripts/test` as the fix, never a silent skip.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Deadline for one Python client script (they move up to 100,000 records through a debug build).
pub const PYTHON_TIMEOUT: Duration = Duration::from_secs(900);
/// Deadline for one kcat invocation.
pub const KCAT_TIMEOUT: Duration = Duration::from_secs(300);

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Whether a source file the binary was built from (cargo's dep-info, `<binary>.d`, lists
/// them) changed after the binary was linked.
fn built_from_older_sources(binary: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).ok()?;
    let dep_info = std::fs::read_to_string(binary.with_extension("d")).ok()?;
    let (_, deps) = dep_info.split_once(": ")?;
    deps.split_whitespace().map(PathBuf::from).find(|dep| {
        std::fs::metadata(dep)
            .and_then(|m| m.modified())
            .is_ok_and(|changed| changed > built)
    })
}

/// The `strata` binary: `$STRATA_BIN`, else `$CARGO_TARGET_DIR/debug/strata`, else
/// `<workspace>/target/debug/strata`. Panics with the fix when it is missing, or (when not
/// given by `$STRATA_BIN`) older than the sources it is built from: `cargo test -p
/// strata-tests` does not rebuild it, and a stale broker would test yesterday's code.
pub fn strata_bin() -> PathBuf {
    let path = match std::env::var_os("STRATA_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"));
            let target = if target.is_absolute() {
                target
            } else {
                workspace_root().join(target)
            };
            let path = target.join("debug").join("strata");
            if let Some(changed) = built_from_older_sources(&path) {
                panic!(
                    "{} is older than {}: rebuild it with `cargo build -p strata-broker --bin \
                     strata` (scripts/test does), or point STRATA_BIN at the binary to test",
                    path.display(),
                    changed.display()
                );
            }
            path
        }
    };
    if !path.is_file() {
        panic!(
            "the strata binary was not found at {} (set STRATA_BIN, or run `scripts/test`, \
             which builds it with `cargo build -p strata-broker --bin strata`)",
            path.display()
        );
    }
    path
}

/// The venv's Python: `$STRATA_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python_bin() -> PathBuf {
    let path = std::env::var_os("STRATA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv").join("bin").join("python"));
    if !path.is_file() {
        panic!(
            "the test venv's python was not found at {} (set STRATA_PYTHON, or run `scripts/test`, \
             which creates .venv with tests/requirements.txt)",
            path.display()
        );
    }
    path
}

/// `kcat` on PATH. Panics with the fix when it is missing.
pub fn kcat_bin() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kcat"))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => path,
        None => panic!(
            "kcat was not found on PATH (run `scripts/test`, which installs it with apt-get)"
        ),
    }
}

/// A Python script in `tests/python/`.
pub fn python_script(script: &str) -> PathBuf {
    let path = workspace_root().join("tests").join("python").join(script);
    if !path.is_file() {
        panic!("test script {} does not exist", path.display());
    }
    path
}

/// Runs `cmd` to completion with `stdin`, killing it and panicking if `timeout` passes first.
/// Stdout and stderr are drained on threads so a chatty child never blocks on a full pipe.
pub fn run_with_deadline(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let description = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {description}: {e}"));
    let stdin_writer = match (child.stdin.take(), stdin) {
        (Some(mut pipe), Some(data)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || {
                // A child that exits early closes the pipe; its exit status tells the story.
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_deadline(&mut child, timeout);
    if let Some(writer) = stdin_writer {
        let _ = writer.join();
    }
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{description} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            tail(&stdout),
            tail(&stderr)
        ),
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for `child` to exit; on timeout kills it (SIGKILL), reaps it and returns `None`.
pub fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The last 8 KiB of a program's output, lossily decoded, for failure messages.
pub fn tail(bytes: &[u8]) -> String {
    const KEEP: usize = 8 * 1024;
    let start = bytes.len().saturating_sub(KEEP);
    String::from_utf8_lossy(bytes.get(start..).unwrap_or_default()).into_owned()
}

fn assert_success(what: &str, output: &Output) {
    if !output.status.success() {
        panic!(
            "{what} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            tail(&output.stdout),
            tail(&output.stderr)
        );
    }
}

/// Runs `tests/python/<script>` with the venv's Python, asserting it exits 0.
/// The scripts print a one-line summary on success and the mismatch on failure.
pub fn run_python(script: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(python_bin());
    cmd.arg(python_script(script))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = run_with_deadline(cmd, None, PYTHON_TIMEOUT);
    assert_success(&format!("python {script} {}", args.join(" ")), &output);
    output
}

/// Starts `tests/python/<script>` in the background (stdout/stderr to `log`), for load that
/// runs while the test does something else to the broker.
pub fn spawn_python(script: &str, args: &[&str], log: &Path) -> Child {
    let out = std::fs::File::create(log)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot clone handle of {}: {e}", log.display()));
    Command::new(python_bin())
        .arg(python_script(script))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start python {script}: {e}"))
}

/// Runs kcat with `args` (and `stdin`, if any), asserting it exits 0.
pub fn run_kcat(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(kcat_bin());
    cmd.args(args);
    let output = run_with_deadline(cmd, stdin, KCAT_TIMEOUT);
    assert_success(&format!("kcat {}", args.join(" ")), &output);
    output
}
