//! MCP over streamable HTTP (`bridge serve --http ADDR`), safe by default.
//!
//! - Loopback unless told otherwise; a non-loopback address is refused
//!   unless a bearer token is configured, and then every request must carry
//!   it (401 otherwise).
//! - `Host` and `Origin` are checked against allow-lists (DNS-rebinding
//!   protection; rmcp answers 403).
//! - Request bodies are capped; idle sessions and sessions that never
//!   initialize are closed by rmcp's session manager (5 min / 60 s); a long
//!   poll is bounded at 50 s.
//! - SIGTERM/SIGINT shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::service::Bridge;
use crate::tools::BridgeServer;

/// Largest request body accepted (a 50 000-character message is < 200 KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub addr: Option<SocketAddr>,
    /// The bearer token itself (from BRIDGE_HTTP_TOKEN or a file).
    pub token: Option<String>,
    /// Extra `Host` values to accept besides localhost/127.0.0.1/::1.
    pub allowed_hosts: Vec<String>,
    /// Browser origins to accept (requests without Origin always pass).
    pub allowed_origins: Vec<String>,
}

/// Reads a token file (first line, trimmed), creating it with a fresh
/// random token (mode 0600) if it does not exist; refuses one that group
/// or others can read or write, like the server secret. The token itself
/// is never logged.
pub fn read_token_file(path: &PathBuf) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // The same rule as the server secret: 0600, ours, in a safe directory.
    crate::fileperm::check_file(path, crate::fileperm::Kind::Secret)?;
    if !path.exists() {
        let token = crate::auth::new_token()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create token file {}", path.display()))?;
        writeln!(f, "{token}")?;
        tracing::warn!(
            file = %path.display(),
            "created a new HTTP bearer token; clients must send `Authorization: Bearer <contents of that file>`"
        );
        return Ok(token);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

pub fn check_token(token: &str) -> anyhow::Result<()> {
    if token.len() < 32 {
        bail!(
            "the HTTP bearer token must be at least 32 characters (got {}); generate one with `openssl rand -hex 32`",
            token.len()
        );
    }
    Ok(())
}

/// Equal-length constant-time comparison.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_bearer(
    State(token): State<Arc<Option<String>>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(expected) = token.as_deref() {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| same(p.as_bytes(), expected.as_bytes())) {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token; send `Authorization: Bearer <BRIDGE_HTTP_TOKEN>`\n",
            )
                .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// Cancelled when the response to a request is dropped before it finished:
/// the client is gone, so a long poll must not consume messages for it.
#[derive(Clone, Debug)]
pub struct ClientGone(pub CancellationToken);

async fn watch_disconnect(mut req: Request, next: Next) -> Response {
    let gone = CancellationToken::new();
    req.extensions_mut().insert(ClientGone(gone.clone()));
    let guard = gone.drop_guard();
    next.run(req).await.map(|body| {
        axum::body::Body::new(Guarded {
            body,
            _guard: guard,
        })
    })
}

/// A response body that cancels its [`ClientGone`] token when dropped.
struct Guarded {
    body: axum::body::Body,
    _guard: tokio_util::sync::DropGuard,
}

impl http_body::Body for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

async fn health(State(bridge): State<Bridge>) -> Response {
    match bridge
        .db()
        .call(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}\n"),
        )
            .into_response(),
    }
}

/// Serves until `shutdown` fires. Returns the bound address through `bound`
/// (useful with port 0).
pub async fn serve(
    bridge: Bridge,
    opts: HttpOptions,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let addr = opts
        .addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8765)));
    if let Some(t) = &opts.token {
        check_token(t)?;
    } else if !addr.ip().is_loopback() {
        bail!(
            "refusing to listen on {addr} without authentication: that address is reachable from other machines. Set BRIDGE_HTTP_TOKEN (or --http-token-file) so every request must carry `Authorization: Bearer …`, or bind 127.0.0.1"
        );
    }
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(opts.allowed_hosts.iter().cloned());
    // Shutdown order: end long polls (their answers still go out), wait for
    // in-flight tool calls, then close sessions and connections.
    let rmcp_stop = CancellationToken::new();
    let drain = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(rmcp_stop.clone());
    config = if opts.allowed_origins.is_empty() {
        config.enforce_origin_validation()
    } else {
        config.with_allowed_origins(opts.allowed_origins.clone())
    };
    let b = bridge.clone();
    let mcp = StreamableHttpService::new(
        {
            let (drain, tracker) = (drain.clone(), tracker.clone());
            move || Ok(BridgeServer::new(b.clone()).draining(drain.clone(), tracker.clone()))
        },
        LocalSessionManager::default().into(),
        config,
    );
    let token = Arc::new(opts.token.clone());
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn(watch_disconnect))
        .layer(middleware::from_fn_with_state(token, require_bearer))
        .route("/healthz", get(health).with_state(bridge));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, auth = opts.token.is_some(), "serving MCP over streamable HTTP at /mcp");
    if let Some(tx) = bound {
        let _ = tx.send(local);
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            drain.cancel();
            tracker.close();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait()).await;
            // Let the last answers through rmcp's channels onto the wire.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            rmcp_stop.cancel();
        })
        .await?;
    Ok(())
}
