//! The `bridge` command line: parses the arguments of `serve` (the MCP
//! face) and of the operator's subcommands (the operator face), resolves the
//! settings, and hands each command to the module that runs it. Nothing here
//! queries the database or renders a table; the one-line answers of
//! `serve --check` and `http-token` are printed as they come.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use bridge_state::config::{Overrides, Settings};

use crate::serve::ServeArgs;
use crate::untrusted::terminal;

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
    /// The runners' Docker engines as the runners last reported them: up or
    /// down (why, next retry), jobs running, warm containers
    Engines,
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
        /// Rotate only this participant's token (a session id, `a` to `p`)
        #[arg(long)]
        session: Option<String>,
    },
    /// Add a participant with ROLE to a conversation; prints its session id
    /// and token once (the token is stored only as a keyed hash)
    Invite { conversation: String, role: String },
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
    /// Tell one participant about mail it has not been told about (for an
    /// agent's hooks: `--format hook`); marks nothing read
    Inbox(crate::inbox::InboxArgs),
    /// The operator console: every conversation, proposal and job live on
    /// one screen; review, approve and run in two keys (needs a terminal,
    /// and YOLO_MODE=1 unless --watch)
    Console(crate::operator::console::ConsoleArgs),
    /// Operator commands for YOLO mode (require YOLO_MODE=1)
    Yolo {
        #[command(subcommand)]
        command: crate::operator::yolo::YoloCommand,
    },
}

impl Cli {
    /// `bridge serve` answering one MCP client on stdin/stdout.
    pub fn serves_stdio(&self) -> bool {
        matches!(&self.command, Command::Serve(args) if args.http.is_none() && !args.check)
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
                    Some(p) => bridge_state::policy::Policy::with_file(p)?,
                    None => bridge_state::policy::Policy::builtin(),
                })
            } else {
                None
            };
            if args.check {
                let line = crate::startup::check(&settings, policy, &args).await?;
                terminal::println(line)?;
                return Ok(());
            }
            crate::serve::serve(settings, policy, &args).await
        }
        Command::Health { url } => crate::health::health(&url).await,
        Command::HttpToken { file } => {
            terminal::println(crate::mcp::http::read_token_file(&file)?)?;
            crate::startup::http_token_hint_if_terminal();
            Ok(())
        }
        Command::Demo => crate::operator::demo::run().await,
        Command::Inbox(args) => {
            let settings = settings(&cli.global, &ServeArgs::default())?;
            crate::inbox::run(args, &settings).await
        }
        Command::Console(args) => {
            let settings = settings(&cli.global, &ServeArgs::default())?;
            crate::operator::console::run(args, &settings).await
        }
        Command::Yolo { command } => {
            let settings = settings(&cli.global, &ServeArgs::default())?;
            crate::operator::yolo::run(command, &settings, json).await
        }
        command => {
            let settings = settings(&cli.global, &ServeArgs::default())?;
            crate::operator::commands::run(command, &settings, json)
        }
    }
}
