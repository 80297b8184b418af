//! `bridge inbox`: wakes an idle agent. An MCP server cannot start a turn in
//! an idle Claude Code or Codex session, but the clients' hooks can: this
//! command, run from a hook, tells one participant about mail it has not
//! been told about yet, in the hook's own answer format.
//!
//! It tells each message once (a per-participant `notified_up_to` cursor)
//! and never marks anything read: reading stays the agent's act, through
//! `check_messages`/`ack_messages`. It says who sent what kind of message,
//! never the text, so one agent cannot put words into another's context
//! through a hook. A `Stop` hook blocks only for mail not yet told, and
//! never when `stop_hook_active` is set, so it cannot loop. Only a call
//! that tells something writes an audit row.
//!
//! Two ways to the mail, one output contract: the local database (`--db`,
//! the default), or with `--url` the bridge's streamable-HTTP endpoint
//! ([`remote`]), for deployments whose database sits in a container's
//! volume. Either way the cursor lives in the database and is read and
//! moved in one transaction by the same repository function
//! (`messages::notify_unread`), so hooks running at once never tell a
//! message twice; over HTTP that transaction runs server-side in the
//! `inbox_notify` tool (why a tool of its own, and not a `check_messages`
//! peek: see `mcp::service::notices`).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rusqlite::TransactionBehavior;

use bridge_state::auth::{self, ServerSecret};
use bridge_state::clock::{Clock, SystemClock};
use bridge_state::config::Settings;
use bridge_state::conversations;
use bridge_state::fileperm::{Kind, check_file};
use bridge_state::messages::{self, sender};
use bridge_state::store::Db;

use crate::mcp::service::{NOTIFY_BATCH, NoticeView};
use crate::untrusted::terminal;

mod remote;

#[derive(Debug, Args)]
pub struct InboxArgs {
    /// The conversation (`conv_` + 16 hex)
    #[arg(long)]
    pub conversation: Option<String>,
    /// The participant's session id (`a` to `p`)
    #[arg(long)]
    pub session: Option<String>,
    /// A 0600 file holding the participant's token (else $BRIDGE_TOKEN)
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// text (a sentence), json, or hook (reads the hook's JSON on stdin and
    /// answers in Claude Code's and Codex's hook format)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Read a token on stdin and write it to this file, mode 0600, for
    /// `--token-file`
    #[arg(long, conflicts_with_all = ["conversation", "session", "token_file", "url"])]
    pub save_token: Option<PathBuf>,
    /// Ask the bridge's MCP endpoint instead of the local database, e.g.
    /// http://127.0.0.1:8765/mcp (compose)
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: a 0600 file holding the HTTP bearer token (else
    /// $BRIDGE_HTTP_TOKEN; none for a loopback server without one)
    #[arg(long, requires = "url")]
    pub http_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Hook,
}

/// What the hook said it is (`hook_event_name`, `stop_hook_active`).
#[derive(Debug, serde::Deserialize)]
struct HookInput {
    hook_event_name: String,
    #[serde(default)]
    stop_hook_active: bool,
}

pub async fn run(args: InboxArgs, settings: &Settings) -> anyhow::Result<()> {
    if let Some(path) = &args.save_token {
        return save_token(path);
    }
    let (Some(conversation), Some(session)) = (args.conversation, args.session) else {
        bail!(
            "name the inbox: `bridge inbox --conversation CONV --session S` (with --token-file F or BRIDGE_TOKEN set)"
        );
    };
    if !auth::is_conversation_id(&conversation) {
        bail!(
            "--conversation must be `conv_` followed by 16 lowercase hex characters, as create_conversation returned"
        );
    }
    if !sender::is_session(&session) {
        bail!("--session must be a session id, `a` to `p`");
    }
    let token = token(args.token_file.as_ref())?;
    // Checked before the hook input is read, so a bad URL fails the same
    // way whatever the format.
    let endpoint = match &args.url {
        Some(url) => Some(remote::Endpoint::new(url, args.http_token_file.as_ref())?),
        None => None,
    };
    let hook = match args.format {
        Format::Hook => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the hook's JSON on stdin")?;
            let h: HookInput = serde_json::from_str(&input).context(
                "the hook input on stdin is not the JSON a hook gets (it needs hook_event_name)",
            )?;
            if !HOOK_EVENTS.contains(&h.hook_event_name.as_str()) {
                bail!(
                    "unsupported hook event {:?}; bridge inbox answers {}",
                    h.hook_event_name,
                    HOOK_EVENTS.join(", ")
                );
            }
            // The loop guard: a Stop hook that already made the agent
            // continue lets it stop, and tells nothing (so nothing is lost).
            if is_stop(&h.hook_event_name) && h.stop_hook_active {
                return Ok(());
            }
            Some(h.hook_event_name)
        }
        _ => None,
    };
    let notices = match endpoint {
        Some(endpoint) => endpoint.notify(&conversation, &session, &token).await?,
        None => notify(settings, &conversation, &session, &token)?,
    };
    let summary = summary(&conversation, &session, &notices);
    let out = match (args.format, hook) {
        (Format::Json, _) => serde_json::json!({
            "conversation_id": conversation,
            "session_id": session,
            "new": notices,
            "summary": summary,
        })
        .to_string(),
        // Nothing new: a hook that prints nothing changes nothing.
        (Format::Hook, _) | (Format::Text, _) if notices.is_empty() => return Ok(()),
        (Format::Hook, Some(event)) if is_stop(&event) => {
            serde_json::json!({"decision": "block", "reason": summary}).to_string()
        }
        (Format::Hook, Some(event)) => serde_json::json!({
            "hookSpecificOutput": {"hookEventName": event, "additionalContext": summary}
        })
        .to_string(),
        _ => summary.unwrap_or_default(),
    };
    terminal::println(out)?;
    Ok(())
}

/// The hook events `--format hook` answers.
const HOOK_EVENTS: &[&str] = &[
    "Stop",
    "SubagentStop",
    "UserPromptSubmit",
    "PostToolUse",
    "SessionStart",
];

fn is_stop(event: &str) -> bool {
    matches!(event, "Stop" | "SubagentStop")
}

/// The participant's token: from a 0600 file, or $BRIDGE_TOKEN.
fn token(file: Option<&PathBuf>) -> anyhow::Result<String> {
    let token = match file {
        Some(path) => {
            check_file(path, Kind::Secret)?;
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?
        }
        None => std::env::var("BRIDGE_TOKEN").map_err(|_| {
            anyhow::anyhow!(
                "no token: pass --token-file F (a 0600 file; `bridge inbox --save-token F` writes one) or set BRIDGE_TOKEN"
            )
        })?,
    };
    let token = token.trim().to_owned();
    if !auth::is_token(&token) {
        bail!("the token must be 64 lowercase hex characters, as create_conversation returned");
    }
    Ok(token)
}

/// Checks the token, then takes the unread mail not told about yet and
/// moves the cursor past it, in one transaction (the repository writes the
/// audit row when it told something).
fn notify(
    settings: &Settings,
    conversation: &str,
    session: &str,
    token: &str,
) -> anyhow::Result<Vec<NoticeView>> {
    if !settings.db.exists() {
        bail!(
            "no database at {}; point --db (or BRIDGE_DB) at the bridge's database, or reach the bridge over HTTP with --url",
            settings.db.display()
        );
    }
    let secret = ServerSecret::load_or_create(&ServerSecret::path_for_db(&settings.db))
        .context("loading the server secret")?;
    let db = Db::open(&settings.db, settings.sync)?;
    let red = &settings.redactor;
    let now = SystemClock.now_ms();
    let told = db.call_blocking(|c| -> anyhow::Result<Option<Vec<NoticeView>>> {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let authentic = match conversations::credentials(&tx, conversation, session)? {
            Some((hash, expires)) => secret.verify_token(token, &hash) && now < expires,
            None => false,
        };
        if !authentic {
            return Ok(None);
        }
        let notices = messages::notify_unread(&tx, red, now, conversation, session, NOTIFY_BATCH)?;
        tx.commit()?;
        Ok(Some(notices.into_iter().map(NoticeView::from).collect()))
    })?;
    told.context("invalid or expired session token")
}

/// One sentence for the agent; `None` when there is nothing new.
fn summary(conversation: &str, session: &str, notices: &[NoticeView]) -> Option<String> {
    if notices.is_empty() {
        return None;
    }
    let items: Vec<String> = notices
        .iter()
        .map(|n| match &n.action_type {
            Some(a) => format!("#{} from {} ({}, {a})", n.id, n.from, n.kind),
            None => format!("#{} from {} ({})", n.id, n.from, n.kind),
        })
        .collect();
    Some(format!(
        "{} new message(s) in bridge conversation {conversation} for session {session}: {}. Read them with check_messages (conversation_id {conversation}, session_id {session}).",
        notices.len(),
        items.join(", ")
    ))
}

/// `--save-token F`: the token on stdin, written owner-only.
fn save_token(path: &PathBuf) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut token = String::new();
    std::io::stdin()
        .read_to_string(&mut token)
        .context("reading the token on stdin")?;
    let token = token.trim();
    if !auth::is_token(token) {
        bail!(
            "stdin must hold the token: 64 lowercase hex characters, as create_conversation returned"
        );
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // An existing file keeps its mode on open: make it owner-only too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(f, "{token}")?;
    check_file(path, Kind::Secret)?;
    Ok(())
}
