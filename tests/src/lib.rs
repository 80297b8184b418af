//! Shared helpers for the end-to-end tests and benchmarks: locate (and build)
//! the real binaries, start `bridge serve` as a child process, and speak MCP
//! to it with rmcp's client.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};
use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, PingRequest, ServerResult,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::Value;

pub use http_bridge::HttpBridge;
pub use logs::ServerLog;

pub mod bench;
pub mod bench_report;
pub mod canary;
pub mod console;
pub mod emulator;
pub mod fixture;
pub mod flood;
pub mod http_bridge;
pub mod images;
pub mod logs;
pub mod procstat;
pub mod pty;
pub mod ssh_engine;
pub mod tls_engine;
pub mod yolo;

pub type Client = RunningService<RoleClient, ()>;

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Path of a workspace binary, built once per test process so tests always
/// run the current code (the tests crate cannot depend on another
/// package's binary directly).
pub fn bin(name: &str) -> PathBuf {
    // A same-run comparison with another build (a baseline's binaries
    // copied aside): use them as they are, build nothing.
    if let Some(dir) = std::env::var_os("BRIDGE_BENCH_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let built = BUILT.get_or_init(|| {
        let mut cmd =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "--bins"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
        if profile == "release" {
            cmd.arg("--release");
        }
        match cmd.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("`cargo build --bins` failed with {s}")),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    target_dir().join(profile).join(name)
}

/// A `bridge serve` child process with an MCP client attached.
pub struct Server {
    pub client: Client,
    pub pid: u32,
    /// Its stderr, when captured (always for [`Server::start`]).
    pub log: ServerLog,
}

impl Server {
    /// Starts `bridge serve --db DB EXTRA…`, its stderr captured in
    /// [`Server::log`].
    pub async fn start(db: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(db, extra, &[]).await
    }

    pub async fn start_with_env(
        db: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let db = db.to_path_buf();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cmd = tokio::process::Command::new(bin("bridge")).configure(|c| {
            c.arg("--db").arg(&db).arg("serve").args(&extra);
            c.env("BRIDGE_LOG", logs::bridge_log_filter());
            c.env_remove("BRIDGE_RATE_LIMIT");
            c.env_remove("YOLO_MODE");
            for (k, v) in &env {
                c.env(k, v);
            }
        });
        Self::spawn(cmd, Stdio::piped()).await
    }

    /// Spawns any stdio MCP server command and completes the `initialize`
    /// handshake; returns once the server has answered it. The benchmark
    /// uses this for the Python original too. With `Stdio::piped()` the
    /// server's stderr is drained into [`Server::log`].
    pub async fn spawn(mut cmd: tokio::process::Command, stderr: Stdio) -> anyhow::Result<Self> {
        // A test or benchmark that fails half-way must not leave servers behind.
        cmd.kill_on_drop(true);
        let (transport, stderr) = TokioChildProcess::builder(cmd).stderr(stderr).spawn()?;
        // Drained from before the handshake, so the server never blocks on
        // a full pipe.
        let log = stderr.map_or_else(ServerLog::none, ServerLog::from_pipe);
        let pid = transport.id().context("child has no pid")?;
        let client = ().serve(transport).await?;
        Ok(Self { client, pid, log })
    }

    pub async fn call(&self, tool: &str, args: Value) -> anyhow::Result<CallToolResult> {
        call(&self.client, tool, args).await
    }

    /// Calls a tool that must succeed; returns its structured content.
    pub async fn ok(&self, tool: &str, args: Value) -> anyhow::Result<Value> {
        ok(self.call(tool, args).await?)
    }

    /// Calls a tool that must be refused; returns the error text.
    pub async fn refused(&self, tool: &str, args: Value) -> anyhow::Result<String> {
        refused(self.call(tool, args).await?)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.client.cancel().await?;
        Ok(())
    }
}

pub async fn call(client: &Client, tool: &str, args: Value) -> anyhow::Result<CallToolResult> {
    let args = match args {
        Value::Object(m) => m,
        Value::Null => Default::default(),
        other => bail!("tool arguments must be an object, got {other}"),
    };
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
    Ok(client.call_tool(params).await?)
}

/// The MCP `ping` request (not a tool call): the cheapest round trip the
/// transport offers, and the floor the messaging benchmarks compare with.
pub async fn ping(client: &Client) -> anyhow::Result<()> {
    match client
        .send_request(ClientRequest::PingRequest(PingRequest::default()))
        .await?
    {
        ServerResult::EmptyResult(_) => Ok(()),
        other => bail!("`ping` answered with {other:?} instead of an empty result"),
    }
}

pub fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn ok(r: CallToolResult) -> anyhow::Result<Value> {
    if r.is_error == Some(true) {
        bail!("tool call refused: {}", text_of(&r));
    }
    r.structured_content
        .context("result has no structuredContent")
}

pub fn refused(r: CallToolResult) -> anyhow::Result<String> {
    if r.is_error != Some(true) {
        bail!("expected a refusal, got success: {}", text_of(&r));
    }
    Ok(text_of(&r))
}

/// A conversation's ids and tokens.
#[derive(Debug, Clone)]
pub struct Conv {
    pub id: String,
    pub token_a: String,
    pub token_b: String,
}

impl Conv {
    pub async fn create(s: &Server) -> anyhow::Result<Self> {
        Self::create_on(&s.client).await
    }

    /// Like [`Conv::create`], on any client (for example one over HTTP).
    pub async fn create_on(client: &Client) -> anyhow::Result<Self> {
        let v = ok(call(
            client,
            "create_conversation",
            serde_json::json!({"my_role": "backend_developer", "partner_role": "frontend_developer"}),
        )
        .await?)?;
        Ok(Self {
            id: v["conversation_id"]
                .as_str()
                .context("conversation_id")?
                .into(),
            token_a: v["session_a_token"]
                .as_str()
                .context("session_a_token")?
                .into(),
            token_b: v["session_b_token"]
                .as_str()
                .context("session_b_token")?
                .into(),
        })
    }

    /// The auth arguments for session `a` or `b`, merged with `extra`.
    pub fn args(&self, session: &str, extra: Value) -> Value {
        let token = if session == "a" {
            &self.token_a
        } else {
            &self.token_b
        };
        let mut v =
            serde_json::json!({"conversation_id": self.id, "session_id": session, "token": token});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    }
}

/// Runs the operator CLI against a database.
pub fn operator(db: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(std::process::Command::new(bin("bridge"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("YOLO_MODE")
        .output()?)
}

/// Runs the operator CLI with `--json` and parses its output; fails on a
/// non-zero exit.
pub fn operator_json(db: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = operator(db, &all)?;
    if !out.status.success() {
        bail!(
            "bridge {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The bytes of the database and its WAL, for "never stored" checks.
pub fn db_bytes(db: &Path) -> Vec<u8> {
    let mut all = std::fs::read(db).unwrap_or_default();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    all.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    all
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A direct SQLite connection to a bridge database, for assertions and for
/// simulating what tests must not wait for (expiry) or must forge (tampering).
pub fn sql(db: &Path) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(db)?;
    // A running server may hold the write lock for a moment.
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Makes a conversation expired now, instead of sleeping until it is.
pub fn expire(db: &Path, conversation_id: &str) -> anyhow::Result<()> {
    let n = sql(db)?.execute(
        "UPDATE conversations SET expires_at = 0 WHERE id = ?1",
        [conversation_id],
    )?;
    anyhow::ensure!(n == 1, "no conversation {conversation_id} to expire");
    Ok(())
}

/// One row of the audit table, as stored.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub conversation_id: Option<String>,
    pub session_id: Option<String>,
    pub action: String,
    pub outcome: String,
    pub detail: String,
}

/// Every audit row, oldest first.
pub fn audit_rows(db: &Path) -> anyhow::Result<Vec<AuditRow>> {
    let conn = sql(db)?;
    let mut stmt = conn.prepare(
        "SELECT id, conversation_id, session_id, action, outcome, detail FROM audit ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AuditRow {
            id: r.get(0)?,
            conversation_id: r.get(1)?,
            session_id: r.get(2)?,
            action: r.get(3)?,
            outcome: r.get(4)?,
            detail: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The audit rows with one action, oldest first.
pub fn audit_rows_for(db: &Path, action: &str) -> anyhow::Result<Vec<AuditRow>> {
    Ok(audit_rows(db)?
        .into_iter()
        .filter(|r| r.action == action)
        .collect())
}

/// `n_bytes` from the OS random source as lowercase hex.
pub fn random_hex(n_bytes: usize) -> String {
    use std::io::Read;
    let mut bytes = vec![0u8; n_bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `messages` array of a `check_messages` result.
pub fn messages(inbox: &Value) -> Vec<Value> {
    inbox["messages"].as_array().cloned().unwrap_or_default()
}

/// An MCP client over streamable HTTP, with an optional bearer token.
pub async fn connect_http(url: &str, token: Option<&str>) -> anyhow::Result<Client> {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(t) = token {
        config = config.auth_header(t.to_owned());
    }
    Ok(
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await?,
    )
}

/// A raw HTTP/1.1 POST of an MCP `initialize` request, returning the status
/// code: for checks that a real client would never let us make (wrong Host,
/// missing token, foreign Origin).
pub fn raw_post(
    addr: std::net::SocketAddr,
    host: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<u16> {
    use std::io::{Read, Write};
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in {line:?}"))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// The machine a benchmark ran on: CPUs, model, memory, kernel.
pub fn machine_summary() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("?".to_owned(), |kb| format!("{:.1}", kb / 1024.0 / 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs (`nproc`), {model}, {mem_gib} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// `bridge --json audit verify`: whether the chain is intact, and the
/// report (`rows`, `head_hash`, `first_break`).
pub fn audit_verify(db: &Path) -> anyhow::Result<(bool, Value)> {
    let out = operator(db, &["--json", "audit", "verify"])?;
    let report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "audit verify printed no JSON report: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((out.status.success(), report))
}
