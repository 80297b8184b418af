//! Error answers a person can act on. Every error response of the HTTP
//! transport carries a short text body that says what was wrong and what to
//! do: our own middleware writes such bodies itself; rmcp's terse ones
//! ("Method Not Allowed", "Not Found: Session not found") are completed
//! here, and axum's empty fallbacks (unknown path, wrong method on
//! `/healthz`) are replaced.
//!
//! Also here: ending a session. rmcp answers a `DELETE /mcp` with 202
//! whether or not the session existed; clients (the Python SDK among them)
//! expect 200 or 204 and log a failure otherwise. A live session's DELETE
//! answers 204, an unknown one 404.
//!
//! What cannot be mapped: requests hyper rejects while parsing (a header
//! value with a control character such as the `\r` a TTY adds to a captured
//! token, an over-long head) get hyper's bare 400 before any of our code
//! runs. README "Troubleshooting" documents them.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::SessionManager;

use crate::mcp::http_sessions::Sessions;

/// Error bodies larger than this are passed on untouched (rmcp's are one
/// line; a large one is not a message to complete).
const MAX_ERROR_BODY: usize = 4096;

/// The fix for an error answer, from its status and rmcp's text.
fn advice(status: StatusCode, method: &Method, text: &str) -> &'static str {
    let t = text.to_ascii_lowercase();
    match status {
        StatusCode::BAD_REQUEST if t.contains("session id") => {
            "send the `Mcp-Session-Id` header the `initialize` response returned, or start a session with a POST of `initialize` without it"
        }
        StatusCode::BAD_REQUEST if t.contains("protocol-version") => {
            "send an `MCP-Protocol-Version` this server supports (e.g. 2025-11-25), or leave the header out"
        }
        StatusCode::BAD_REQUEST if t.contains("host") => {
            "send a `Host` header such as `127.0.0.1:8765`"
        }
        StatusCode::BAD_REQUEST => {
            "check the request: a JSON-RPC message POSTed to /mcp with `Content-Type: application/json`"
        }
        StatusCode::FORBIDDEN if t.contains("origin") => {
            "browsers: start the server with `--allowed-origin ORIGIN` (BRIDGE_ALLOWED_ORIGINS); other clients: send no `Origin` header"
        }
        StatusCode::FORBIDDEN => {
            "connect as localhost, 127.0.0.1 or ::1, or start the server with `--allowed-host NAME` (BRIDGE_ALLOWED_HOSTS) for the name you use"
        }
        StatusCode::NOT_FOUND => {
            "the session ended (closed, idle longer than --http-session-idle, or the server restarted); start a new one: POST `initialize` to /mcp without `Mcp-Session-Id`"
        }
        StatusCode::METHOD_NOT_ALLOWED if method == Method::GET => {
            "GET /mcp opens a session's event stream and needs `Mcp-Session-Id` and `Accept: text/event-stream`; send MCP messages with POST /mcp"
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            "send MCP messages with POST /mcp (GET /mcp listens to a session's stream, DELETE /mcp ends a session)"
        }
        StatusCode::NOT_ACCEPTABLE => {
            "send `Accept: application/json, text/event-stream` (GET /mcp: `Accept: text/event-stream`)"
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "send `Content-Type: application/json` and one JSON-RPC message as the body"
        }
        StatusCode::PAYLOAD_TOO_LARGE => "send a shorter request (the limit is 1 MiB)",
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
            "the server is at a limit; retry after the `Retry-After` seconds"
        }
        s if s.is_server_error() => {
            "the server failed; retry, and if it persists read the server's log (BRIDGE_LOG=debug)"
        }
        _ => "see README \"Troubleshooting\"",
    }
}

/// Completes rmcp's error answers with what to do. JSON-RPC errors
/// (`application/json`) already carry a message and are left alone.
pub async fn explain_errors(req: Request, next: Next) -> Response {
    use http_body_util::BodyExt;
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match http_body_util::Limited::new(body, MAX_ERROR_BODY)
        .collect()
        .await
    {
        Ok(c) => String::from_utf8_lossy(&c.to_bytes()).trim().to_owned(),
        Err(_) => String::new(),
    };
    let what = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let body = format!("{what}: {}\n", advice(status, &method, &what));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// `DELETE /mcp`: 204 instead of rmcp's 202 for a session it closed, 404
/// with a reason for one that did not exist. rmcp still sees every DELETE
/// first, so its Host/Origin and header checks answer as before.
pub async fn close_session(State(sessions): State<Sessions>, req: Request, next: Next) -> Response {
    if req.method() != Method::DELETE {
        return next.run(req).await;
    }
    let id: Option<std::sync::Arc<str>> = req
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(Into::into);
    let existed = match &id {
        Some(id) => sessions.has_session(id).await.unwrap_or(true),
        None => true,
    };
    let mut response = next.run(req).await;
    if response.status() == StatusCode::ACCEPTED {
        if !existed {
            return (
                StatusCode::NOT_FOUND,
                "no such session (already closed, expired or never opened): nothing to close; a new session starts with a POST of `initialize` to /mcp\n",
            )
                .into_response();
        }
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// The answer for a path the server does not have.
pub async fn unknown_path(req: Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!(
            "no such path {}: MCP is served at /mcp (POST JSON-RPC messages there), the health check at /healthz\n",
            crate::untrusted::Escaped(req.uri().path())
        ),
    )
        .into_response()
}

/// The answer for `/healthz` with a method other than GET.
pub async fn healthz_method() -> Response {
    let mut r = (
        StatusCode::METHOD_NOT_ALLOWED,
        "/healthz answers GET only: `curl http://127.0.0.1:8765/healthz` (or `bridge health URL`)\n",
    )
        .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_status_has_advice() {
        let get = Method::GET;
        for (status, text, needle) in [
            (400, "Bad Request: Session ID is required", "Mcp-Session-Id"),
            (
                400,
                "Bad Request: Unsupported MCP-Protocol-Version: x",
                "2025-11-25",
            ),
            (
                403,
                "Forbidden: Host header is not allowed",
                "--allowed-host",
            ),
            (
                403,
                "Forbidden: Origin header is not allowed",
                "--allowed-origin",
            ),
            (404, "Not Found: Session not found", "initialize"),
            (405, "Method Not Allowed", "POST /mcp"),
            (406, "Not Acceptable", "Accept: application/json"),
            (
                415,
                "Unsupported Media Type",
                "Content-Type: application/json",
            ),
            (413, "Payload Too Large", "1 MiB"),
            (500, "Internal Server Error", "log"),
            (418, "", "Troubleshooting"),
        ] {
            let s = StatusCode::from_u16(status).unwrap();
            let a = advice(s, &get, text);
            assert!(a.contains(needle), "{status} {text}: {a}");
        }
    }
}
