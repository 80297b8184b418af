//! MCP over streamable HTTP (`bridge serve --http ADDR`), safe by default.
//!
//! - Loopback unless told otherwise; a non-loopback address is refused
//!   unless a bearer token is configured, and then every request must carry
//!   it (401 otherwise).
//! - `Host` and `Origin` are checked against allow-lists (DNS-rebinding
//!   protection; rmcp answers 403).
//! - Request bodies are capped in size and in time; a long poll is bounded
//!   at 50 s.
//! - Sessions are capped in total and per peer address, closed when idle
//!   and when the handshake is not completed in time (`http_sessions`).
//! - Connections are capped in total and per peer address, and a request
//!   head must arrive within the header timeout (`http_conn`).
//! - Overload is refused at once with 503 and `Retry-After`, never queued.
//! - SIGTERM/SIGINT shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

pub use crate::mcp::http_conn::ConnLimits;
use crate::mcp::http_conn::{RETRY_AFTER_SECS, WithGuard};
use crate::mcp::http_errors;
pub use crate::mcp::http_sessions::SessionLimits;
use crate::mcp::http_sessions::{ADMISSION, Sessions};
use crate::mcp::service::Bridge;
use crate::mcp::tools::BridgeServer;

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
    pub sessions: SessionLimits,
    pub connections: ConnLimits,
}

/// Why the HTTP transport could not start or could not read its token.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Permissions(#[from] bridge_state::fileperm::PermError),
    #[error(transparent)]
    Secret(#[from] bridge_state::auth::SecretError),
    #[error("cannot create token file {}: {source}; check that its directory exists and is writable", path.display())]
    CreateTokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read token file {}: {source}; check the path and its permissions", path.display())]
    ReadTokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the HTTP bearer token must be at least 32 characters (got {0}); generate one with `openssl rand -hex 32`"
    )]
    ShortToken(usize),
    #[error(
        "refusing to listen on {0} without authentication: that address is reachable from other machines. Set BRIDGE_HTTP_TOKEN (or --http-token-file) so every request must carry `Authorization: Bearer …`, or bind 127.0.0.1"
    )]
    Unauthenticated(SocketAddr),
    #[error("cannot listen on {addr}: {source}; choose a free address and port")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Reads a token file (first line, trimmed), creating it with a fresh
/// random token (mode 0600) if it does not exist; refuses one that group
/// or others can read or write, like the server secret. The token itself
/// is never logged.
pub fn read_token_file(path: &PathBuf) -> Result<String, HttpError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // The same rule as the server secret: 0600, ours, in a safe directory.
    bridge_state::fileperm::check_file(path, bridge_state::fileperm::Kind::Secret)?;
    if !path.exists() {
        let token = bridge_state::auth::new_token()?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| writeln!(f, "{token}"))
            .map_err(|source| HttpError::CreateTokenFile {
                path: path.clone(),
                source,
            })?;
        tracing::warn!(
            file = %path.display(),
            "created a new HTTP bearer token; clients must send `Authorization: Bearer <contents of that file>`"
        );
        return Ok(token);
    }
    let text = std::fs::read_to_string(path).map_err(|source| HttpError::ReadTokenFile {
        path: path.clone(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

pub fn check_token(token: &str) -> Result<(), HttpError> {
    if token.len() < 32 {
        return Err(HttpError::ShortToken(token.len()));
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
    next.run(req)
        .await
        .map(|body| axum::body::Body::new(WithGuard { body, guard }))
}

/// A 503 with `Retry-After` and a one-line reason.
fn overloaded(reason: String) -> Response {
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

/// Reserves a session place for a request that may create a session (a
/// POST without `Mcp-Session-Id`) before rmcp reads it; 503 over the cap.
async fn admit_session(State(sessions): State<Sessions>, req: Request, next: Next) -> Response {
    let may_create =
        req.method() == axum::http::Method::POST && !req.headers().contains_key("mcp-session-id");
    if !may_create {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match sessions.reserve(peer) {
        Ok(slot) => {
            ADMISSION
                .scope(std::cell::Cell::new(Some(slot)), next.run(req))
                .await
        }
        Err(refused) => overloaded(refused.to_string()),
    }
}

/// Reads the whole body within `limit` and [`MAX_BODY_BYTES`] before
/// anything else looks at the request: a slow body would otherwise hold a
/// connection (and a session place) for as long as the client likes.
async fn read_body_in_time(
    State(limit): State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    // A Content-Length over the cap is refused before waiting for a byte
    // of it (the HTTP fuzz target's oversized seed waited for the timeout).
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return too_large();
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(limit, limited.collect()).await {
        Ok(Ok(collected)) => {
            let body = axum::body::Body::from(collected.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => too_large(),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {e}\n"),
        )
            .into_response(),
        Err(_) => {
            let mut r = (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s; send it at once\n",
                    limit.as_secs_f64()
                ),
            )
                .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over {MAX_BODY_BYTES} bytes; send a shorter message\n"),
    )
        .into_response()
}

/// `ok`, and which runner engines are up (names only: the URLs and errors
/// are for the operator's `bridge list`, not for any HTTP client).
async fn health(State(bridge): State<Bridge>) -> Response {
    use bridge_state::clock::{Clock, SystemClock};
    let now = SystemClock.now_ms();
    match bridge
        .db()
        .read(move |c| {
            bridge_state::store::ping(c)?;
            Ok(bridge_state::engines::statuses(c, now)?)
        })
        .await
    {
        Ok(engines) => {
            let mut body = "ok\n".to_owned();
            if !engines.is_empty() {
                let up = engines.iter().filter(|e| e.up).count();
                let down: Vec<&str> = engines
                    .iter()
                    .filter(|e| !e.up)
                    .map(|e| e.name.as_str())
                    .collect();
                body += &format!("engines: {up} of {} up", engines.len());
                if !down.is_empty() {
                    body += &format!(" (down: {}; `bridge list` says why)", down.join(", "));
                }
                body += "\n";
            }
            (StatusCode::OK, body).into_response()
        }
        // The error names paths and SQLite's words: for the log, not for
        // a client that showed no token.
        Err(e) => {
            tracing::error!(error = %e, "healthz: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// File descriptors kept for the database, its watch and the log, beyond
/// one per connection.
const SPARE_FDS: u64 = 256;

/// Raises the soft open-files limit so `max_connections` sockets fit (the
/// soft limit is often 1024); warns if the hard limit is too low, since
/// `accept` would then fail before the connection cap is reached.
fn raise_fd_limit(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let needed = max_connections as u64 + SPARE_FDS;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= needed {
        return;
    }
    let target = needed.min(hard);
    if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        tracing::warn!(error = %e, soft, "cannot raise the open-files limit");
    }
    if target < needed {
        tracing::warn!(
            limit = target,
            needed,
            "the open-files limit is below --http-max-connections plus {SPARE_FDS}; raise the hard limit (`ulimit -Hn`, compose `ulimits: nofile`) or lower --http-max-connections"
        );
    }
}

/// The listen queue asked for. With the 128 or 1 024 a plain `bind` gets,
/// a flood of reconnecting clients overflows the queue and the kernel drops
/// a legitimate client's SYN, which it resends only after a second.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Where Linux caps every listen queue.
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

/// Binds `addr` with a [`LISTEN_BACKLOG`]-deep listen queue; warns if the
/// kernel caps it lower.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can bind at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    if let Some(cap) = std::fs::read_to_string(SOMAXCONN)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|cap| *cap < LISTEN_BACKLOG)
    {
        tracing::warn!(
            somaxconn = cap,
            wanted = LISTEN_BACKLOG,
            "the kernel caps the HTTP listen queue at net.core.somaxconn; under a connection flood legitimate clients may wait a second for a SYN retry. Raise it with `sysctl -w net.core.somaxconn={LISTEN_BACKLOG}` (compose: `sysctls: net.core.somaxconn: {LISTEN_BACKLOG}`)"
        );
    }
    socket.listen(LISTEN_BACKLOG)
}

/// The address to listen on, once the options are safe: a token, if set,
/// is long enough; without one only loopback is allowed.
pub fn check_options(opts: &HttpOptions) -> Result<SocketAddr, HttpError> {
    let addr = opts
        .addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8765)));
    if let Some(t) = &opts.token {
        check_token(t)?;
    } else if !addr.ip().is_loopback() {
        return Err(HttpError::Unauthenticated(addr));
    }
    Ok(addr)
}

/// Serves until `shutdown` fires. Returns the bound address through `bound`
/// (useful with port 0).
pub async fn serve(
    bridge: Bridge,
    opts: HttpOptions,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), HttpError> {
    let addr = check_options(&opts)?;
    let app = app(bridge, &opts);
    raise_fd_limit(opts.connections.max_total);
    let listener = listen(addr).map_err(|source| HttpError::Listen { addr, source })?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, auth = opts.token.is_some(), sessions = ?opts.sessions, connections = ?opts.connections, "serving MCP over streamable HTTP at /mcp");
    if let Some(tx) = bound {
        let _ = tx.send(local);
    }
    let App {
        router,
        drain,
        tracker,
        rmcp_stop,
    } = app;
    crate::mcp::http_conn::serve(listener, router, opts.connections, async move {
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

/// The HTTP application and the tokens that stop it. `serve` and the
/// `http` fuzz target build it with [`app`], so the fuzzer drives exactly
/// the stack a client reaches.
pub struct App {
    /// `/mcp` (bearer token, body cap and timeout, session cap, rmcp with
    /// its Host/Origin checks, error bodies and DELETE statuses from
    /// `http_errors`) and `/healthz`.
    pub router: Router,
    /// Cancelled first at shutdown: long polls end, their answers still go out.
    pub drain: CancellationToken,
    /// The tool calls in flight, awaited before rmcp stops.
    pub tracker: tokio_util::task::TaskTracker,
    /// Closes rmcp's sessions.
    pub rmcp_stop: CancellationToken,
}

/// Builds the application for `opts` (its token, hosts, origins and session
/// limits); the address and connection limits belong to the accept loop.
pub fn app(bridge: Bridge, opts: &HttpOptions) -> App {
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
    let sessions = Sessions::new(opts.sessions);
    let mcp = StreamableHttpService::new(
        {
            let (drain, tracker) = (drain.clone(), tracker.clone());
            move || Ok(BridgeServer::new(b.clone()).draining(drain.clone(), tracker.clone()))
        },
        Arc::new(sessions.clone()),
        config,
    );
    let token = Arc::new(opts.token.clone());
    // The last layer runs first: the token, then the body, then the cap.
    let router = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn(http_errors::explain_errors))
        // Before the outer layers, so unknown paths need the token too.
        .fallback(http_errors::unknown_path)
        .layer(middleware::from_fn_with_state(
            sessions.clone(),
            http_errors::close_session,
        ))
        .layer(middleware::from_fn(watch_disconnect))
        .layer(middleware::from_fn_with_state(sessions, admit_session))
        .layer(middleware::from_fn_with_state(
            opts.connections.body_timeout,
            read_body_in_time,
        ))
        .layer(middleware::from_fn_with_state(token, require_bearer))
        .route(
            "/healthz",
            get(health)
                .fallback(http_errors::healthz_method)
                .with_state(bridge),
        );
    App {
        router,
        drain,
        tracker,
        rmcp_stop,
    }
}
