//! Every error answer of `bridge serve --http` says what was wrong and what
//! to do (issue 16), whoever produced it: our middleware, rmcp or axum's
//! fallbacks; and closing a session answers 204 (404 for an unknown one)
//! instead of rmcp's 202. Through the real binary, with a raw HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bridge_tests::{bin, free_port, random_hex};

struct Server {
    child: Child,
    addr: SocketAddr,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bridge serve --http` on a free loopback port with a bearer token and
/// room for one session.
fn start(dir: &std::path::Path) -> anyhow::Result<Server> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let token = random_hex(32);
    let mut cmd = Command::new(bin("bridge"));
    cmd.arg("--db")
        .arg(dir.join("b.db"))
        .args(["serve", "--http", &addr.to_string()])
        .args(["--http-max-sessions", "1"])
        .env("BRIDGE_HTTP_TOKEN", &token)
        .env("BRIDGE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for k in [
        "BRIDGE_HTTP_TOKEN_FILE",
        "BRIDGE_ALLOWED_HOSTS",
        "BRIDGE_ALLOWED_ORIGINS",
        "YOLO_MODE",
    ] {
        cmd.env_remove(k);
    }
    let server = Server {
        child: cmd.spawn()?,
        addr,
        token,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = exchange(addr, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", "")
            && r.status == 200
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("bridge serve --http was not healthy within 15 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// One request on a fresh connection (`Connection: close` is added):
/// `head` is the request line and headers, each ending in CRLF. Reads the
/// answer's head and, unless it is an event stream (which stays open), the
/// body to the end.
fn exchange(addr: SocketAddr, head: &str, body: &str) -> anyhow::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let framing = if body.is_empty() && !head.starts_with("POST") {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    stream.write_all(format!("{head}{framing}Connection: close\r\n\r\n{body}").as_bytes())?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if !response.is_empty() => {
                eprintln!("read after a partial response: {e}");
                break;
            }
            Err(e) => return Err(e).context("reading the response"),
        }
        let text = String::from_utf8_lossy(&response);
        if let Some((head, _)) = text.split_once("\r\n\r\n")
            && head.to_ascii_lowercase().contains("text/event-stream")
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in {head:?}"))?;
    Ok(Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const LIST_TOOLS: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

/// Asserts `reply` has `status` and a body that contains each of `says`.
fn assert_explained(what: &str, reply: &Reply, status: u16, says: &[&str]) {
    assert_eq!(reply.status, status, "{what}: {reply:?}");
    assert!(
        !reply.body.trim().is_empty(),
        "{what}: {status} with an empty body"
    );
    for s in says {
        assert!(
            reply.body.contains(s),
            "{what}: the body does not say `{s}`: {:?}",
            reply.body
        );
    }
}

#[test]
fn every_error_answer_says_what_is_wrong_and_what_to_do() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = start(dir.path())?;
    let host = format!("Host: {}\r\n", s.addr);
    let auth = format!("Authorization: Bearer {}\r\n", s.token);
    let mcp = |method: &str, extra: &str| format!("{method} /mcp HTTP/1.1\r\n{host}{auth}{extra}");
    let json = "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n";

    let cases: Vec<(&str, String, &str, u16, Vec<&str>)> = vec![
        (
            "unknown path (axum fallback)",
            format!("GET /nope HTTP/1.1\r\n{host}{auth}"),
            "",
            404,
            vec!["/mcp", "/healthz"],
        ),
        (
            "wrong method on /healthz (axum)",
            format!("POST /healthz HTTP/1.1\r\n{host}"),
            "",
            405,
            vec!["GET"],
        ),
        (
            "no bearer token (ours)",
            format!("POST /mcp HTTP/1.1\r\n{host}{json}"),
            INITIALIZE,
            401,
            vec!["Authorization: Bearer"],
        ),
        (
            "wrong method on /mcp (rmcp)",
            mcp("PUT", json),
            INITIALIZE,
            405,
            vec!["POST /mcp"],
        ),
        (
            "Accept without event streams (rmcp)",
            mcp(
                "POST",
                "Content-Type: application/json\r\nAccept: application/json\r\n",
            ),
            INITIALIZE,
            406,
            vec!["Accept: application/json, text/event-stream"],
        ),
        (
            "wrong Content-Type (rmcp)",
            mcp(
                "POST",
                "Content-Type: text/plain\r\nAccept: application/json, text/event-stream\r\n",
            ),
            INITIALIZE,
            415,
            vec!["Content-Type: application/json"],
        ),
        (
            "a body that is not JSON (rmcp)",
            mcp("POST", json),
            "this is not json",
            415,
            vec!["JSON-RPC"],
        ),
        (
            "GET without a session id (rmcp)",
            mcp("GET", "Accept: text/event-stream\r\n"),
            "",
            400,
            vec!["Mcp-Session-Id"],
        ),
        (
            "an unknown session (rmcp)",
            mcp(
                "POST",
                &format!("{json}Mcp-Session-Id: {}\r\n", random_hex(16)),
            ),
            LIST_TOOLS,
            404,
            vec!["initialize"],
        ),
        (
            "a foreign Host (rmcp)",
            format!("POST /mcp HTTP/1.1\r\nHost: evil.example.com\r\n{auth}{json}"),
            INITIALIZE,
            403,
            vec!["--allowed-host"],
        ),
        (
            "a foreign Origin (rmcp)",
            mcp(
                "POST",
                &format!("{json}Origin: http://evil.example.com\r\n"),
            ),
            INITIALIZE,
            403,
            vec!["--allowed-origin"],
        ),
        (
            "closing an unknown session (ours)",
            mcp("DELETE", &format!("Mcp-Session-Id: {}\r\n", random_hex(16))),
            "",
            404,
            vec!["initialize"],
        ),
    ];
    for (what, head, body, status, says) in &cases {
        let reply = exchange(s.addr, head, body)?;
        assert_explained(what, &reply, *status, says);
    }

    // Over the body cap (ours): refused from the Content-Length alone.
    let big = "x".repeat((1 << 20) + 1);
    let reply = exchange(s.addr, &mcp("POST", json), &big)?;
    assert_explained("a body over 1 MiB", &reply, 413, &["shorter"]);

    // A session, then over the session cap (ours): 503 with Retry-After.
    let opened = exchange(s.addr, &mcp("POST", json), INITIALIZE)?;
    assert_eq!(opened.status, 200, "{opened:?}");
    let sid = opened.header("mcp-session-id").context("no session id")?;
    let session = format!("{json}Mcp-Session-Id: {sid}\r\n");
    let more = exchange(s.addr, &mcp("POST", json), INITIALIZE)?;
    assert_explained("over the session cap", &more, 503, &["session"]);
    assert!(more.header("retry-after").is_some(), "{more:?}");

    // An MCP-Protocol-Version the server does not know (rmcp).
    let reply = exchange(
        s.addr,
        &mcp(
            "POST",
            &format!("{session}MCP-Protocol-Version: 1999-01-01\r\n"),
        ),
        LIST_TOOLS,
    )?;
    assert_explained("unknown protocol version", &reply, 400, &["2025-11-25"]);

    // What no code of ours sees: a header value with a bare `\r` (a token
    // captured from a TTY) is refused by hyper's parser, with no body.
    // README "Troubleshooting" documents it.
    let reply = exchange(
        s.addr,
        &format!(
            "POST /mcp HTTP/1.1\r\n{host}Authorization: Bearer {}\r\r\n{json}",
            s.token
        ),
        INITIALIZE,
    )?;
    assert_eq!(reply.status, 400, "{reply:?}");
    Ok(())
}

#[test]
fn closing_a_live_session_answers_204_and_it_is_gone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = start(dir.path())?;
    let host = format!("Host: {}\r\n", s.addr);
    let auth = format!("Authorization: Bearer {}\r\n", s.token);
    let json = "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n";
    let mcp = |method: &str, extra: &str| format!("{method} /mcp HTTP/1.1\r\n{host}{auth}{extra}");

    let opened = exchange(s.addr, &mcp("POST", json), INITIALIZE)?;
    assert_eq!(opened.status, 200, "{opened:?}");
    let sid = opened.header("mcp-session-id").context("no session id")?;
    let session = format!("Mcp-Session-Id: {sid}\r\n");
    let ack = exchange(
        s.addr,
        &mcp("POST", &format!("{json}{session}")),
        INITIALIZED,
    )?;
    assert_eq!(ack.status, 202, "{ack:?}");

    let closed = exchange(s.addr, &mcp("DELETE", &session), "")?;
    assert_eq!(closed.status, 204, "DELETE of a live session: {closed:?}");

    // Gone: using it or closing it again is a 404 that says what to do.
    let again = exchange(s.addr, &mcp("DELETE", &session), "")?;
    assert_explained("closing it again", &again, 404, &["initialize"]);
    let used = exchange(
        s.addr,
        &mcp("POST", &format!("{json}{session}")),
        LIST_TOOLS,
    )?;
    assert_explained("using it after close", &used, 404, &["initialize"]);
    Ok(())
}
