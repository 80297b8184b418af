//! Raw HTTP from chosen loopback source addresses, for the HTTP limit tests
//! and the flood benchmark: attackers speak from 127.0.0.2 and up so
//! per-address limits can be told apart from the legitimate client on
//! 127.0.0.1.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::{bin, free_port, procstat};

/// Environment that would change how `bridge serve --http` behaves; removed
/// so the developer's shell cannot leak into a run.
const HTTP_ENV: [&str; 15] = [
    "BRIDGE_HTTP",
    "BRIDGE_HTTP_TOKEN",
    "BRIDGE_HTTP_TOKEN_FILE",
    "BRIDGE_ALLOWED_HOSTS",
    "BRIDGE_ALLOWED_ORIGINS",
    "BRIDGE_RATE_LIMIT",
    "BRIDGE_HTTP_MAX_SESSIONS",
    "BRIDGE_HTTP_MAX_SESSIONS_PER_PEER",
    "BRIDGE_HTTP_SESSION_INIT_TIMEOUT",
    "BRIDGE_HTTP_SESSION_IDLE",
    "BRIDGE_HTTP_MAX_CONNECTIONS",
    "BRIDGE_HTTP_MAX_CONNECTIONS_PER_PEER",
    "BRIDGE_HTTP_HEADER_TIMEOUT",
    "BRIDGE_HTTP_BODY_TIMEOUT",
    "YOLO_MODE",
];

/// The attackers' own runtime (`threads` workers; 0: none, they share the
/// caller's), shut down without blocking when dropped: dropping a runtime
/// inside another one panics ("Cannot drop a runtime in a context where
/// blocking is not allowed"), and that panic hid the error an early `?`
/// was returning.
pub struct AttackRuntime(Option<tokio::runtime::Runtime>);

impl AttackRuntime {
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let rt = match threads {
            0 => None,
            n => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .thread_name("attacker")
                    .enable_all()
                    .build()?,
            ),
        };
        Ok(Self(rt))
    }

    /// Where to spawn the attackers: their runtime, or the caller's.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .map_or_else(tokio::runtime::Handle::current, |rt| rt.handle().clone())
    }
}

impl Drop for AttackRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Logs the benchmark's own HTTP client stack (rmcp, reqwest, hyper-util's
/// connector) to stderr with timestamps, for `bench_flood --trace-client`:
/// which request of a slow probe waited, and for what (a new connection, a
/// stream resumed after the server's `retry`).
pub fn log_client_http() {
    tracing_subscriber::fmt()
        .with_env_filter("rmcp=debug,reqwest=debug,hyper_util=debug")
        .with_writer(std::io::stderr)
        .init();
}

/// The listen queue during the slowloris, sampled every 50 ms.
#[derive(Default)]
pub struct QueueWatch {
    pub samples: u64,
    /// Samples with the queue at its limit: a SYN arriving then is dropped
    /// and resent by the client a second later.
    pub full: u64,
    pub max: u64,
    pub sum: u64,
}

/// Samples the listen queue of `port` every 50 ms until `stop`.
pub async fn watch_queue(port: u16, limit: u64, stop: Arc<AtomicBool>) -> QueueWatch {
    let mut w = QueueWatch::default();
    while !stop.load(Ordering::Relaxed) {
        if let Some(q) = procstat::accept_queue(port) {
            w.samples += 1;
            w.sum += q;
            w.max = w.max.max(q);
            w.full += u64::from(q >= limit);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w
}

/// The legitimate client's address.
pub const LEGIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The `i`-th attacker address: 127.0.0.2, 127.0.0.3, … (then 127.0.1.x).
pub fn attacker(i: usize) -> Ipv4Addr {
    let n = 2 + i as u32;
    Ipv4Addr::new(127, 0, (n >> 8) as u8, (n & 0xff) as u8)
}

/// A TCP connection to `to` whose source address is `from`.
pub async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

/// A POST to /mcp: `session` adds `Mcp-Session-Id`.
pub fn mcp_post(port: u16, session: Option<&str>, body: &str) -> Vec<u8> {
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(id) = session {
        head.push_str(&format!(
            "Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: 2025-06-18\r\n"
        ));
    }
    format!("{head}\r\n{body}").into_bytes()
}

/// An MCP `initialize` request, the one that creates a session.
pub fn initialize(port: u16) -> Vec<u8> {
    mcp_post(
        port,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"flood","version":"0"}}}"#,
    )
}

/// The notification that completes the MCP handshake.
pub fn initialized(port: u16, session: &str) -> Vec<u8> {
    mcp_post(
        port,
        Some(session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
}

/// A `tools/list` request inside a session.
pub fn tools_list(port: u16, session: &str) -> Vec<u8> {
    mcp_post(
        port,
        Some(session),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
}

/// A GET of /healthz.
pub fn healthz(port: u16) -> Vec<u8> {
    format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// What came back for one raw request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub text: String,
}

impl Reply {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Sends `request` from `from` on a fresh connection and reads until the
/// reply contains `until` after its head (or the server closes), at most 10 s.
pub async fn exchange(
    from: Ipv4Addr,
    to: SocketAddr,
    request: &[u8],
    until: &str,
) -> anyhow::Result<Reply> {
    Ok(exchange_timed(from, to, request, until).await?.0)
}

/// [`exchange`], also returning how long `connect` took (the kernel's part:
/// the handshake, and a SYN resent after a second if the listen queue was
/// full).
pub async fn exchange_timed(
    from: Ipv4Addr,
    to: SocketAddr,
    request: &[u8],
    until: &str,
) -> anyhow::Result<(Reply, Duration)> {
    let started = Instant::now();
    let mut stream = tokio::time::timeout(Duration::from_secs(10), connect_from(from, to))
        .await
        .context("no connection within 10 s")??;
    let connected = started.elapsed();
    stream.write_all(request).await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let text = String::from_utf8_lossy(&got);
            if let Some((_, body)) = text.split_once("\r\n\r\n")
                && body.contains(until)
            {
                break;
            }
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if !got.is_empty() => {
                    eprintln!("read after a partial reply failed: {e}");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("no complete reply within 10 s")?
        .context("reading the reply")?;
    let text = String::from_utf8_lossy(&got).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in {head:?}"))?;
    Ok((Reply { status, head, text }, connected))
}

/// Creates a session from `from` with a raw `initialize`; returns its id.
/// With `complete`, also sends `notifications/initialized`.
pub async fn open_session(
    from: Ipv4Addr,
    to: SocketAddr,
    complete: bool,
) -> anyhow::Result<Result<String, Reply>> {
    let reply = exchange(from, to, &initialize(to.port()), "\"result\"").await?;
    if reply.status != 200 {
        return Ok(Err(reply));
    }
    let id = reply
        .header("mcp-session-id")
        .with_context(|| format!("no Mcp-Session-Id in {}", reply.head))?;
    if complete {
        let done = exchange(from, to, &initialized(to.port(), &id), "").await?;
        ensure!(
            done.status == 202,
            "notifications/initialized got {}",
            done.text
        );
    }
    Ok(Ok(id))
}

/// Raises this process's soft open-files limit to at least `n` (up to the
/// hard limit); returns the new soft limit.
pub fn raise_nofile(n: u64) -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= n {
        return Ok(soft);
    }
    let target = n.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
    Ok(target)
}

/// A `bridge serve --http` child on a free 127.0.0.1 port; killed on drop.
pub struct HttpBridge {
    child: Option<Child>,
    pub addr: SocketAddr,
    stderr: PathBuf,
}

impl HttpBridge {
    /// Starts the server with `extra` arguments and waits for `/healthz`.
    pub async fn start(dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let addr = SocketAddr::from((LEGIT, free_port()));
        let stderr = dir.join(format!("bridge-{}.stderr", addr.port()));
        let mut cmd = Command::new(bin("bridge"));
        cmd.arg("--db")
            .arg(dir.join("b.db"))
            .args(["serve", "--http", &addr.to_string()])
            .args(extra)
            .env("BRIDGE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?);
        for k in HTTP_ENV {
            cmd.env_remove(k);
        }
        let mut server = Self {
            child: Some(cmd.spawn()?),
            addr,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = server.child_mut().try_wait()? {
                bail!(
                    "bridge serve --http exited with {status} before it was healthy: {}",
                    server.stderr_text()
                );
            }
            if let Ok(Ok(r)) = tokio::time::timeout(
                Duration::from_secs(2),
                exchange(LEGIT, addr, &healthz(addr.port()), "ok"),
            )
            .await
                && r.status == 200
            {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                bail!(
                    "bridge serve --http was not healthy within 15 s: {}",
                    server.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("server already stopped")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then a clean exit within 10 s.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_with_log().await.map(drop)
    }

    /// [`Self::stop`], returning what the server wrote to stderr.
    pub async fn stop_with_log(mut self) -> anyhow::Result<String> {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let mut child = self.child.take().context("server already stopped")?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                ensure!(
                    status.success(),
                    "bridge exited with {status}: {}",
                    self.stderr_text()
                );
                return Ok(self.stderr_text());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("bridge did not exit within 10 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HttpBridge {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
