//! `bridge`: parses arguments, sends logs to stderr (stdout is the MCP
//! channel), and hands over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BRIDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match bridge::cli::run(bridge::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // An error can quote stored text; it reaches the same terminal.
            eprintln!(
                "error: {}",
                bridge::untrusted::terminal::safe_layout(&format!("{e:#}"))
            );
            std::process::ExitCode::FAILURE
        }
    }
}
