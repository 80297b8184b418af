//! The bridge: an authenticated, redacting, auditable MCP server through
//! which agent sessions talk to each other. It stores, authorizes and audits;
//! it never executes anything.
#![deny(clippy::print_stdout)] // stdout is the MCP channel in `serve`

pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod operator;
pub mod ratelimit;
pub mod redact;
pub mod service;
pub mod store;
pub mod tools;
pub mod wake;

use rmcp::ServiceExt;

pub use config::Settings;
pub use service::Bridge;
pub use tools::BridgeServer;

/// Serves MCP on stdin/stdout until the client disconnects or a signal
/// arrives.
pub async fn serve_stdio(settings: Settings) -> anyhow::Result<()> {
    let bridge = cli::open_bridge(&settings)?;
    tracing::info!(db = %settings.db.display(), limits = %settings.limits, "serving MCP on stdio");
    let service = BridgeServer::new(bridge)
        .serve(rmcp::transport::stdio())
        .await?;
    tokio::select! {
        r = service.waiting() => { r?; }
        _ = shutdown_signal() => { tracing::info!("signal received, shutting down"); }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
