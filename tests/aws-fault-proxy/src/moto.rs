//! Launcher for the moto server (the AWS emulator the tests run against).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Environment variable overriding the `moto_server` executable.
pub const MOTO_SERVER_ENV: &str = "ARNSYNC_MOTO_SERVER";

/// How long a fresh moto may take to answer (it imports a lot of Python on start).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Python run instead of the `moto_server` script when its interpreter is known: it serves moto
/// exactly like `moto_server` does, and exits as soon as its stdin closes, so moto cannot
/// outlive the test process even if that one is killed before `Drop` runs.
const WATCHDOG: &str = "\
import os, sys, threading
def _watch():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
";

/// A running `moto_server` on a free loopback port, killed (and reaped) on drop.
pub struct Moto {
    child: Child,
    // Held open: closing it makes the watchdog exit moto.
    stdin: Option<ChildStdin>,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// Finds `moto_server` (`$ARNSYNC_MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`),
    /// starts it on `127.0.0.1:<free port>` and waits until it answers HTTP.
    ///
    /// Blocks the calling thread while waiting (moto is a separate process, so this is fine
    /// inside a `#[tokio::test]`).
    pub fn start() -> anyhow::Result<Moto> {
        let server = moto_server_path()?;
        let mut last_err = None;
        // A port found free can be taken before moto binds it; try a few.
        for _ in 0..3 {
            match Moto::try_start(&server) {
                Ok(moto) => return Ok(moto),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    fn try_start(server: &Path) -> anyhow::Result<Moto> {
        let port = free_port()?;
        let log = tempfile::Builder::new()
            .prefix("arnsync-moto-")
            .suffix(".log")
            .tempfile()
            .context("creating moto log file")?;
        let out = log.reopen()?;
        let err = log.reopen()?;
        let port_arg = port.to_string();
        let mut cmd = match python_of(server) {
            Some(python) => {
                let mut c = Command::new(python);
                c.arg("-c").arg(WATCHDOG).stdin(Stdio::piped());
                c
            }
            None => {
                let mut c = Command::new(server);
                c.stdin(Stdio::null());
                c
            }
        };
        cmd.args(["-H", "127.0.0.1", "-p", &port_arg])
            .stdout(out)
            .stderr(err)
            .env("PYTHONUNBUFFERED", "1");
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", server.display()))?;
        let stdin = child.stdin.take();
        let mut moto = Moto {
            child,
            stdin,
            port,
            log,
        };
        moto.wait_ready()?;
        Ok(moto)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "moto_server exited ({status}) before answering on port {}; log:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            if answers_http(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "moto_server did not answer on {addr} within {READY_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the server process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Forgets every resource in every service and region (`POST /moto-api/reset`).
    pub async fn reset(&self) -> anyhow::Result<()> {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let req = http::Request::post(format!("{}/moto-api/reset", self.url()))
            .body(Full::new(Bytes::new()))?;
        let resp = client.request(req).await.context("POST /moto-api/reset")?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status.is_success(),
            "moto reset answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    /// Everything moto wrote to stdout / stderr so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = self.log.reopen() {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto")
            .field("url", &self.url())
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// The repository root (this crate lives in `tests/aws-fault-proxy`).
pub fn workspace_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

/// `$ARNSYNC_MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`, if it exists.
pub fn moto_server_path() -> anyhow::Result<PathBuf> {
    let (path, origin) = match std::env::var_os(MOTO_SERVER_ENV) {
        Some(p) if !p.is_empty() => (PathBuf::from(p), format!("${MOTO_SERVER_ENV}")),
        _ => (
            workspace_root().join(".venv/bin/moto_server"),
            "the repository venv".to_string(),
        ),
    };
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "moto_server not found at {} (from {origin}); run `bash tests/setup.sh` in {} to \
             install it, or set {MOTO_SERVER_ENV}",
            path.display(),
            workspace_root().display()
        )
    }
}

/// The Python interpreter from a `#!/.../python3` first line, if it exists.
fn python_of(script: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script).ok()?.read(&mut head).ok()?;
    let first = std::str::from_utf8(&head[..n]).ok()?.lines().next()?;
    let interpreter = first.strip_prefix("#!")?.split_whitespace().next()?;
    let interpreter = PathBuf::from(interpreter);
    let name = interpreter.file_name()?.to_str()?;
    (name.starts_with("python") && interpreter.is_file()).then_some(interpreter)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request =
        format!("GET /__arnsync_ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}
