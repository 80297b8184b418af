//! `bridge`: parses arguments, sends logs to stderr (stdout is the MCP
//! channel), and hands over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    bridge_state::logging::init("BRIDGE_LOG", "warn");
    match bridge::cli::run(bridge::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // An error can quote stored text (redacted for secrets) and reaches
            // the operator's terminal (escaped).
            let text = bridge_state::logging::redact_line(&format!("{e:#}"));
            eprintln!("error: {}", bridge::untrusted::terminal::safe_layout(&text));
            std::process::ExitCode::FAILURE
        }
    }
}
