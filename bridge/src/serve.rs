//! `bridge serve`: its arguments, opening the shared state, and running the
//! MCP face (stdio or HTTP) with the runner beside it when asked, until the
//! client disconnects or a signal arrives.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use rmcp::ServiceExt;

use bridge_state::auth::ServerSecret;
use bridge_state::clock::SystemClock;
use bridge_state::config::Settings;
use bridge_state::shutdown::signal as shutdown_signal;
use bridge_state::store::{Db, Sync};
use bridge_state::{logging, policy};

use crate::mcp::service::{Bridge, BridgeParts};
use crate::mcp::tools::BridgeServer;
use crate::mcp::{http, tally};
use crate::{runner_process, startup};

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Conversation lifetime, e.g. `3h`, `90m` [default: 3h]
    #[arg(long, env = "BRIDGE_CONVERSATION_TTL")]
    pub conversation_ttl: Option<String>,
    /// Send quota per session: `10/1m,100/1h,500/1d` (the default) or `off`
    #[arg(long, env = "BRIDGE_RATE_LIMIT")]
    pub rate_limit: Option<String>,
    /// Failed authentications per client and per conversation before backoff: `20/1m` (the default) or `off`
    #[arg(long, env = "BRIDGE_AUTH_FAILURES")]
    pub auth_failures: Option<String>,
    /// Conversations one client (stdio process or HTTP session) may create: `60/1m,600/1h` (the default) or `off`
    #[arg(long, env = "BRIDGE_CREATE_LIMIT")]
    pub create_limit: Option<String>,
    /// Conversations all clients together may create: `600/1m` (the default) or `off`
    #[arg(long, env = "BRIDGE_CREATE_LIMIT_GLOBAL")]
    pub create_limit_global: Option<String>,
    /// Ceiling on live conversations in the database [default: 10000]
    #[arg(long, env = "BRIDGE_MAX_CONVERSATIONS")]
    pub max_conversations: Option<u64>,
    /// Extra redaction patterns: a TOML file of [[pattern]] name/regex/placeholder
    #[arg(long, env = "BRIDGE_REDACTION_PATTERNS")]
    pub redaction_patterns: Option<PathBuf>,
    /// Commit durability: `normal` survives process crashes, `full` also power loss
    #[arg(long, env = "BRIDGE_SYNC", value_enum)]
    pub sync: Option<Sync>,
    /// Check the set-up and exit: open the database (with the same permission
    /// checks), the secret and the HTTP token, answer one MCP `initialize`
    /// in-process, print one line; exit status 0 if all went well
    #[arg(long)]
    pub check: bool,
    /// Offer the YOLO tools (propose_command, execute_command); same as YOLO_MODE=1
    #[arg(long)]
    pub yolo: bool,
    /// Extra command-policy rules: a TOML file (see YOLO_MODE.md)
    #[arg(long, env = "BRIDGE_POLICY")]
    pub policy: Option<PathBuf>,
    /// Start the runner next to this server (requires YOLO) and stop it on exit
    #[arg(long)]
    pub spawn_runner: bool,
    /// The runner binary [default: `runner` next to this binary]
    #[arg(long, env = "BRIDGE_RUNNER_BIN")]
    pub runner_bin: Option<PathBuf>,
    /// Serve MCP over streamable HTTP at ADDR (e.g. 127.0.0.1:8765) instead of stdio
    #[arg(long, env = "BRIDGE_HTTP")]
    pub http: Option<std::net::SocketAddr>,
    /// File holding the HTTP bearer token (or set BRIDGE_HTTP_TOKEN); required off loopback
    #[arg(long, env = "BRIDGE_HTTP_TOKEN_FILE")]
    pub http_token_file: Option<PathBuf>,
    /// Extra Host header values to accept (besides localhost, 127.0.0.1, ::1)
    #[arg(
        long = "allowed-host",
        env = "BRIDGE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Browser Origins to accept, e.g. http://localhost:6274 (requests with any other Origin get 403)
    #[arg(
        long = "allowed-origin",
        env = "BRIDGE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Most MCP sessions open at once over HTTP [default: 256]
    #[arg(long, env = "BRIDGE_HTTP_MAX_SESSIONS")]
    pub http_max_sessions: Option<usize>,
    /// Most MCP sessions open at once from one client address [default: 128]
    #[arg(long, env = "BRIDGE_HTTP_MAX_SESSIONS_PER_PEER")]
    pub http_max_sessions_per_peer: Option<usize>,
    /// Close a session whose client has not completed the MCP handshake by then [default: 10s]
    #[arg(long, env = "BRIDGE_HTTP_SESSION_INIT_TIMEOUT", value_parser = bridge_state::config::parse_duration)]
    pub http_session_init_timeout: Option<std::time::Duration>,
    /// Close a session with no request for this long [default: 5m]
    #[arg(long, env = "BRIDGE_HTTP_SESSION_IDLE", value_parser = bridge_state::config::parse_duration)]
    pub http_session_idle: Option<std::time::Duration>,
    /// Most HTTP connections open at once [default: 1024]
    #[arg(long, env = "BRIDGE_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// Most HTTP connections open at once from one client address [default: 256]
    #[arg(long, env = "BRIDGE_HTTP_MAX_CONNECTIONS_PER_PEER")]
    pub http_max_connections_per_peer: Option<usize>,
    /// Close a connection whose request head has not arrived by then [default: 10s]
    #[arg(long, env = "BRIDGE_HTTP_HEADER_TIMEOUT", value_parser = bridge_state::config::parse_duration)]
    pub http_header_timeout: Option<std::time::Duration>,
    /// Answer 408 to a request whose body has not arrived by then [default: 30s]
    #[arg(long, env = "BRIDGE_HTTP_BODY_TIMEOUT", value_parser = bridge_state::config::parse_duration)]
    pub http_body_timeout: Option<std::time::Duration>,
}

impl ServeArgs {
    /// The HTTP session and connection limits, defaults filled in.
    pub fn http_limits(
        &self,
    ) -> anyhow::Result<(
        crate::mcp::http::SessionLimits,
        crate::mcp::http::ConnLimits,
    )> {
        let (s, c) = (
            crate::mcp::http::SessionLimits::default(),
            crate::mcp::http::ConnLimits::default(),
        );
        let sessions = crate::mcp::http::SessionLimits {
            max_total: self.http_max_sessions.unwrap_or(s.max_total),
            max_per_peer: self.http_max_sessions_per_peer.unwrap_or(s.max_per_peer),
            init_timeout: self.http_session_init_timeout.unwrap_or(s.init_timeout),
            idle_timeout: self.http_session_idle.unwrap_or(s.idle_timeout),
        };
        let connections = crate::mcp::http::ConnLimits {
            max_total: self.http_max_connections.unwrap_or(c.max_total),
            max_per_peer: self.http_max_connections_per_peer.unwrap_or(c.max_per_peer),
            header_timeout: self.http_header_timeout.unwrap_or(c.header_timeout),
            body_timeout: self.http_body_timeout.unwrap_or(c.body_timeout),
        };
        for (name, n) in [
            ("--http-max-sessions", sessions.max_total),
            ("--http-max-sessions-per-peer", sessions.max_per_peer),
            ("--http-max-connections", connections.max_total),
            ("--http-max-connections-per-peer", connections.max_per_peer),
        ] {
            if n == 0 {
                bail!("{name} must be at least 1 (0 would refuse every client)");
            }
        }
        Ok((sessions, connections))
    }

    /// Stage 1 of the YOLO flow: the operator's flag or environment.
    pub fn yolo_enabled(&self) -> bool {
        self.yolo || std::env::var("YOLO_MODE").is_ok_and(|v| v == "1")
    }
}

/// Opens the database and the secret beside it, and builds the shared state.
/// `policy` is `Some` only when YOLO is on for this process.
pub fn open_bridge(settings: &Settings, policy: Option<policy::Policy>) -> anyhow::Result<Bridge> {
    let db = Db::open(&settings.db, settings.sync)?;
    let secret = ServerSecret::load_or_create(&ServerSecret::path_for_db(&settings.db))?;
    Ok(Bridge::new(BridgeParts {
        db,
        secret,
        redactor: settings.redactor.clone(),
        limits: settings.limits.clone(),
        conversation_ttl: settings.conversation_ttl,
        clock: Arc::new(SystemClock),
        yolo: policy,
        quotas: settings.quotas.clone(),
    }))
}

/// Serves MCP (on stdin/stdout, or over HTTP with `--http`) until the
/// client disconnects or a signal arrives.
pub async fn serve(
    settings: Settings,
    policy: Option<policy::Policy>,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let yolo = policy.is_some();
    logging::use_redactor(settings.redactor.clone());
    let bridge = open_bridge(&settings, policy)?;
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
            Ok(http::serve(bridge.clone(), opts, shutdown, None).await?)
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
pub(crate) fn http_options(args: &ServeArgs) -> anyhow::Result<Option<http::HttpOptions>> {
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
    let service = BridgeServer::new(bridge).serve(stdio_channel()).await?;
    tokio::select! {
        r = service.waiting() => { r?; }
        _ = shutdown_signal() => { tracing::info!("signal received, shutting down"); }
    }
    Ok(())
}

type Input = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
type Output = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// The MCP channel on stdin and stdout.
///
/// tokio's `Stdin` and `Stdout` run every read and write on the blocking
/// pool: two thread hops per message each way, most of an MCP `ping`'s
/// cost on a 2-core machine. MCP clients start servers with pipes, and a
/// pipe can be read and written without blocking, on the runtime's own
/// thread, woken by epoll. So each end that is a pipe is opened that way
/// (which sets `O_NONBLOCK` on it: nothing else in this process reads stdin
/// or writes stdout, `#![deny(clippy::print_stdout)]`); any other (a
/// terminal, a file, a socket) keeps tokio's blocking-pool version.
fn stdio_channel() -> (Input, Output) {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let input: Input = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd)
    {
        Ok(r) => Box::new(r),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    // Only its descriptor: this is the MCP channel, not the operator's
    // terminal that the lint guards.
    #[allow(clippy::disallowed_methods)]
    let stdout = std::io::stdout();
    let output: Output = match stdout
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd)
    {
        Ok(w) => Box::new(w),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (input, output)
}
