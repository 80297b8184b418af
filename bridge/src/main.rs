//! `bridge`: parses arguments, sends logs to stderr (stdout is the MCP
//! channel), and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    bridge_state::logging::init("BRIDGE_LOG", "warn");
    let cli = bridge::cli::Cli::parse();
    // `bridge serve` over stdio has exactly one client whose requests arrive
    // one pipe at a time, and blocking database work goes to tokio's blocking
    // pool either way: worker threads would add memory (a malloc arena each)
    // and cross-thread wake-ups, not throughput. Everything else (HTTP, the
    // console, the CLI) keeps the multi-threaded runtime.
    let mut runtime = if cli.serves_stdio() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let result = match runtime.enable_all().build() {
        Ok(rt) => rt.block_on(bridge::cli::run(cli)),
        Err(e) => Err(anyhow::anyhow!(
            "cannot start the async runtime: {e}; check the process's thread and memory limits"
        )),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // An error can quote stored text (redacted for secrets) and reaches
            // the operator's terminal (escaped).
            let text = bridge_state::logging::redact_line(&format!("{e:#}"));
            eprintln!("error: {}", bridge::untrusted::terminal::safe_error(&text));
            std::process::ExitCode::FAILURE
        }
    }
}
