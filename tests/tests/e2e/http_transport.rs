//! MCP over streamable HTTP (`bridge serve --http`) through the real binary:
//! the same tools and long polls as stdio, bearer-token auth, Host/Origin
//! allow-lists, the body cap, the start-up refusals, `/healthz` and graceful
//! shutdown on SIGTERM/SIGINT.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bridge_tests::logs::{self, ServerLog};
use bridge_tests::{
    Client, Conv, Server, bin, call, connect_http, free_port, messages, ok, random_hex, raw_post,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// How long a server may take to exit after SIGTERM/SIGINT.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// Environment that would change how `bridge serve` listens; removed so the
/// developer's shell cannot leak into a test.
const HTTP_ENV: [&str; 7] = [
    "BRIDGE_HTTP",
    "BRIDGE_HTTP_TOKEN",
    "BRIDGE_HTTP_TOKEN_FILE",
    "BRIDGE_ALLOWED_HOSTS",
    "BRIDGE_ALLOWED_ORIGINS",
    "BRIDGE_RATE_LIMIT",
    "YOLO_MODE",
];

/// `bridge --db DIR/b.db serve --http ADDR EXTRA…`, stderr to a file in DIR
/// (a pipe nobody drains could block the server).
fn serve_command(
    dir: &Path,
    addr: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<(Command, PathBuf)> {
    let stderr_path = dir.join(format!("bridge-{}.stderr", addr.replace([':', '.'], "_")));
    let mut cmd = Command::new(bin("bridge"));
    cmd.arg("--db")
        .arg(dir.join("b.db"))
        .args(["serve", "--http", addr])
        .args(extra)
        .env("BRIDGE_LOG", logs::bridge_log_filter())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path)?);
    for k in HTTP_ENV {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok((cmd, stderr_path))
}

/// Runs `bridge health URL`; true if it exits 0.
async fn healthy(url: &str) -> anyhow::Result<bool> {
    let status = tokio::process::Command::new(bin("bridge"))
        .args(["health", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    Ok(status.success())
}

/// Polls `child` until it exits or `limit` passes.
async fn wait_exit(child: &mut Child, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `bridge serve --http` child process on 127.0.0.1. Dropping it without
/// `stop` kills it, so a failing test leaves no server behind.
struct HttpServer {
    child: Option<Child>,
    addr: SocketAddr,
    stderr: PathBuf,
    /// Its stderr, read from that file (long polls wait on it).
    log: ServerLog,
}

impl HttpServer {
    /// Starts the server on a free loopback port and waits for `/healthz`.
    async fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (mut cmd, stderr) = serve_command(dir, &addr.to_string(), extra, env)?;
        let mut server = Self {
            child: Some(cmd.spawn()?),
            addr,
            log: ServerLog::from_file(stderr.clone()),
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
            if healthy(&server.health_url()).await? {
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

    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    fn health_url(&self) -> String {
        format!("http://{}/healthz", self.addr)
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` and asserts a clean exit (status 0) within
    /// [`SHUTDOWN_LIMIT`]; returns how long the exit took.
    async fn stop_with(mut self, signal: Signal) -> anyhow::Result<Duration> {
        let sent = Instant::now();
        let child = self.child_mut();
        kill(Pid::from_raw(child.id() as i32), signal)?;
        // On an early return, Drop kills and reaps the child.
        let Some(status) = wait_exit(child, SHUTDOWN_LIMIT).await? else {
            bail!(
                "bridge serve --http did not exit within {SHUTDOWN_LIMIT:?} of {signal}: {}",
                self.stderr_text()
            );
        };
        self.child = None;
        ensure!(
            status.success(),
            "bridge serve --http exited with {status} after {signal}: {}",
            self.stderr_text()
        );
        Ok(sent.elapsed())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop_with(Signal::SIGTERM).await.map(drop)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `bridge serve --http ADDR` expecting a refusal: it must exit
/// non-zero within 10 s. Returns its stderr.
async fn start_refused(
    dir: &Path,
    addr: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<String> {
    let (mut cmd, stderr_path) = serve_command(dir, addr, extra, env)?;
    let mut child = cmd.spawn()?;
    let status = wait_exit(&mut child, Duration::from_secs(10)).await?;
    let stderr = std::fs::read_to_string(&stderr_path)?;
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("bridge serve --http {addr} {extra:?} was not refused; it kept running: {stderr}");
    };
    ensure!(
        !status.success(),
        "bridge serve --http {addr} {extra:?} exited 0; stderr: {stderr}"
    );
    Ok(stderr)
}

/// One HTTP/1.1 exchange on a fresh connection: `head` is the request line
/// and headers (each ending in CRLF, without the blank line). The body is
/// written from another thread so a server that answers early (413) and
/// stops reading cannot deadlock the test. Returns the status code and the
/// response head; then closes the connection.
fn exchange(addr: SocketAddr, head: &str, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
    exchange_until(addr, head, body, b"\r\n\r\n").map(|(status, head, _)| (status, head))
}

/// Like [`exchange`], but reads until the response contains `until` (or the
/// server closes), and also returns everything read.
fn exchange_until(
    addr: SocketAddr,
    head: &str,
    body: Vec<u8>,
    until: &[u8],
) -> anyhow::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(b"\r\n")?;
    let mut writer = stream.try_clone()?;
    // Write errors are expected once the server has answered and closed.
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !(contains(&response, b"\r\n\r\n") && contains(&response, until)) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if !response.is_empty() => {
                eprintln!("read after a partial response failed: {e}");
                break;
            }
            Err(e) => return Err(e).context("reading the response"),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    let text = String::from_utf8_lossy(&response).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in {head:?}"))?;
    Ok((status, head, text))
}

/// Sends a small request on a fresh connection and reads the response head;
/// returns the status and the connection, still open (the response body,
/// an SSE stream, may still be coming).
fn request_kept_open(
    addr: SocketAddr,
    head: &str,
    body: &[u8],
) -> anyhow::Result<(u16, TcpStream)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(b"\r\n")?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so nothing past the head is consumed.
    while !response.ends_with(b"\r\n\r\n") {
        ensure!(
            stream.read(&mut byte)? == 1,
            "the server closed before a response head: {:?}",
            String::from_utf8_lossy(&response)
        );
        response.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in {text:?}"))?;
    Ok((status, stream))
}

/// The value of header `name` in a response head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An MCP `initialize` request whose client name is padded so the whole
/// body is exactly `len` bytes: valid in every way except, possibly, size.
fn initialize_body(len: usize) -> Vec<u8> {
    let frame = |name: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"{name}","version":"0"}}}}}}"#
        )
    };
    let overhead = frame("").len();
    frame(&"x".repeat(len - overhead)).into_bytes()
}

/// The request head of a POST to /mcp with the headers a real client sends.
fn post_head(port: u16, framing: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{framing}Connection: close\r\n"
    )
}

/// `body` in HTTP/1.1 chunked encoding, 64 KiB per chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

async fn send(client: &Client, c: &Conv, from: &str, text: &str) -> anyhow::Result<i64> {
    let sent = ok(call(
        client,
        "send_to_partner",
        c.args(from, json!({"message": text})),
    )
    .await?)?;
    sent["message_id"].as_i64().context("message_id")
}

async fn check(client: &Client, c: &Conv, session: &str, extra: Value) -> anyhow::Result<Value> {
    ok(call(client, "check_messages", c.args(session, extra)).await?)
}

fn bodies(inbox: &Value) -> Vec<String> {
    messages(inbox)
        .iter()
        .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A 64-hex-character bearer token, as `openssl rand -hex 32` makes.
fn token() -> String {
    random_hex(32)
}

// --- 1. The same tools, over HTTP -------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn two_http_clients_use_every_tool_and_a_long_poll_wakes_on_send() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let a = connect_http(&server.url(), None).await?;
    let b = connect_http(&server.url(), None).await?;

    let mut names: Vec<String> = a
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ack_messages",
            "check_messages",
            "check_partner_status",
            "create_conversation",
            "inbox_notify",
            "invite_participant",
            "list_participants",
            "send_to_partner",
            "update_my_status"
        ]
    );

    let c = Conv::create_on(&a).await?;
    // b long-polls on its own HTTP session while a sends on another.
    let started = Instant::now();
    let wait = check(&b, &c, "b", json!({"wait_seconds": 20}));
    let send_later = async {
        // Once the long poll waits, so the send lands during it.
        server.log.long_poll_waiting(&c.id, "b").await?;
        send(&a, &c, "a", "hello over http").await
    };
    let (inbox, id) = tokio::join!(wait, send_later);
    let elapsed = started.elapsed();
    let (inbox, id) = (inbox?, id?);
    assert_eq!(bodies(&inbox), ["hello over http"]);
    assert_eq!(messages(&inbox)[0]["id"], id);
    assert_eq!(messages(&inbox)[0]["from"], "a");
    assert!(
        elapsed < Duration::from_secs(10),
        "the long poll returned after {elapsed:?}"
    );

    send(&b, &c, "b", "reply over http").await?;
    assert_eq!(
        bodies(&check(&a, &c, "a", json!({})).await?),
        ["reply over http"]
    );
    let status = ok(call(
        &b,
        "update_my_status",
        c.args("b", json!({"status": "working"})),
    )
    .await?)?;
    assert_eq!(status["status"], "working");
    let partner = ok(call(&a, "check_partner_status", c.args("a", json!({}))).await?)?;
    assert_eq!(partner["status"], "working");
    assert_eq!(partner["alive"], true);

    a.cancel().await?;
    b.cancel().await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_long_poll_outlasts_the_sse_keep_alive() -> anyhow::Result<()> {
    // rmcp sends an SSE keep-alive every 15 s; a 17 s wait crosses one and
    // must still end with an ordinary (empty) result, not a transport error.
    let dir = tempfile::tempdir()?;
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let client = connect_http(&server.url(), None).await?;
    let c = Conv::create_on(&client).await?;
    let started = Instant::now();
    let inbox = check(&client, &c, "b", json!({"wait_seconds": 17})).await?;
    let elapsed = started.elapsed();
    assert_eq!(messages(&inbox), Vec::<Value>::new());
    assert!(
        elapsed >= Duration::from_secs(16) && elapsed < Duration::from_secs(25),
        "a 17 s long poll took {elapsed:?}"
    );
    client.cancel().await?;
    server.stop().await
}

// --- 2. stdio and HTTP share one database ---------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn stdio_and_http_servers_on_one_database_see_each_others_messages() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let http = HttpServer::start(dir.path(), &[], &[]).await?;
    let stdio = Server::start(&dir.path().join("b.db"), &[]).await?;
    let web = connect_http(&http.url(), None).await?;

    // Created over stdio, used over HTTP, and the other way round.
    let c = Conv::create_on(&stdio.client).await?;
    send(&web, &c, "a", "from http").await?;
    assert_eq!(
        bodies(&check(&stdio.client, &c, "b", json!({})).await?),
        ["from http"]
    );
    send(&stdio.client, &c, "b", "from stdio").await?;
    assert_eq!(
        bodies(&check(&web, &c, "a", json!({})).await?),
        ["from stdio"]
    );

    // A long poll over HTTP wakes on a send through the stdio process.
    let started = Instant::now();
    let wait = check(&web, &c, "b", json!({"wait_seconds": 20}));
    let send_later = async {
        http.log.long_poll_waiting(&c.id, "b").await?;
        send(&stdio.client, &c, "a", "cross-process wake-up").await
    };
    let (inbox, sent) = tokio::join!(wait, send_later);
    sent?;
    assert_eq!(bodies(&inbox?), ["cross-process wake-up"]);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "the long poll returned after {elapsed:?}"
    );

    let c2 = Conv::create_on(&web).await?;
    send(&stdio.client, &c2, "a", "conversation made over http").await?;
    assert_eq!(
        bodies(&check(&web, &c2, "b", json!({})).await?),
        ["conversation made over http"]
    );

    web.cancel().await?;
    stdio.stop().await?;
    http.stop().await
}

// --- 3. Bearer token --------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_every_request_without_it_gets_401() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let secret = token();
    let server =
        HttpServer::start(dir.path(), &[], &[("BRIDGE_HTTP_TOKEN", secret.as_str())]).await?;
    let host = format!("127.0.0.1:{}", server.port());
    let bearer = format!("Bearer {secret}");

    assert_eq!(raw_post(server.addr, &host, &[])?, 401);
    let wrong = format!("Bearer {}", token());
    assert_eq!(
        raw_post(server.addr, &host, &[("Authorization", &wrong)])?,
        401
    );
    // A prefix of the right token, the token without "Bearer ", another scheme.
    let prefix = format!("Bearer {}", &secret[..32]);
    assert_eq!(
        raw_post(server.addr, &host, &[("Authorization", &prefix)])?,
        401
    );
    assert_eq!(
        raw_post(server.addr, &host, &[("Authorization", &secret)])?,
        401
    );
    let basic = format!("Basic {secret}");
    assert_eq!(
        raw_post(server.addr, &host, &[("Authorization", &basic)])?,
        401
    );
    assert_eq!(
        raw_post(server.addr, &host, &[("Authorization", &bearer)])?,
        200
    );

    // The 401 tells the client which scheme to use, and every method on
    // /mcp is behind the token, not only POST.
    let (status, head) = exchange(server.addr, &post_head(server.port(), ""), Vec::new())?;
    assert_eq!(status, 401, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "no WWW-Authenticate: Bearer in {head}"
    );
    for method in ["GET", "DELETE"] {
        let head = format!(
            "{method} /mcp HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nMcp-Session-Id: x\r\nConnection: close\r\n"
        );
        let (status, response) = exchange(server.addr, &head, Vec::new())?;
        assert_eq!(status, 401, "{method} /mcp without a token: {response}");
    }
    // The health check stays open, so container healthchecks need no secret.
    assert!(healthy(&server.health_url()).await?);

    // A real client: with the token it works, without it it cannot connect.
    let client = connect_http(&server.url(), Some(&secret)).await?;
    let c = Conv::create_on(&client).await?;
    send(&client, &c, "a", "authenticated").await?;
    assert_eq!(
        bodies(&check(&client, &c, "b", json!({})).await?),
        ["authenticated"]
    );
    let without = tokio::time::timeout(Duration::from_secs(10), connect_http(&server.url(), None))
        .await
        .context("connect_http without a token neither failed nor succeeded within 10 s")?;
    assert!(without.is_err(), "connected without the bearer token");
    let wrong_client = tokio::time::timeout(
        Duration::from_secs(10),
        connect_http(&server.url(), Some(&token())),
    )
    .await
    .context("connect_http with a wrong token neither failed nor succeeded within 10 s")?;
    assert!(wrong_client.is_err(), "connected with a wrong bearer token");

    client.cancel().await?;
    server.stop().await
}

// --- 4. Host allow-list -----------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn foreign_host_headers_get_403() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let port = server.port();
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
    ] {
        assert_eq!(raw_post(server.addr, &host, &[])?, 200, "Host: {host}");
    }
    for host in [
        format!("evil.example.com:{port}"),
        format!("localhost.evil.example.com:{port}"),
        format!("bridge:{port}"),
        "evil.example.com".to_owned(),
    ] {
        assert_eq!(raw_post(server.addr, &host, &[])?, 403, "Host: {host}");
    }
    server.stop().await?;

    // With a token, a foreign Host is refused even with the right token.
    let secret = token();
    let server =
        HttpServer::start(dir.path(), &[], &[("BRIDGE_HTTP_TOKEN", secret.as_str())]).await?;
    let bearer = format!("Bearer {secret}");
    let evil = format!("evil.example.com:{}", server.port());
    assert_eq!(
        raw_post(server.addr, &evil, &[("Authorization", &bearer)])?,
        403
    );
    let local = format!("localhost:{}", server.port());
    assert_eq!(
        raw_post(server.addr, &local, &[("Authorization", &bearer)])?,
        200
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_host_adds_a_name_to_the_allow_list() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpServer::start(dir.path(), &["--allowed-host", "bridge"], &[]).await?;
    let port = server.port();
    assert_eq!(raw_post(server.addr, &format!("bridge:{port}"), &[])?, 200);
    assert_eq!(
        raw_post(server.addr, &format!("localhost:{port}"), &[])?,
        200
    );
    assert_eq!(
        raw_post(server.addr, &format!("evil.example.com:{port}"), &[])?,
        403
    );
    server.stop().await?;

    // The same through the environment (compose sets it there).
    let server =
        HttpServer::start(dir.path(), &[], &[("BRIDGE_ALLOWED_HOSTS", "bridge,mcp")]).await?;
    let port = server.port();
    assert_eq!(raw_post(server.addr, &format!("bridge:{port}"), &[])?, 200);
    assert_eq!(raw_post(server.addr, &format!("mcp:{port}"), &[])?, 200);
    assert_eq!(
        raw_post(server.addr, &format!("evil.example.com:{port}"), &[])?,
        403
    );
    server.stop().await
}

// --- 5. Origin allow-list ---------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn browser_origins_are_refused_unless_allowed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let inspector = "http://localhost:6274";
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let host = format!("127.0.0.1:{}", server.port());
    // No Origin (every non-browser client): accepted.
    assert_eq!(raw_post(server.addr, &host, &[])?, 200);
    for origin in ["http://evil.example.com", inspector, "null"] {
        assert_eq!(
            raw_post(server.addr, &host, &[("Origin", origin)])?,
            403,
            "Origin: {origin}"
        );
    }
    server.stop().await?;

    let server = HttpServer::start(dir.path(), &["--allowed-origin", inspector], &[]).await?;
    let host = format!("127.0.0.1:{}", server.port());
    assert_eq!(raw_post(server.addr, &host, &[("Origin", inspector)])?, 200);
    assert_eq!(raw_post(server.addr, &host, &[])?, 200);
    for origin in [
        "http://evil.example.com",
        "http://localhost:6275",
        "https://localhost:6274",
    ] {
        assert_eq!(
            raw_post(server.addr, &host, &[("Origin", origin)])?,
            403,
            "Origin: {origin}"
        );
    }
    server.stop().await
}

// --- 6. Body cap ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_over_one_mib_get_413() -> anyhow::Result<()> {
    const MIB: usize = 1 << 20;
    let dir = tempfile::tempdir()?;
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let port = server.port();
    let length = |n: usize| format!("Content-Length: {n}\r\n");

    // Just under the cap: an ordinary initialize.
    let body = initialize_body(MIB - 1024);
    let (status, head) = exchange(server.addr, &post_head(port, &length(body.len())), body)?;
    assert_eq!(status, 200, "{head}");

    // Over it, announced by Content-Length or not (chunked), by a little or by a lot.
    for size in [MIB + 1024, 2 * MIB] {
        let body = initialize_body(size);
        let (status, head) = exchange(server.addr, &post_head(port, &length(body.len())), body)?;
        assert_eq!(status, 413, "{size} bytes with Content-Length: {head}");
        let body = chunked(&initialize_body(size));
        let framing = "Transfer-Encoding: chunked\r\n";
        let (status, head) = exchange(server.addr, &post_head(port, framing), body)?;
        assert_eq!(status, 413, "{size} bytes chunked: {head}");
    }

    // The server is unharmed.
    assert!(healthy(&server.health_url()).await?);
    let client = connect_http(&server.url(), None).await?;
    Conv::create_on(&client).await?;
    client.cancel().await?;
    server.stop().await
}

// --- 7. Start-up refusals and the token file --------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_non_loopback_address_without_a_token_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let addr = format!("0.0.0.0:{}", free_port());
    // Build first: only the refusal itself is timed.
    bin("bridge");
    let started = Instant::now();
    let stderr = start_refused(dir.path(), &addr, &[], &[]).await?;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refusing took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("refusing"), "{stderr}");
    assert!(stderr.contains("BRIDGE_HTTP_TOKEN"), "{stderr}");
    // An empty BRIDGE_HTTP_TOKEN is no token.
    let stderr = start_refused(dir.path(), &addr, &[], &[("BRIDGE_HTTP_TOKEN", "")]).await?;
    assert!(stderr.contains("refusing"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn short_tokens_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let addr = format!("127.0.0.1:{}", free_port());
    let stderr = start_refused(
        dir.path(),
        &addr,
        &[],
        &[("BRIDGE_HTTP_TOKEN", "0123456789")],
    )
    .await?;
    assert!(stderr.contains("32 characters"), "{stderr}");
    assert!(
        !stderr.contains("0123456789"),
        "the refusal echoes the token: {stderr}"
    );
    // The same for a token file.
    let file = dir.path().join("short.token");
    std::fs::write(&file, "0123456789\n")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    let stderr = start_refused(
        dir.path(),
        &addr,
        &["--http-token-file", file.to_str().context("utf-8 path")?],
        &[],
    )
    .await?;
    assert!(stderr.contains("32 characters"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_file_is_created_0600_and_its_token_works() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("http.token");
    let path = file.to_str().context("utf-8 path")?;
    let server = HttpServer::start(dir.path(), &["--http-token-file", path], &[]).await?;
    let mode = std::fs::metadata(&file)
        .context("the token file was not created")?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {:o}", mode & 0o777);
    let secret = std::fs::read_to_string(&file)?.trim().to_owned();
    assert!(secret.len() >= 32, "a {}-character token", secret.len());
    assert!(
        !server.stderr_text().contains(&secret),
        "the generated token was logged"
    );

    let host = format!("127.0.0.1:{}", server.port());
    assert_eq!(raw_post(server.addr, &host, &[])?, 401);
    let client = connect_http(&server.url(), Some(&secret)).await?;
    Conv::create_on(&client).await?;
    client.cancel().await?;
    server.stop().await?;

    // A restart reuses the file rather than replacing the token.
    let server = HttpServer::start(dir.path(), &["--http-token-file", path], &[]).await?;
    assert_eq!(std::fs::read_to_string(&file)?.trim(), secret);
    let client = connect_http(&server.url(), Some(&secret)).await?;
    client.cancel().await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_token_file_is_used_and_a_world_readable_one_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("http.token");
    let path = file.to_str().context("utf-8 path")?;
    let secret = token();
    std::fs::write(&file, format!("{secret}\n"))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    // The file wins over the environment.
    let server = HttpServer::start(
        dir.path(),
        &["--http-token-file", path],
        &[("BRIDGE_HTTP_TOKEN", token().as_str())],
    )
    .await?;
    let client = connect_http(&server.url(), Some(&secret)).await?;
    Conv::create_on(&client).await?;
    client.cancel().await?;
    server.stop().await?;

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
    let addr = format!("127.0.0.1:{}", free_port());
    let stderr = start_refused(dir.path(), &addr, &["--http-token-file", path], &[]).await?;
    assert!(stderr.contains("readable by group or others"), "{stderr}");
    assert!(stderr.contains(&format!("chmod 600 {path}")), "{stderr}");
    assert!(!stderr.contains(&secret), "the refusal echoes the token");
    Ok(())
}

// --- 8. Health and shutdown -------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn health_exits_0_while_up_and_non_zero_when_nothing_listens() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let url = server.health_url();
    assert!(healthy(&url).await?, "bridge health {url} failed while up");
    server.stop().await?;
    assert!(
        !healthy(&url).await?,
        "bridge health {url} passed after stop"
    );
    let nobody = format!("http://127.0.0.1:{}/healthz", free_port());
    assert!(!healthy(&nobody).await?, "bridge health {nobody} passed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_and_sigterm_exit_promptly_with_clients_connected() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // An idle connected client (its SSE stream open) must not hold shutdown up.
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let idle = connect_http(&server.url(), None).await?;
    Conv::create_on(&idle).await?;
    let took = server.stop_with(Signal::SIGINT).await?;
    eprintln!("SIGINT with an idle client: exited after {took:?}");
    drop(idle);

    // Nor may a long poll in flight: it would hold the server for 20 s.
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let client = connect_http(&server.url(), None).await?;
    let c = Conv::create_on(&client).await?;
    let conv = c.id.clone();
    let poll =
        tokio::spawn(async move { check(&client, &c, "b", json!({"wait_seconds": 20})).await });
    server.log.long_poll_waiting(&conv, "b").await?;
    let took = server.stop_with(Signal::SIGTERM).await?;
    eprintln!("SIGTERM during a long poll: exited after {took:?}");
    poll.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_in_flight_at_shutdown_is_answered_before_exit() -> anyhow::Result<()> {
    // Graceful means in-flight requests get their answer: a long poll ends
    // early with what is there (nothing) rather than being dropped, which
    // leaves the client waiting for a response that never comes.
    let dir = tempfile::tempdir()?;
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let client = connect_http(&server.url(), None).await?;
    let c = Conv::create_on(&client).await?;
    let conv = c.id.clone();
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let inbox = check(&client, &c, "b", json!({"wait_seconds": 20})).await;
        (inbox, started.elapsed())
    });
    server.log.long_poll_waiting(&conv, "b").await?;
    server.stop().await?;
    let (inbox, waited) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .context("no answer to the long poll 10 s after the server exited")??;
    let inbox = inbox.context("the long poll in flight at shutdown failed")?;
    assert_eq!(messages(&inbox), Vec::<Value>::new());
    assert!(
        waited < Duration::from_secs(10),
        "the long poll ended after {waited:?}"
    );
    Ok(())
}

// --- Abandoned clients ------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_abandoned_by_its_client_does_not_swallow_a_message() -> anyhow::Result<()> {
    // Over stdio a vanished client takes the server with it; over HTTP the
    // server outlives it, and a long poll whose connection is gone must not
    // mark the next message read and answer into the void.
    let dir = tempfile::tempdir()?;
    let server = HttpServer::start(dir.path(), &[], &[]).await?;
    let a = connect_http(&server.url(), None).await?;
    let c = Conv::create_on(&a).await?;

    // A hand-made MCP session for b: initialize, initialized, then a 20 s
    // long poll whose connection is closed while it waits.
    let port = server.port();
    let post = |session: Option<&str>, body: Value| {
        let mut head = post_head(port, "");
        if let Some(id) = session {
            head.push_str(&format!(
                "Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: 2025-06-18\r\n"
            ));
        }
        let body = body.to_string().into_bytes();
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        (head, body)
    };
    let (head, body) = post(
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "abandoning", "version": "0"}}}),
    );
    let (status, response, text) = exchange_until(server.addr, &head, body, b"\"result\"")?;
    assert_eq!(status, 200, "{text}");
    let session = header(&response, "mcp-session-id").context("no Mcp-Session-Id")?;
    let (head, body) = post(
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    let (status, response) = exchange(server.addr, &head, body)?;
    assert_eq!(status, 202, "{response}");
    let (head, body) = post(
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "check_messages", "arguments": c.args("b", json!({"wait_seconds": 20}))}}),
    );
    let (status, poll) = request_kept_open(server.addr, &head, &body)?;
    assert_eq!(status, 200);

    // Once the long poll waits, its client goes; the server must notice
    // and end it (one that never does fails here). Only then does a
    // message for b arrive, so nothing may take it but the next check.
    server.log.long_poll_waiting(&c.id, "b").await?;
    poll.shutdown(std::net::Shutdown::Both)?;
    drop(poll);
    server.log.long_poll_ended(&c.id, "b").await?;
    let id = send(&a, &c, "a", "for whoever asks next").await?;

    let b = connect_http(&server.url(), None).await?;
    let inbox = check(&b, &c, "b", json!({})).await?;
    let returned: Vec<Value> =
        bridge_tests::audit_rows_for(&dir.path().join("b.db"), "message.check")?
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.detail).map(|d| d["returned"].clone()))
            .collect::<Result<_, _>>()?;
    assert_eq!(
        bodies(&inbox),
        ["for whoever asks next"],
        "message {id} was delivered to the abandoned long poll instead; check_messages audit: {returned:?}"
    );
    a.cancel().await?;
    b.cancel().await?;
    server.stop().await
}
