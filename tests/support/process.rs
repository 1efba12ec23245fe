//! Running the real binaries: environment in, stderr captured to a file
//! (shown when a test fails), killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

/// A running binary. Killed on drop.
pub struct Running {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Running {
    /// Starts `bin` with `args` and `env` (on top of a clean environment
    /// that keeps only `PATH` and `HOME`), logging stderr and stdout to a
    /// temporary file.
    pub fn start(bin: &Path, args: &[&str], env: &[(String, String)]) -> Self {
        let name = bin.file_name().unwrap().to_string_lossy().into_owned();
        let log = std::env::temp_dir().join(format!("{}.log", crate::unique(&name)));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(bin);
        command
            .args(args)
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self { name, child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends SIGKILL (a crash).
    pub fn sigkill(&self) {
        self.signal("KILL");
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// Waits for the process to exit, at most `deadline`.
    pub async fn wait(&mut self, deadline: Duration) -> ExitStatus {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => panic!(
                "{} did not exit within {deadline:?}; log:\n{}",
                self.name,
                self.log()
            ),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Polls `url` until it answers 2xx, failing the test with the process's
/// log if the process exits first or 30 s pass.
pub async fn wait_healthy(process: &mut Running, url: &str) {
    let client = crate::reqwest_client();
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(answer) = client.get(url).send().await
            && answer.status().is_success()
        {
            return;
        }
        assert!(
            process.is_running(),
            "{} exited at start:\n{}",
            process.name,
            process.log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} did not become healthy:\n{}",
            process.name,
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a binary to completion and returns its exit code, stdout and
/// stderr.
pub async fn run(bin: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let output = Command::new(bin)
        .args(args)
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What a finished binary printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
