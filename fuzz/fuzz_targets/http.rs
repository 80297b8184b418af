//! Fuzzes the HTTP request path: raw bytes go, as one client connection,
//! through the application `bridge serve --http` builds
//! (`bridge::mcp::http::app`: bearer token, body cap and timeout, session cap,
//! rmcp's streamable HTTP service with its Host/Origin checks) served by
//! hyper's HTTP/1 server with the header timeout
//! (`bridge::mcp::http_conn::serve_io`), over an in-memory pipe on a paused clock.
//! `@TOKEN@` in the input becomes the bearer token, so seeds reach rmcp.
//!
//! Properties besides "no panic": the server answers or closes within
//! [`BOUND`] (the header and body timeouts bound every wait); what it wrote
//! is a sequence of complete, well-formed HTTP responses; without the token
//! nothing but `/healthz` succeeds and no session is created; a request
//! with the token but a Host outside the allow-list never succeeds (and a
//! plain POST gets 403); no response body holds the bearer token, a session
//! token of the fixture's conversation or an `Mcp-Session-Id`.
#![no_main]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bridge::mcp::http::{HttpOptions, SessionLimits};
use bridge::mcp::http_conn::ConnLimits;
use bridge_fuzz::Fixture;
// Not in `fuzz/tests/replay.rs`, which defines its own `fuzz_target!`.
#[cfg(not(test))]
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The bearer token the server is configured with (at least 32 characters).
const TOKEN: &str = "fuzz-bearer-token-7f3a9c2e41d86b05e9a1";
const PLACEHOLDER: &[u8] = b"@TOKEN@";

/// `Host` values the server accepts (bridge's defaults, no extras).
const ALLOWED_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The longest a connection may stay open: the body timeout (30 s) after a
/// head that took at most the header timeout (10 s), plus a margin. Paused
/// time makes waiting for it free.
const BOUND: Duration = Duration::from_secs(120);

struct State {
    fixture: Fixture,
    runtime: tokio::runtime::Runtime,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let state = guard.get_or_insert_with(|| State {
        fixture: Fixture::new(),
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("tokio runtime"),
    });
    let input = splice(data);
    let secrets = [
        TOKEN,
        &state.fixture.token_a.clone(),
        &state.fixture.token_b.clone(),
    ]
    .map(str::to_owned);
    let bridge = state.fixture.bridge.clone();
    let output = state.runtime.block_on(exchange(bridge, input.clone()));
    check(&input, &output, &secrets);
});

/// Replaces every `@TOKEN@` with the bearer token.
fn splice(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(i) = rest
        .windows(PLACEHOLDER.len())
        .position(|w| w == PLACEHOLDER)
    {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(TOKEN.as_bytes());
        rest = &rest[i + PLACEHOLDER.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Writes `input` on a fresh connection to a fresh app, keeps the write
/// side open (a client waiting for answers), and returns everything the
/// server wrote until it closed.
async fn exchange(bridge: bridge::Bridge, input: Vec<u8>) -> Vec<u8> {
    let opts = HttpOptions {
        token: Some(TOKEN.to_owned()),
        sessions: SessionLimits {
            max_total: 4,
            max_per_peer: 2,
            ..SessionLimits::default()
        },
        ..HttpOptions::default()
    };
    let app = bridge::mcp::http::app(bridge, &opts);
    let (client, server) = tokio::io::duplex(1 << 16);
    let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
    let conn = tokio::spawn(bridge::mcp::http_conn::serve_io(
        server,
        app.router,
        peer,
        ConnLimits::default(),
    ));
    let (mut rd, mut wr) = tokio::io::split(client);
    let talk = async {
        let write = async {
            // The server may close before reading everything (a 413, a
            // parse error): a broken pipe is an answer, not a failure.
            let _ = wr.write_all(&input).await;
            std::future::pending::<()>().await
        };
        let mut out = Vec::new();
        let read = rd.read_to_end(&mut out);
        tokio::select! {
            r = read => r.map(|_| out),
            () = write => unreachable!(),
        }
    };
    let output = match tokio::time::timeout(BOUND, talk).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("reading the server's answer failed: {e}"),
        Err(_) => panic!("the server neither answered nor closed within {BOUND:?}"),
    };
    let _ = conn.await;
    // Close rmcp's sessions and let their tasks end before the next input.
    app.rmcp_stop.cancel();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    output
}

/// A request head as far as this harness can tell requests apart.
struct Req {
    method: String,
    path: String,
    host: Option<String>,
    authorized: bool,
    has_session: bool,
    body_len: usize,
    /// The whole body is in the input (else the answer is a 408).
    complete: bool,
}

/// The requests in `input`, in order, as long as their boundaries are
/// unambiguous (a complete head, no Transfer-Encoding, at most one plain
/// Content-Length, at most one Host and one Authorization); the responses to these come first, in this order.
fn requests(input: &[u8]) -> Vec<Req> {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = req.parse(rest) else {
            return out;
        };
        let get = |name: &str| {
            req.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect::<Vec<_>>()
        };
        let lengths = get("content-length");
        let body_len = match lengths.as_slice() {
            [] => 0,
            [v] if !v.is_empty() && v.len() < 9 && v.iter().all(u8::is_ascii_digit) => {
                std::str::from_utf8(v).unwrap().parse().unwrap()
            }
            _ => return out,
        };
        // Which of two Hosts or tokens counts is the server's choice.
        if !get("transfer-encoding").is_empty()
            || get("host").len() > 1
            || get("authorization").len() > 1
        {
            return out;
        }
        let authorized = get("authorization")
            .iter()
            .any(|v| *v == format!("Bearer {TOKEN}").as_bytes());
        out.push(Req {
            method: req.method.unwrap_or_default().to_owned(),
            path: req.path.unwrap_or_default().to_owned(),
            host: get("host")
                .first()
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            authorized,
            has_session: !get("mcp-session-id").is_empty(),
            body_len,
            complete: rest.len() >= head + body_len,
        });
        if rest.len() < head + body_len {
            return out;
        }
        rest = &rest[head + body_len..];
    }
}

/// Whether rmcp's allow-list admits this `Host` value. rmcp reads it as a
/// URI authority, so the port, IPv6 brackets and a `user@` prefix do not
/// count (a browser, the DNS-rebinding threat, never sends a `user@`).
fn host_allowed(host: &str) -> bool {
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    ALLOWED_HOSTS.iter().any(|a| a.eq_ignore_ascii_case(name))
}

struct Resp {
    status: u16,
    session_id: Option<String>,
    body: Vec<u8>,
}

/// Splits the server's output into responses; panics on anything that is
/// not a complete, well-formed HTTP/1.1 response.
fn responses(mut out: &[u8]) -> Vec<Resp> {
    let mut all = Vec::new();
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head = match resp.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "the server wrote an incomplete or malformed response head ({other:?}): {:?}",
                String::from_utf8_lossy(&out[..out.len().min(400)])
            ),
        };
        let status = resp.code.expect("a complete head has a status");
        let get = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let chunked = get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length = get("content-length");
        let session_id = get("mcp-session-id");
        out = &out[head..];
        let body = if status < 200 || status == 204 || status == 304 {
            Vec::new()
        } else if chunked {
            let (body, used) = dechunk(out);
            out = &out[used..];
            body
        } else if let Some(len) = length {
            let len: usize = len.trim().parse().expect("a numeric Content-Length");
            assert!(
                out.len() >= len,
                "a response body is shorter than its Content-Length"
            );
            let body = out[..len].to_vec();
            out = &out[len..];
            body
        } else {
            std::mem::take(&mut out).to_vec()
        };
        if status >= 200 {
            all.push(Resp {
                status,
                session_id,
                body,
            });
        }
    }
    all
}

/// Decodes a chunked body; returns it and the bytes it took.
fn dechunk(mut s: &[u8]) -> (Vec<u8>, usize) {
    let start = s.len();
    let mut body = Vec::new();
    loop {
        let line_end = s
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a complete chunk size line");
        let size_text = std::str::from_utf8(&s[..line_end]).expect("an ASCII chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("a hexadecimal chunk size");
        s = &s[line_end + 2..];
        if size == 0 {
            assert!(s.starts_with(b"\r\n"), "a chunked body ends with CRLF");
            s = &s[2..];
            return (body, start - s.len());
        }
        assert!(s.len() >= size + 2, "a chunk is complete");
        body.extend_from_slice(&s[..size]);
        assert_eq!(&s[size..size + 2], b"\r\n", "a chunk ends with CRLF");
        s = &s[size + 2..];
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn check(input: &[u8], output: &[u8], secrets: &[String; 3]) {
    let responses = responses(output);
    // `HTTP_FUZZ_TRACE=1`: what each input got, to see that seeds reach rmcp.
    if std::env::var_os("HTTP_FUZZ_TRACE").is_some() {
        let seen: Vec<_> = responses
            .iter()
            .map(|r| (r.status, r.session_id.is_some(), r.body.len()))
            .collect();
        eprintln!("responses (status, session, body bytes): {seen:?}");
    }
    let issued: Vec<&String> = responses
        .iter()
        .filter_map(|r| r.session_id.as_ref())
        .collect();
    for r in &responses {
        for secret in secrets.iter().chain(issued.iter().copied()) {
            assert!(
                !contains(&r.body, secret),
                "a response body holds a secret (bearer token, session token or Mcp-Session-Id)"
            );
        }
    }
    if !contains(input, TOKEN) {
        for r in &responses {
            assert!(
                r.session_id.is_none(),
                "a session was created without the bearer token"
            );
            assert!(
                !(200..300).contains(&r.status) || r.body == b"ok\n",
                "status {} without the bearer token, not from /healthz",
                r.status
            );
        }
    }
    for (req, resp) in requests(input).iter().zip(&responses) {
        let ok = (200..300).contains(&resp.status);
        if !req.authorized {
            assert!(
                !ok || (req.path.starts_with("/healthz") && resp.body == b"ok\n"),
                "{} {} without the bearer token got {}",
                req.method,
                req.path,
                resp.status
            );
            assert!(
                resp.session_id.is_none(),
                "a session without the bearer token"
            );
        }
        let bad_host = !req.host.as_deref().is_some_and(host_allowed);
        if req.authorized && bad_host && req.path.starts_with("/mcp") {
            assert!(
                !ok,
                "{} {} with Host {:?} got {}",
                req.method, req.path, req.host, resp.status
            );
            // Without any Host rmcp answers 400, also a refusal.
            if req.method == "POST"
                && req.path == "/mcp"
                && req.host.is_some()
                && !req.has_session
                && req.complete
                && req.body_len < 1000
            {
                // 403 for a foreign name, 400 for one that is not text.
                assert!(
                    resp.status == 403 || resp.status == 400,
                    "a POST with Host {:?} got {}, not 403",
                    req.host,
                    resp.status
                );
            }
        }
    }
}
