//! The `bridge` command line: `serve` (the MCP server) and the operator's
//! subcommands, rendered as tables or, with `--json`, as JSON. Stored text
//! was written by agents: everything shown goes through `untrusted`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::auth::ServerSecret;
use crate::clock::{Clock, SystemClock};
use crate::config::{Overrides, Settings};
use crate::service::{Bridge, BridgeParts};
use crate::store::{Db, Sync};
use crate::untrusted::terminal::{self, Table};
use crate::untrusted::{Escaped, escaped_shortened, json as safe_json};
use crate::{audit, operator};

#[derive(Debug, Parser)]
#[command(
    name = "bridge",
    version,
    about = "Authenticated, redacting, auditable agent-to-agent MCP bridge"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// SQLite database [default: $XDG_DATA_HOME/mcp-bridge/bridge.db]
    #[arg(long, env = "BRIDGE_DB", global = true)]
    pub db: Option<PathBuf>,
    /// TOML config file (keys: db, conversation_ttl, rate_limit, sync, redaction_patterns, [[pattern]])
    #[arg(long, env = "BRIDGE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the MCP server on stdin/stdout
    Serve(Box<ServeArgs>),
    /// List conversations
    List,
    /// Show one conversation: sessions and recent messages
    Show {
        conversation: String,
        /// How many recent messages to show
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show the audit log (`bridge audit [CONV] [--limit N]`), check its
    /// hash chain (`bridge audit verify`), or move old rows to a file
    /// (`bridge audit archive --older-than-days N --to FILE`)
    Audit {
        /// A conversation id, `verify` or `archive`
        target: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// With `archive`: move rows older than this many days
        #[arg(long)]
        older_than_days: Option<u32>,
        /// With `archive`: a new JSON-lines file to write them to (created 0600)
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Delete expired conversations and their messages (the audit log is kept)
    Cleanup,
    /// Tokens are stored only as keyed hashes and cannot be shown; `--rotate`
    /// issues new ones and invalidates the old
    Tokens {
        conversation: String,
        #[arg(long)]
        rotate: bool,
    },
    /// A scripted two-session exchange against a temporary database
    Demo,
    /// Print the HTTP bearer token from the token file (creating it if missing)
    HttpToken {
        #[arg(long, env = "BRIDGE_HTTP_TOKEN_FILE")]
        file: PathBuf,
    },
    /// Exit 0 if the HTTP server at URL answers its health check (for container healthchecks)
    Health {
        #[arg(default_value = "http://127.0.0.1:8765/healthz")]
        url: String,
    },
    /// Operator commands for YOLO mode (require YOLO_MODE=1)
    Yolo {
        #[command(subcommand)]
        command: crate::yolo_cli::YoloCommand,
    },
}

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
    #[arg(long, env = "BRIDGE_HTTP_SESSION_INIT_TIMEOUT", value_parser = crate::config::parse_duration)]
    pub http_session_init_timeout: Option<std::time::Duration>,
    /// Close a session with no request for this long [default: 5m]
    #[arg(long, env = "BRIDGE_HTTP_SESSION_IDLE", value_parser = crate::config::parse_duration)]
    pub http_session_idle: Option<std::time::Duration>,
    /// Most HTTP connections open at once [default: 1024]
    #[arg(long, env = "BRIDGE_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// Most HTTP connections open at once from one client address [default: 256]
    #[arg(long, env = "BRIDGE_HTTP_MAX_CONNECTIONS_PER_PEER")]
    pub http_max_connections_per_peer: Option<usize>,
    /// Close a connection whose request head has not arrived by then [default: 10s]
    #[arg(long, env = "BRIDGE_HTTP_HEADER_TIMEOUT", value_parser = crate::config::parse_duration)]
    pub http_header_timeout: Option<std::time::Duration>,
    /// Answer 408 to a request whose body has not arrived by then [default: 30s]
    #[arg(long, env = "BRIDGE_HTTP_BODY_TIMEOUT", value_parser = crate::config::parse_duration)]
    pub http_body_timeout: Option<std::time::Duration>,
}

impl ServeArgs {
    /// The HTTP session and connection limits, defaults filled in.
    pub fn http_limits(
        &self,
    ) -> anyhow::Result<(crate::http::SessionLimits, crate::http::ConnLimits)> {
        let (s, c) = (
            crate::http::SessionLimits::default(),
            crate::http::ConnLimits::default(),
        );
        let sessions = crate::http::SessionLimits {
            max_total: self.http_max_sessions.unwrap_or(s.max_total),
            max_per_peer: self.http_max_sessions_per_peer.unwrap_or(s.max_per_peer),
            init_timeout: self.http_session_init_timeout.unwrap_or(s.init_timeout),
            idle_timeout: self.http_session_idle.unwrap_or(s.idle_timeout),
        };
        let connections = crate::http::ConnLimits {
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

pub fn settings(global: &Global, serve: &ServeArgs) -> anyhow::Result<Settings> {
    Ok(Settings::resolve(Overrides {
        config: global.config.clone(),
        db: global.db.clone(),
        sync: serve.sync,
        conversation_ttl: serve.conversation_ttl.clone(),
        rate_limit: serve.rate_limit.clone(),
        auth_failures: serve.auth_failures.clone(),
        create_limit: serve.create_limit.clone(),
        create_limit_global: serve.create_limit_global.clone(),
        max_conversations: serve.max_conversations,
        redaction_patterns: serve.redaction_patterns.clone(),
        queue_ttl: None,
    })?)
}

/// Opens the database and the secret beside it, and builds the shared state.
/// `policy` is `Some` only when YOLO is on for this process.
pub fn open_bridge(
    settings: &Settings,
    policy: Option<crate::policy::Policy>,
) -> anyhow::Result<Bridge> {
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

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.global.json;
    match cli.command {
        Command::Serve(args) => {
            let settings = settings(&cli.global, &args)?;
            if args.spawn_runner && !args.yolo_enabled() {
                bail!("--spawn-runner needs YOLO on: pass --yolo or set YOLO_MODE=1");
            }
            let policy = if args.yolo_enabled() {
                Some(match &args.policy {
                    Some(p) => crate::policy::Policy::with_file(p)?,
                    None => crate::policy::Policy::builtin(),
                })
            } else {
                None
            };
            if args.check {
                let line = crate::startup::check(&settings, policy, &args).await?;
                terminal::println(line)?;
                return Ok(());
            }
            crate::serve(settings, policy, &args).await
        }
        Command::Health { url } => crate::health(&url).await,
        Command::HttpToken { file } => {
            terminal::println(crate::http::read_token_file(&file)?)?;
            crate::startup::http_token_hint_if_terminal();
            Ok(())
        }
        Command::Demo => crate::demo::run().await,
        Command::Yolo { command } => {
            let settings = settings(&cli.global, &ServeArgs::default())?;
            crate::yolo_cli::run(command, &settings, json)
        }
        command => {
            let settings = settings(&cli.global, &ServeArgs::default())?;
            operate(command, &settings, json)
        }
    }
}

fn operate(command: Command, settings: &Settings, json: bool) -> anyhow::Result<()> {
    let db = Db::open(&settings.db, settings.sync)?;
    let now = SystemClock.now_ms();
    let red = &settings.redactor;
    match command {
        Command::List => {
            let rows = db.call_blocking(|c| operator::list(c, now))?;
            emit(json, &rows, || {
                let mut t = Table::new(&[
                    "conversation",
                    "roles",
                    "created",
                    "expires",
                    "messages",
                    "unread",
                ]);
                for r in &rows {
                    let expires = if r.expired {
                        format!("{} (expired)", r.expires_at)
                    } else {
                        r.expires_at.clone()
                    };
                    t.row([
                        r.conversation_id.clone(),
                        roles(&r.roles),
                        r.created_at.clone(),
                        expires,
                        r.messages.to_string(),
                        r.unread.to_string(),
                    ]);
                }
                format!("{t}\n{} conversation(s)", rows.len())
            })
        }
        Command::Show {
            conversation,
            limit,
        } => {
            let conv = conversation.clone();
            let Some(d) = db.call_blocking(|c| operator::show(c, &conv, now, limit))? else {
                bail!("no conversation `{conversation}`; `bridge list` shows the existing ones");
            };
            emit(json, &d, || {
                let s = &d.summary;
                let mut out = format!(
                    "{}  roles {}  created {}  expires {}{}\n",
                    Escaped(&s.conversation_id),
                    roles(&s.roles),
                    s.created_at,
                    s.expires_at,
                    if s.expired { " (expired)" } else { "" }
                );
                let mut t =
                    Table::new(&["session", "role", "status", "last heartbeat", "token hash"]);
                for x in &d.sessions {
                    t.row([
                        x.session_id.clone(),
                        x.role.clone(),
                        x.status.clone().unwrap_or_else(|| "-".into()),
                        x.last_heartbeat.clone().unwrap_or_else(|| "-".into()),
                        x.token_hash_preview.clone(),
                    ]);
                }
                out.push_str(&format!("{t}\n"));
                let mut m = Table::new(&[
                    "id",
                    "from→to",
                    "kind",
                    "action",
                    "time",
                    "read",
                    "files",
                    "message",
                ]);
                for x in &d.messages {
                    m.row([
                        x.id.to_string(),
                        format!("{}→{}", x.from, x.to),
                        x.kind.clone(),
                        x.action_type.clone().unwrap_or_default(),
                        x.timestamp.clone(),
                        if x.read_at.is_some() { "yes" } else { "no" }.into(),
                        escaped_shortened(&files(&x.files_involved), 40),
                        escaped_shortened(&x.message, 80),
                    ]);
                }
                out.push_str(&m.to_string());
                out
            })
        }
        Command::Audit {
            target: Some(t), ..
        } if t == "verify" => {
            let v = db.call_blocking(|c| audit::verify(c))?;
            let ok = v.first_break.is_none();
            emit(json, &v, || match &v.first_break {
                None => format!("audit chain intact: {} rows, head {}", v.rows, v.head_hash),
                Some(b) => format!(
                    "AUDIT CHAIN BROKEN at row {}: {}\n({} rows checked up to and including it)",
                    b.id,
                    Escaped(&b.reason),
                    v.rows
                ),
            })?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Audit {
            target: Some(t),
            older_than_days,
            to,
            ..
        } if t == "archive" => {
            let (Some(days), Some(to)) = (older_than_days, to) else {
                bail!(
                    "`bridge audit archive` needs --older-than-days N and --to FILE (a new file)"
                );
            };
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&to)
                .with_context(|| {
                    format!(
                        "creating archive file {} (it must not exist yet)",
                        to.display()
                    )
                })?;
            let before = now - i64::from(days) * 86_400_000;
            let label = to.display().to_string();
            let archived = db.call_blocking(move |c| {
                let handle = file.try_clone()?;
                let mut out = std::io::BufWriter::new(&mut file);
                audit::archive(
                    c,
                    red,
                    now,
                    before,
                    audit::ARCHIVE_BATCH,
                    &mut out,
                    &|| handle.sync_all(),
                    &label,
                )
            })?;
            emit(json, &archived, || {
                format!(
                    "archived {} audit row(s) to {}; the chain now starts at row {} from hash {}",
                    archived.rows,
                    Escaped(&to.display().to_string()),
                    archived.anchor.first_id,
                    archived.anchor.prev_hash
                )
            })
        }
        Command::Audit { target, limit, .. } => {
            if let Some(t) = &target
                && !crate::auth::is_conversation_id(t)
            {
                bail!(
                    "`{t}` is neither a conversation id (conv_ + 16 hex) nor `verify` or `archive`"
                );
            }
            let rows = db.call_blocking(|c| audit::tail(c, target.as_deref(), limit))?;
            emit(json, &rows, || {
                let mut t = Table::new(&[
                    "id",
                    "time",
                    "conversation",
                    "session",
                    "action",
                    "outcome",
                    "detail",
                ]);
                for r in &rows {
                    t.row([
                        r.id.to_string(),
                        crate::clock::rfc3339(r.ts),
                        r.conversation_id.clone().unwrap_or_default(),
                        r.session_id.clone().unwrap_or_default(),
                        r.action.clone(),
                        r.outcome.clone(),
                        escaped_shortened(&r.detail, 80),
                    ]);
                }
                t.to_string()
            })
        }
        Command::Cleanup => {
            let c =
                db.call_blocking(|c| operator::cleanup(c, red, now, operator::CLEANUP_BATCH))?;
            emit(json, &c, || {
                format!(
                    "removed {} expired conversation(s) and {} message(s); the audit log is kept",
                    c.conversations, c.messages
                )
            })
        }
        Command::Tokens {
            conversation,
            rotate,
        } => {
            if !rotate {
                bail!(
                    "tokens are stored only as keyed hashes and cannot be shown; run `bridge tokens {conversation} --rotate` to issue new ones (the old ones stop working)"
                );
            }
            let secret = ServerSecret::load_or_create(&ServerSecret::path_for_db(&settings.db))
                .context("loading the server secret")?;
            let conv = conversation.clone();
            let Some(r) =
                db.call_blocking(|c| operator::rotate_tokens(c, &secret, red, &conv, now))?
            else {
                bail!("no conversation `{conversation}`; `bridge list` shows the existing ones");
            };
            emit(json, &r, || {
                let mut out = format!(
                    "New tokens for {} (shown once; the old ones no longer work):\n",
                    Escaped(&r.conversation_id)
                );
                for (s, t) in &r.tokens {
                    out.push_str(&format!("  session {}: {t}\n", Escaped(s)));
                }
                out
            })
        }
        Command::Serve(_)
        | Command::Demo
        | Command::Yolo { .. }
        | Command::Health { .. }
        | Command::HttpToken { .. } => {
            unreachable!("handled by run")
        }
    }
}

/// Prints `value` as JSON (with unprintable characters as `\u` escapes) or
/// as the text `text` renders, through the one terminal writer.
fn emit<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        terminal::println(safe_json::to_string_pretty(value)?)?;
    } else {
        terminal::println(text())?;
    }
    Ok(())
}

/// Both roles on one line, each escaped (so neither can forge the other)
/// and shortened (intake caps them at 100 characters; older rows may not be).
fn roles(roles: &[String]) -> String {
    roles
        .iter()
        .map(|r| escaped_shortened(r, 100))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// A message's `files_involved` list on one line.
fn files(v: &serde_json::Value) -> String {
    match v.as_array() {
        Some(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => String::new(),
    }
}
