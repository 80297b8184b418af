//! The `bridge` command line: `serve` (the MCP server) and the operator's
//! subcommands, rendered as tables or, with `--json`, as JSON. Stored text
//! was written by agents: everything shown goes through `untrusted`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use bridge_state::audit;
use bridge_state::auth::ServerSecret;
use bridge_state::clock::{Clock, SystemClock};
use bridge_state::config::{Overrides, Settings};
use bridge_state::store::Db;

use crate::operator;
use crate::serve::ServeArgs;
use crate::untrusted::terminal::{self, Table};
use crate::untrusted::{Escaped, escaped_shortened, json as safe_json};

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
                && !bridge_state::auth::is_conversation_id(t)
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
                        bridge_state::clock::rfc3339(r.ts),
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
