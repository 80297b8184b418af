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
pub mod execution;
pub mod guard;
pub mod operator;
pub mod policy;
pub mod ratelimit;
pub mod redact;
pub mod runner_process;
pub mod service;
pub mod store;
pub mod tools;
pub mod wake;
pub mod yolo;
pub mod yolo_cli;

use rmcp::ServiceExt;

pub use config::Settings;
pub use service::Bridge;
pub use tools::BridgeServer;

/// Serves MCP on stdin/stdout until the client disconnects or a signal
/// arrives.
pub async fn serve_stdio(
    settings: Settings,
    policy: Option<policy::Policy>,
    args: &cli::ServeArgs,
) -> anyhow::Result<()> {
    let yolo = policy.is_some();
    let bridge = cli::open_bridge(&settings, policy)?;
    let runner = if args.spawn_runner {
        Some(runner_process::Supervisor::start(
            args.runner_bin.clone(),
            &settings.db,
        )?)
    } else {
        None
    };
    tracing::info!(db = %settings.db.display(), limits = %settings.limits, yolo, "serving MCP on stdio");
    let service = BridgeServer::new(bridge)
        .serve(rmcp::transport::stdio())
        .await?;
    tokio::select! {
        r = service.waiting() => { r?; }
        _ = shutdown_signal() => { tracing::info!("signal received, shutting down"); }
    }
    if let Some(r) = runner {
        r.stop().await;
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
