//! `bridge yolo …`: the operator's YOLO commands. Enabling and approving
//! happen only on an interactive terminal, after the confirmations in
//! `guard.rs`; every refusal is audited. Everything shown goes through
//! `untrusted` (commands and reasons are agent text).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::operator::guard;
use crate::untrusted::terminal::{self, Table, Terminal};
use crate::untrusted::{self as shown, Escaped};
use bridge_state::audit::{self, Entry, Outcome};
use bridge_state::auth::ServerSecret;
use bridge_state::clock::{Clock, SystemClock, rfc3339};
use bridge_state::config::{Settings as BridgeSettings, parse_duration};
use bridge_state::policy::Mode;
use bridge_state::store::Db;
use bridge_state::wake::Wake;
use bridge_state::yolo::{self, Limits, Settings};

use super::emit;

/// Characters of a command shown in a listing; `approve` shows all of it.
const COMMAND_CELL: usize = 100;

#[derive(Debug, Subcommand)]
pub enum YoloCommand {
    /// Enable YOLO for a conversation (interactive: phrase + one-time code)
    Enable {
        conversation: String,
        /// safe (read-only commands), restricted (+ git/npm/pip/cargo/pytest), yolo (anything not always-blocked)
        #[arg(long)]
        mode: String,
        /// Host directory mounted at /workspace (read-only unless --workspace-rw)
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Mount the workspace read-write (a git snapshot branch is made first)
        #[arg(long, requires = "workspace")]
        workspace_rw: bool,
        /// Sandbox image (must exist locally)
        #[arg(long, default_value = yolo::DEFAULT_IMAGE)]
        image: String,
        /// Container runtime, e.g. runsc (gVisor), if installed
        #[arg(long)]
        runtime: Option<String>,
        /// Default and maximum seconds per command
        #[arg(long, default_value_t = yolo::DEFAULT_TIMEOUT_SECS)]
        timeout: u32,
        /// How long the enablement lasts, e.g. 30m, 2h (at most the conversation's life)
        #[arg(long = "for", default_value = "1h")]
        for_: String,
    },
    /// End YOLO for a conversation at once
    Disable { conversation: String },
    /// Proposals awaiting approval
    Pending { conversation: Option<String> },
    /// Review a proposal and issue a single-use approval token (interactive);
    /// with --run, approve and run it instead, and print the result
    Approve {
        proposal: String,
        /// Token lifetime in seconds
        #[arg(long, default_value_t = yolo::DEFAULT_APPROVAL_TTL_SECS, conflicts_with = "run")]
        ttl: u32,
        /// Run it now on the agent's behalf (no token to hand over): the job
        /// is queued for the runner and its result reaches every participant
        #[arg(long)]
        run: bool,
        /// With --run: how long to wait for the result before printing the
        /// job id instead (the result still reaches the participants)
        #[arg(long, default_value_t = 60, requires = "run")]
        wait_seconds: u64,
        /// Extra command-policy rules, as given to `bridge serve --policy`
        #[arg(long, env = "BRIDGE_POLICY")]
        policy: Option<PathBuf>,
    },
    /// Reject a proposal; every participant is told, with the reason if given
    Reject {
        proposal: String,
        /// Why, in a sentence the participants will read
        #[arg(long)]
        reason: Option<String>,
    },
    /// Active (unused, unexpired) approval tokens, as previews
    Tokens,
    /// Standing rules ("always approve exactly this command here", made
    /// with `A` in `bridge console`); `--revoke RULE` ends one
    Rules {
        #[arg(long)]
        revoke: Option<String>,
    },
}

impl YoloCommand {
    fn verb(&self) -> &'static str {
        match self {
            Self::Enable { .. } => "enable",
            Self::Disable { .. } => "disable",
            Self::Pending { .. } => "pending",
            Self::Approve { .. } => "approve",
            Self::Reject { .. } => "reject",
            Self::Tokens => "tokens",
            Self::Rules { .. } => "rules",
        }
    }
}

/// Records a refused operator action, then returns the error to show.
pub(crate) fn refuse(
    db: &Db,
    s: &BridgeSettings,
    conv: Option<&str>,
    verb: &str,
    why: &dyn std::fmt::Display,
) -> anyhow::Error {
    let detail = serde_json::json!({ "reason": why.to_string() });
    let action = format!("yolo.{verb}");
    let conv = conv.map(str::to_owned);
    let red = s.redactor.clone();
    let res = db.call_blocking(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        audit::append(
            &tx,
            &red,
            SystemClock.now_ms(),
            Entry {
                conversation_id: conv.as_deref(),
                session_id: None,
                action: &action,
                outcome: Outcome::Refused,
                detail,
            },
        )?;
        tx.commit()?;
        Ok::<_, rusqlite::Error>(())
    });
    if let Err(e) = res {
        // Like every line the binaries print on their own: redacted.
        let text = bridge_state::logging::redact_line(&e.to_string());
        eprintln!("warning: could not audit the refusal: {text}");
    }
    anyhow::anyhow!("{why}")
}

pub async fn run(cmd: YoloCommand, s: &BridgeSettings, json: bool) -> anyhow::Result<()> {
    let db = Db::open(&s.db, s.sync)?;
    let verb = cmd.verb();
    let conv_of = |c: &YoloCommand| match c {
        YoloCommand::Enable { conversation, .. } | YoloCommand::Disable { conversation } => {
            Some(conversation.clone())
        }
        _ => None,
    };
    if let Err(e) = guard::require_operator_env() {
        return Err(refuse(&db, s, conv_of(&cmd).as_deref(), verb, &e));
    }
    // Read when each step runs, never before the prompts: an operator may
    // read an approve screen for minutes, and an enablement or token that
    // expired meanwhile must count as expired.
    let now = || SystemClock.now_ms();
    let red = s.redactor.clone();
    match cmd {
        YoloCommand::Enable {
            conversation,
            mode,
            workspace,
            workspace_rw,
            image,
            runtime,
            timeout,
            for_,
        } => {
            if let Err(e) = guard::require_terminal("yolo enable") {
                return Err(refuse(&db, s, Some(&conversation), verb, &e));
            }
            let mode = Mode::parse(&mode).map_err(|e| anyhow::anyhow!(e))?;
            if timeout == 0 || timeout > yolo::MAX_TIMEOUT_SECS {
                bail!(
                    "--timeout must be between 1 and {} seconds (got {timeout})",
                    yolo::MAX_TIMEOUT_SECS
                );
            }
            let for_ms = parse_duration(&for_)
                .map_err(|e| anyhow::anyhow!(e))?
                .as_millis() as i64;
            let workspace = match workspace {
                None => None,
                Some(w) => {
                    let abs = std::fs::canonicalize(&w)
                        .with_context(|| format!("workspace {} does not exist", w.display()))?;
                    if !abs.is_dir() {
                        bail!("workspace {} is not a directory", abs.display());
                    }
                    Some(abs)
                }
            };
            let settings = Settings {
                mode,
                workspace,
                workspace_rw,
                image,
                runtime,
                timeout_secs: timeout,
                limits: Limits::default(),
            };
            let summary = enable_summary(&conversation, &settings, &for_);
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut out = Terminal::stdout();
            if let Err(e) = guard::confirm_enable(&mut input, &mut out, &summary) {
                return Err(refuse(&db, s, Some(&conversation), verb, &e));
            }
            let en = db
                .call_blocking(|c| yolo::enable(c, &red, &conversation, &settings, for_ms, now()))
                .map_err(|e| refuse(&db, s, Some(&conversation), verb, &e))?;
            if json {
                terminal::println(shown::json::to_string_pretty(&en)?)?;
            } else {
                terminal::println(format_args!(
                    "YOLO enabled for {} in {} mode until {}.\nAgents can now propose commands; approve each with `bridge yolo approve PROPOSAL`.",
                    Escaped(&en.conversation_id),
                    en.settings.mode.as_str(),
                    en.expires_at
                ))?;
            }
        }
        YoloCommand::Disable { conversation } => {
            let n = db.call_blocking(|c| yolo::disable(c, &red, &conversation, now()))?;
            if n == 0 {
                bail!("YOLO was not enabled for {conversation}; nothing to disable");
            }
            let done = serde_json::json!({ "conversation_id": conversation, "disabled": true });
            emit(json, &done, || {
                format!(
                    "YOLO disabled for {}; pending proposals expired and queued jobs were cancelled.",
                    Escaped(&conversation)
                )
            })?;
        }
        YoloCommand::Pending { conversation } => {
            let rows = db.call_blocking(|c| yolo::pending(c, conversation.as_deref()))?;
            if json {
                terminal::println(shown::json::to_string_pretty(&rows)?)?;
            } else {
                let mut t = Table::new(&[
                    "proposal",
                    "conversation",
                    "from",
                    "state",
                    "mode",
                    "proposed",
                    "command",
                ]);
                for p in &rows {
                    t.row([
                        p.id.as_str(),
                        &p.conversation_id,
                        &p.session_id,
                        p.state.as_str(),
                        p.params.mode.as_str(),
                        &p.created_at,
                        &shown::command_shortened(&p.command, COMMAND_CELL),
                    ]);
                }
                terminal::println(format_args!(
                    "{t}\n{} proposal(s) awaiting approval; review each in full with `bridge yolo approve PROPOSAL`",
                    rows.len()
                ))?;
            }
        }
        YoloCommand::Approve {
            proposal,
            ttl,
            run,
            wait_seconds,
            policy,
        } => {
            if let Err(e) = guard::require_terminal("yolo approve") {
                return Err(refuse(&db, s, None, verb, &e));
            }
            if ttl == 0 || ttl > yolo::MAX_APPROVAL_TTL_SECS {
                bail!(
                    "--ttl must be between 1 and {} seconds (got {ttl})",
                    yolo::MAX_APPROVAL_TTL_SECS
                );
            }
            let p = db.call_blocking(|c| yolo::load_proposal(c, &proposal))?;
            if let Err(e) = yolo::verify_integrity(&p) {
                return Err(refuse(&db, s, Some(&p.conversation_id), verb, &e));
            }
            // A pseudo-terminal nobody sized says 0x0: assume the classic 24x80.
            let (height, width) = terminal::window_size().unwrap_or((24, 80));
            let (height, width) = (usize::from(height), usize::from(width));
            // One column spare: some terminals wrap a row that fills the last one.
            let rows = crate::operator::review::approve_rows(&p, ttl, width.saturating_sub(1));
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut out = Terminal::stdout();
            if let Err(e) = guard::confirm_approve(&mut input, &mut out, &rows, height, width) {
                return Err(refuse(&db, s, Some(&p.conversation_id), verb, &e));
            }
            let secret = ServerSecret::load_or_create(&ServerSecret::path_for_db(&s.db))?;
            let approver = guard::approver();
            if run {
                let policy = super::load_policy(policy.as_deref())?;
                let hash = p.hash.clone();
                db.call_blocking(|c| {
                    yolo::approve_and_run(
                        c,
                        &secret,
                        &red,
                        &policy,
                        &proposal,
                        &hash,
                        &approver,
                        false,
                        now(),
                    )
                })
                .map_err(|e| refuse(&db, s, Some(&p.conversation_id), verb, &e))?;
                out.println(format_args!(
                    "Approved and queued {}; waiting up to {wait_seconds} s for the result…",
                    Escaped(&proposal)
                ))?;
                out.flush()?;
                let wake = Wake::watching(&s.db);
                let done =
                    super::wait_final(&db, &wake, &proposal, Duration::from_secs(wait_seconds))
                        .await?;
                if json {
                    let view = serde_json::json!({
                        "proposal_id": done.id,
                        "state": done.state.as_str(),
                        "result": done.result,
                        "failure": done.failure,
                    });
                    out.println(shown::json::to_string_pretty(&view)?)?;
                } else {
                    for line in super::result_lines(&done) {
                        out.println(line)?;
                    }
                }
                out.flush()?;
                return Ok(());
            }
            let (token, expires) = db
                .call_blocking(|c| {
                    yolo::approve(c, &secret, &red, &proposal, &p.hash, ttl, &approver, now())
                })
                .map_err(|e| refuse(&db, s, Some(&p.conversation_id), verb, &e))?;
            if json {
                let issued = serde_json::json!({
                    "proposal_id": proposal,
                    "token": token,
                    "expires_at": rfc3339(expires),
                });
                out.println(shown::json::to_string_pretty(&issued)?)?;
            } else {
                out.println(format_args!(
                    "Approval token: {token}\nSingle use, for {} only, valid until {}. Give it to the agent.",
                    Escaped(&proposal),
                    rfc3339(expires)
                ))?;
            }
            out.flush()?;
        }
        YoloCommand::Reject { proposal, reason } => {
            db.call_blocking(|c| yolo::reject(c, &red, &proposal, reason.as_deref(), now()))?;
            let done = serde_json::json!({ "proposal_id": proposal, "state": "rejected" });
            emit(json, &done, || {
                format!(
                    "Rejected {}; every participant was told.",
                    Escaped(&proposal)
                )
            })?;
        }
        YoloCommand::Rules { revoke: Some(id) } => {
            db.call_blocking(|c| yolo::revoke_rule(c, &red, &id, now()))?;
            let done = serde_json::json!({ "rule_id": id, "revoked": true });
            emit(json, &done, || {
                format!(
                    "Revoked {}; matching proposals wait for a person again.",
                    Escaped(&id)
                )
            })?;
        }
        YoloCommand::Rules { revoke: None } => {
            let rows = db.call_blocking(|c| yolo::live_rules(c, now()))?;
            if json {
                terminal::println(shown::json::to_string_pretty(&rows)?)?;
            } else {
                let mut t = Table::new(&[
                    "rule",
                    "conversation",
                    "uses",
                    "made by",
                    "expires",
                    "command",
                ]);
                for r in &rows {
                    t.row([
                        r.id.as_str(),
                        &r.conversation_id,
                        &r.uses.to_string(),
                        r.approver["user"].as_str().unwrap_or("?"),
                        &r.expires_at,
                        &shown::command_shortened(&r.command, COMMAND_CELL),
                    ]);
                }
                terminal::println(format_args!(
                    "{t}\n{} live rule(s); each approves one exact command (and its settings) in one conversation until YOLO ends there; `bridge yolo rules --revoke RULE` ends one",
                    rows.len()
                ))?;
            }
        }
        YoloCommand::Tokens => {
            let rows = db.call_blocking(|c| yolo::active_tokens(c, now()))?;
            if json {
                terminal::println(shown::json::to_string_pretty(&rows)?)?;
            } else {
                let mut t = Table::new(&["token hash", "proposal", "expires", "command"]);
                for r in &rows {
                    t.row([
                        &r.preview,
                        &r.proposal_id,
                        &r.expires_at,
                        &shown::command_shortened(&r.command, COMMAND_CELL),
                    ]);
                }
                terminal::println(format_args!(
                    "{t}\n{} active token(s); tokens themselves are never stored",
                    rows.len()
                ))?;
            }
        }
    }
    Ok(())
}

pub(crate) fn enable_summary(conv: &str, s: &Settings, for_: &str) -> String {
    format!(
        "Enable YOLO for conversation {conv}\n  mode:      {} ({})\n  image:     {}{}\n  workspace: {}\n  timeout:   {} s per command (SIGKILL after)\n  limits:    {} MiB memory, 1 CPU, {} processes, no network, read-only root, all capabilities dropped, user 65534\n  lasts:     {for_}",
        s.mode.as_str(),
        s.mode.describe(),
        s.image,
        s.runtime
            .as_deref()
            .map(|r| format!(" (runtime {r})"))
            .unwrap_or_default(),
        match &s.workspace {
            None => "none".to_owned(),
            Some(w) if s.workspace_rw => format!(
                "{} mounted READ-WRITE at /workspace (git snapshot branch first)",
                w.display()
            ),
            Some(w) => format!("{} mounted read-only at /workspace", w.display()),
        },
        s.timeout_secs,
        s.limits.memory_bytes >> 20,
        s.limits.pids,
    )
}
