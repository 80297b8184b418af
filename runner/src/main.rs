//! `runner`: parses arguments, logs to stderr, and runs the job loop until
//! SIGTERM or SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use bridge_state::engines::{self, EngineConfig};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "runner",
    version,
    about = "Runs operator-approved commands from the bridge in throwaway hardened containers"
)]
struct Args {
    /// The bridge's SQLite database
    #[arg(long, env = "BRIDGE_DB")]
    db: Option<PathBuf>,
    /// TOML config file shared with the bridge (for redaction patterns)
    #[arg(long, env = "BRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Extra redaction patterns (same file as the bridge's)
    #[arg(long, env = "BRIDGE_REDACTION_PATTERNS")]
    redaction_patterns: Option<PathBuf>,
    /// Warm containers always kept per enabled configuration; the pool grows
    /// past it while jobs arrive faster than containers start
    #[arg(long, default_value_t = 2)]
    pool_size: usize,
    /// Jobs run at the same time (also the most warm containers the pool
    /// grows to per configuration)
    #[arg(long, default_value_t = 8)]
    max_parallel: usize,
    /// Seconds without demand after which a grown pool shrinks back to
    /// --pool-size
    #[arg(long, default_value_t = 60)]
    pool_idle_secs: u64,
    /// Seconds in-flight jobs get to finish on shutdown
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
    /// This runner runs in a container (compose): map workspace paths to host
    /// paths through its own mounts, for the sibling sandbox containers
    #[arg(long, env = "RUNNER_TRANSLATE_MOUNTS")]
    translate_mounts: bool,
    /// Extra command-policy rules: the same TOML file as the bridge's
    /// `--policy`. Jobs are re-checked against it (re-read when it changes)
    /// before they run.
    #[arg(long, env = "BRIDGE_POLICY")]
    policy: Option<PathBuf>,
    /// A job that waited longer than this for a runner is failed instead of
    /// run, e.g. `10m`, `90s` [default: config `queue_ttl`, else 10m]
    #[arg(long, env = "BRIDGE_QUEUE_TTL")]
    queue_ttl: Option<String>,
    /// A Docker engine to run jobs on, repeatable; replaces the config
    /// file's `[[engine]]` list. Comma-separated keys, e.g.
    /// `name=b,url=tcp://HOST:2376,ca=ca.pem,cert=cert.pem,key=key.pem,max_parallel=4`
    /// or `name=c,url=ssh://USER@HOST,identity=KEY` (also `local=true|false`,
    /// `pool_size=N`). A TLS engine's certificate must chain to the `ca`
    /// file alone; `ca=system` trusts the system's roots instead [default:
    /// this host's socket]
    #[arg(long = "engine", value_name = "KEYS", value_parser = EngineConfig::parse_flag)]
    engines: Vec<EngineConfig>,
    /// Check health and exit: an engine answers and a runner heartbeat is fresh
    #[arg(long)]
    health: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    bridge_state::logging::init("RUNNER_LOG", "info");
    let args = Args::parse();
    let settings = match bridge_state::Settings::resolve(bridge_state::config::Overrides {
        config: args.config,
        db: args.db,
        redaction_patterns: args.redaction_patterns,
        queue_ttl: args.queue_ttl,
        ..Default::default()
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    bridge_state::logging::use_redactor(settings.redactor.clone());
    let engines = match (args.engines, settings.engines) {
        (flags, _) if !flags.is_empty() => flags,
        (_, file) if !file.is_empty() => file,
        // As before engines were configurable: this host's socket, or
        // DOCKER_HOST when it names another unix socket.
        _ => vec![EngineConfig {
            url: std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| h.starts_with("unix://"))
                .unwrap_or_else(|| EngineConfig::default_local().url),
            ..EngineConfig::default_local()
        }],
    };
    if let Err(e) = engines::validate(&engines) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    if args.health {
        return match runner::health(&settings.db, &engines).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        bridge_state::shutdown::signal().await;
        trigger.cancel();
    });
    let cfg = runner::Config {
        db: settings.db,
        redactor: settings.redactor,
        pool_size: args.pool_size,
        max_parallel: args.max_parallel.max(1),
        pool_idle: Duration::from_secs(args.pool_idle_secs),
        grace: Duration::from_secs(args.grace_secs),
        translate_mounts: args.translate_mounts,
        policy_file: args.policy,
        queue_ttl: settings.queue_ttl,
        engines,
    };
    match runner::run(cfg, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: {}",
                bridge_state::logging::redact_line(&e.to_string())
            );
            std::process::ExitCode::FAILURE
        }
    }
}
