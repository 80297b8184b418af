//! `bridge list`, `show`, `audit`, `cleanup` and `tokens`: the operator's
//! conversation and audit commands, each run against the database and
//! rendered as a table or, with `--json`, as JSON. Stored text was written
//! by agents: everything shown goes through `untrusted`.

use anyhow::{Context, bail};

use bridge_state::audit;
use bridge_state::auth::ServerSecret;
use bridge_state::clock::{Clock, SystemClock};
use bridge_state::config::Settings;
use bridge_state::conversations::{self, operator};
use bridge_state::store::Db;

use super::{emit, files, participants};
use crate::cli::Command;
use crate::untrusted::terminal::Table;
use crate::untrusted::{Escaped, escaped_shortened};

/// Runs one of the operator's conversation or audit commands.
pub fn run(command: Command, settings: &Settings, json: bool) -> anyhow::Result<()> {
    let db = Db::open(&settings.db, settings.sync)?;
    let now = SystemClock.now_ms();
    let red = &settings.redactor;
    match command {
        Command::List => {
            let (rows, engines) = db.call_blocking(|c| {
                let engines = bridge_state::engines::statuses(c, now)?;
                Ok::<_, rusqlite::Error>((operator::list(c, now)?, engines))
            })?;
            emit(json, &rows, || {
                let mut t = Table::new(&[
                    "conversation",
                    "participants",
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
                        participants(&r.roles),
                        r.created_at.clone(),
                        expires,
                        r.messages.to_string(),
                        r.unread.to_string(),
                    ]);
                }
                let mut out = format!("{t}\n{} conversation(s)", rows.len());
                for line in engine_lines(&engines, now) {
                    out = out + "\n" + &line;
                }
                out
            })
        }
        Command::Engines => {
            let engines = db.call_blocking(|c| bridge_state::engines::statuses(c, now))?;
            emit(json, &engines, || {
                let lines = engine_lines(&engines, now);
                if lines.is_empty() {
                    "no engines reported: no runner has started against this database".to_owned()
                } else {
                    lines.join("\n")
                }
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
                    "{}  {} participants  created {}  expires {}{}\n",
                    Escaped(&s.conversation_id),
                    s.participants,
                    s.created_at,
                    s.expires_at,
                    if s.expired { " (expired)" } else { "" }
                );
                // Every participant; roles are agent text (the table
                // escapes each cell).
                let mut t = Table::new(&[
                    "session",
                    "role",
                    "status",
                    "last heartbeat",
                    "alive",
                    "unread",
                    "token hash",
                ]);
                for x in &d.sessions {
                    t.row([
                        x.session_id.clone(),
                        escaped_shortened(&x.role, 100),
                        x.status.clone().unwrap_or_else(|| "-".into()),
                        x.last_heartbeat.clone().unwrap_or_else(|| "-".into()),
                        if x.alive { "yes" } else { "no" }.to_owned(),
                        x.unread.to_string(),
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
                        format!("{}→{}", x.from, x.to.join(",")),
                        x.kind.clone(),
                        x.action_type.clone().unwrap_or_default(),
                        x.timestamp.clone(),
                        if x.unread_by.is_empty() {
                            "yes".to_owned()
                        } else {
                            format!("not by {}", x.unread_by.join(","))
                        },
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
            session,
        } => {
            if !rotate {
                bail!(
                    "tokens are stored only as keyed hashes and cannot be shown; run `bridge tokens {conversation} --rotate` to issue new ones (the old ones stop working)"
                );
            }
            let secret = ServerSecret::load_or_create(&ServerSecret::path_for_db(&settings.db))
                .context("loading the server secret")?;
            let conv = conversation.clone();
            let only = session.as_deref();
            let Some(r) =
                db.call_blocking(|c| operator::rotate_tokens(c, &secret, red, &conv, only, now))?
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
        Command::Invite { conversation, role } => {
            super::check_role(&role)?;
            let secret = ServerSecret::load_or_create(&ServerSecret::path_for_db(&settings.db))
                .context("loading the server secret")?;
            let token = bridge_state::auth::new_token()?;
            let hash = secret.hash_token(&token);
            let conv = conversation.clone();
            let invited = db.call_blocking(|c| -> rusqlite::Result<_> {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let r = conversations::invite(&tx, red, &conv, &role, &hash, None, now)?;
                tx.commit()?;
                Ok(r)
            })?;
            let session_id = match invited {
                Ok(s) => s,
                Err(conversations::InviteRefusal::NoConversation) => bail!(
                    "no live conversation `{conversation}`; `bridge list` shows the existing ones"
                ),
                Err(why) => bail!("{why}"),
            };
            let grant = serde_json::json!({
                "conversation_id": conversation,
                "session_id": session_id,
                "role": red.redacted(&role).as_str(),
                "token": token,
            });
            emit(json, &grant, || {
                format!(
                    "Participant {session_id} joined {} (the token is shown once; hand it to that agent only):\n  session {session_id}: {token}\n",
                    Escaped(&conversation)
                )
            })
        }
        Command::Serve(_)
        | Command::Inbox(_)
        | Command::Demo
        | Command::Yolo { .. }
        | Command::Console(_)
        | Command::Health { .. }
        | Command::HttpToken { .. } => {
            unreachable!("handled by run")
        }
    }
}

/// The runners' engines, one line each (the runner wrote them, redacted;
/// shown escaped all the same).
fn engine_lines(engines: &[bridge_state::engines::EngineStatus], now: i64) -> Vec<String> {
    engines
        .iter()
        .map(|e| {
            format!(
                "engine {} (runner {})",
                Escaped(&bridge_state::engines::summary(e, now)),
                Escaped(&e.runner_id)
            )
        })
        .collect()
}
