//! The bridge: an authenticated, redacting, auditable MCP server through
//! which agent sessions talk to each other. It stores, authorizes and audits;
//! it never executes anything.
#![deny(clippy::print_stdout)] // stdout is the MCP channel in `serve`

pub mod cli;
pub mod demo;
pub mod execution;
pub mod guard;
pub mod http;
pub mod http_conn;
pub mod http_errors;
pub mod http_sessions;
pub mod operator;
pub mod review;
pub mod runner_process;
pub mod service;
pub mod startup;
pub mod tally;
pub mod throttle;
pub mod tools;
pub mod untrusted;
pub mod yolo_cli;

// What the runner shares lives in `bridge-state`. Re-exported under the old
// paths (`crate::store`, `bridge::yolo`, ...) so the bridge's modules, the
// tests and the fuzz targets keep their imports; new code may name
// `bridge_state` directly.
pub use bridge_state::{
    audit, auth, clock, config, fileperm, job_result, jobs, logging, messages, policy, ratelimit,
    redact, redact_gitleaks, redact_stream, shutdown, store, wake, yolo,
};

use rmcp::ServiceExt;

pub use bridge_state::Settings;
pub use bridge_state::shutdown::signal as shutdown_signal;
pub use service::Bridge;
pub use tools::BridgeServer;

/// Serves MCP (on stdin/stdout, or over HTTP with `--http`) until the
/// client disconnects or a signal arrives.
pub async fn serve(
    settings: Settings,
    policy: Option<policy::Policy>,
    args: &cli::ServeArgs,
) -> anyhow::Result<()> {
    let yolo = policy.is_some();
    logging::use_redactor(settings.redactor.clone());
    let bridge = cli::open_bridge(&settings, policy)?;
    let http = http_options(args)?;
    let runner = if args.spawn_runner {
        Some(runner_process::Supervisor::start(
            args.runner_bin.clone(),
            &settings,
            args.policy.as_deref(),
        )?)
    } else {
        None
    };
    tracing::info!(db = %settings.db.display(), limits = %settings.limits, yolo, "bridge starting");
    // Counted audit events (empty reads, refusals past the itemized
    // allowance) reach the log every FLUSH_EVERY and at shutdown.
    let flusher = {
        let bridge = bridge.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(tally::FLUSH_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                bridge.flush_tally().await;
            }
        })
    };
    let result = match http {
        Some(opts) => {
            let shutdown = tokio_util::sync::CancellationToken::new();
            let trigger = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("signal received, shutting down");
                trigger.cancel();
            });
            http::serve(bridge.clone(), opts, shutdown, None).await
        }
        None => {
            startup::stdio_hint_if_terminal();
            serve_stdio(bridge.clone()).await
        }
    };
    flusher.abort();
    bridge.flush_tally().await;
    if let Some(r) = runner {
        r.stop().await;
    }
    result
}

/// The HTTP options `args` ask for (`None` for stdio): the token from its
/// file or `BRIDGE_HTTP_TOKEN`, the limits, the allow-lists.
pub(crate) fn http_options(args: &cli::ServeArgs) -> anyhow::Result<Option<http::HttpOptions>> {
    let Some(addr) = args.http else {
        return Ok(None);
    };
    let env_token = std::env::var("BRIDGE_HTTP_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let token = match &args.http_token_file {
        Some(f) => Some(http::read_token_file(f)?),
        None => env_token,
    };
    let (sessions, connections) = args.http_limits()?;
    Ok(Some(http::HttpOptions {
        addr: Some(addr),
        token,
        allowed_hosts: args.allowed_hosts.clone(),
        allowed_origins: args.allowed_origins.clone(),
        sessions,
        connections,
    }))
}

async fn serve_stdio(bridge: Bridge) -> anyhow::Result<()> {
    let service = BridgeServer::new(bridge)
        .serve(rmcp::transport::stdio())
        .await?;
    tokio::select! {
        r = service.waiting() => { r?; }
        _ = shutdown_signal() => { tracing::info!("signal received, shutting down"); }
    }
    Ok(())
}

/// `bridge health URL`: a minimal HTTP GET, so container images need no curl.
pub async fn health(url: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("health URL must start with http:// (got {url})"))?;
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, "/".to_owned()),
    };
    let limit = std::time::Duration::from_secs(5);
    let mut stream =
        tokio::time::timeout(limit, tokio::net::TcpStream::connect(authority)).await??;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await??;
    let status = String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        anyhow::bail!("unhealthy: {status}")
    }
}
