//! The bridge's behaviour, independent of transport: create conversations,
//! authenticate sessions, send and receive messages, heartbeats. The MCP
//! tools (`tools.rs`) and the demo call this; nothing here knows about JSON-RPC.
//!
//! Every state change runs in one `BEGIN IMMEDIATE` transaction that also
//! appends its audit row, so an action and its audit record commit together
//! or not at all, and the audit chain never forks between processes.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::mcp::tally::{Counter, Tally};
use crate::mcp::throttle::{Quotas, Throttle};
use bridge_state::audit::{self, Entry, Outcome};
use bridge_state::auth::{self, ServerSecret};
use bridge_state::clock::{Clock, Millis, rfc3339};
use bridge_state::messages::insert_to_others;
use bridge_state::policy::Policy;
use bridge_state::ratelimit::{Exceeded, Limits};
use bridge_state::redact::Redactor;
use bridge_state::store::{Db, StoreError};
use bridge_state::wake::{BACKSTOP, Doorbells, Inbox as InboxKey, Wake};

/// A partner whose last heartbeat is older than this is reported not alive.
pub const ALIVE_SECS: i64 = 120;
/// At most this many messages come back from one `check_messages`.
pub const CHECK_BATCH: usize = 100;

/// Why a tool call was refused. Messages are safe to show an agent: they
/// carry no secret and say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid argument `{field}`: {problem}")]
    Invalid { field: String, problem: String },
    /// Deliberately uninformative: no oracle for which part was wrong.
    #[error("invalid or expired session token")]
    Unauthorized,
    #[error("{0}")]
    RateLimited(Exceeded),
    /// Too many failed authentications, or too many new conversations;
    /// the text says when to retry.
    #[error("{0}")]
    Throttled(String),
    /// A rule said no (policy, YOLO off, bad approval); the text says why.
    #[error("{0}")]
    Refused(String),
    #[error("internal error: {0}; the request was not applied, retry it")]
    Internal(String),
}

impl ToolError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl From<StoreError> for ToolError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::Internal(e.to_string())
    }
}

impl From<rusqlite::Error> for ToolError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// Who is calling, as claimed; verified by [`Bridge`] on every call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub conversation_id: String,
    pub session_id: String,
    pub token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    Question,
    Info,
    Proposal,
    Blocked,
    Complete,
}

impl ActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Question => "question",
            Self::Info => "info",
            Self::Proposal => "proposal",
            Self::Blocked => "blocked",
            Self::Complete => "complete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Working,
    Waiting,
    Blocked,
    Complete,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::Waiting => "waiting",
            Self::Blocked => "blocked",
            Self::Complete => "complete",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Created {
    /// `conv_` + 16 hex characters.
    pub conversation_id: String,
    /// Secret for session "a" (the caller). Shown once; not recoverable.
    pub session_a_token: String,
    /// Secret for session "b" (the partner). Hand it over out of band.
    pub session_b_token: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Sent {
    /// Always "sent".
    pub status: String,
    pub message_id: i64,
    /// True when secrets were found and replaced before storing.
    pub redacted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    pub id: i64,
    /// Who sent it: the session id "a" or "b" for an agent, "bridge" for a
    /// system notice, "runner" for a command result.
    pub from: String,
    /// "message", "proposal", "command_result" or "system".
    pub kind: String,
    pub message: String,
    pub action_type: Option<String>,
    pub files_involved: Vec<String>,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Inbox {
    pub messages: Vec<Message>,
    /// More messages are waiting; call again.
    pub has_more: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MyStatus {
    pub status: String,
    /// RFC 3339 UTC.
    pub last_heartbeat: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PartnerStatus {
    pub partner_session_id: String,
    pub partner_role: String,
    /// "working", "waiting", "blocked", "complete", or "unknown" before the
    /// partner's first update.
    pub status: String,
    /// RFC 3339 UTC, null before the partner's first update.
    pub last_heartbeat: Option<String>,
    pub age_seconds: Option<i64>,
    /// Heartbeat younger than 120 s.
    pub alive: bool,
}

/// What a send should store.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub message: String,
    pub action_type: ActionType,
    pub files_involved: Vec<String>,
}

/// The shared state of one bridge process. Cheap to clone.
#[derive(Clone)]
pub struct Bridge(Arc<Inner>);

struct Inner {
    db: Db,
    secret: ServerSecret,
    redactor: Redactor,
    limits: Limits,
    conversation_ttl_ms: Millis,
    clock: Arc<dyn Clock>,
    wake: Wake,
    doorbells: Arc<Doorbells>,
    /// Started by the first long poll (it needs a runtime).
    dispatcher: tokio::sync::OnceCell<()>,
    yolo: Option<Policy>,
    quotas: Quotas,
    throttle: Throttle,
    tally: Tally,
}

pub struct BridgeParts {
    pub db: Db,
    pub secret: ServerSecret,
    pub redactor: Redactor,
    pub limits: Limits,
    pub conversation_ttl: Duration,
    pub clock: Arc<dyn Clock>,
    /// `Some` only when the operator started this server with YOLO on.
    pub yolo: Option<Policy>,
    /// Failed-authentication backoff and conversation-creation limits.
    pub quotas: Quotas,
}

impl Bridge {
    pub fn new(p: BridgeParts) -> Self {
        let wake = Wake::watching(p.db.path());
        Self(Arc::new(Inner {
            db: p.db,
            secret: p.secret,
            redactor: p.redactor,
            limits: p.limits,
            conversation_ttl_ms: p.conversation_ttl.as_millis() as Millis,
            clock: p.clock,
            wake,
            doorbells: Arc::default(),
            dispatcher: tokio::sync::OnceCell::new(),
            yolo: p.yolo,
            throttle: Throttle::new(p.quotas.throttle.clone()),
            quotas: p.quotas,
            tally: Tally::default(),
        }))
    }

    pub(crate) fn secret(&self) -> &ServerSecret {
        &self.0.secret
    }
    pub(crate) fn wake(&self) -> &Wake {
        &self.0.wake
    }
    /// The command policy, when YOLO is on for this server process.
    pub fn yolo_policy(&self) -> Option<&Policy> {
        self.0.yolo.as_ref()
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }
    pub fn redactor(&self) -> &Redactor {
        &self.0.redactor
    }
    pub fn now(&self) -> Millis {
        self.0.clock.now_ms()
    }
    pub(crate) fn throttle(&self) -> &Throttle {
        &self.0.throttle
    }

    /// Checks a caller's token without taking the write lock or writing
    /// anything: the throttled path, so a correct token is never refused.
    pub async fn verify_caller(&self, caller: Caller) -> Result<bool, ToolError> {
        let this = self.clone();
        Ok(self
            .0
            .db
            .call(move |conn| this.authenticate_quiet(conn, &caller, this.now()))
            .await?)
    }

    /// Records a refusal: one row of its own while the client's itemized
    /// allowance lasts (see `tally.rs`), else one more in an aggregate.
    pub async fn audit_refused(
        &self,
        client: &str,
        action: &'static str,
        caller: Option<(String, String)>,
        detail: serde_json::Value,
    ) {
        let now = self.now();
        if !self.0.tally.itemize(client, now) {
            let (c, s) = caller.unzip();
            self.0.tally.count(
                Counter {
                    conversation_id: c,
                    session_id: s,
                    action,
                    tool: detail["tool"].as_str().unwrap_or_default().to_owned(),
                    client: client.to_owned(),
                    refused: true,
                },
                now,
            );
            return;
        }
        let this = self.clone();
        let res = self
            .0
            .db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let (c, s) = caller.unzip();
                audit::append(
                    &tx,
                    &this.0.redactor,
                    now,
                    Entry {
                        conversation_id: c.as_deref(),
                        session_id: s.as_deref(),
                        action,
                        outcome: Outcome::Refused,
                        detail,
                    },
                )?;
                tx.commit()?;
                Ok(())
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "could not audit a refused request");
        }
    }

    /// Writes every pending count as one aggregate audit row each. Runs
    /// every `tally::FLUSH_EVERY` and at shutdown; on failure the counts
    /// are kept for the next attempt.
    pub async fn flush_tally(&self) {
        let counts = self.0.tally.drain();
        if counts.is_empty() {
            return;
        }
        let this = self.clone();
        let kept = counts.clone();
        let res = self
            .0
            .db
            .call(move |conn| {
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for (counter, count) in &counts {
                    audit::append(
                        &tx,
                        &this.0.redactor,
                        now,
                        Entry {
                            conversation_id: counter.conversation_id.as_deref(),
                            session_id: counter.session_id.as_deref(),
                            action: counter.action,
                            outcome: if counter.refused {
                                Outcome::Refused
                            } else {
                                Outcome::Ok
                            },
                            detail: count.detail(counter),
                        },
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "could not write aggregate audit rows; keeping the counts for the next flush");
            self.0.tally.restore(kept);
        }
    }

    pub async fn create_conversation(
        &self,
        my_role: String,
        partner_role: String,
    ) -> Result<Created, ToolError> {
        let conversation_id = auth::new_conversation_id().map_err(internal)?;
        let token_a = auth::new_token().map_err(internal)?;
        let token_b = auth::new_token().map_err(internal)?;
        let this = self.clone();
        let (cid, ta, tb) = (conversation_id.clone(), token_a.clone(), token_b.clone());
        let expires_at = self
            .0
            .db
            .call(move |conn| {
                let inner = &this.0;
                let now = this.now();
                let expires = now + inner.conversation_ttl_ms;
                let role_a = inner.redactor.redact(&my_role).into_owned();
                let role_b = inner.redactor.redact(&partner_role).into_owned();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if let Err(e) = crate::mcp::throttle::check_global(&inner.quotas, &tx, now)? {
                    return Ok(Err(e));
                }
                tx.execute(
                    "INSERT INTO conversations (id, created_at, expires_at) VALUES (?1, ?2, ?3)",
                    params![cid, now, expires],
                )?;
                for (sid, role, token) in [("a", &role_a, &ta), ("b", &role_b, &tb)] {
                    tx.execute(
                        "INSERT INTO sessions (conversation_id, session_id, role, token_hash) VALUES (?1, ?2, ?3, ?4)",
                        params![cid, sid, role, inner.secret.hash_token(token)],
                    )?;
                }
                audit::append(
                    &tx,
                    &inner.redactor,
                    now,
                    Entry {
                        conversation_id: Some(&cid),
                        session_id: Some("a"),
                        action: "conversation.create",
                        outcome: Outcome::Ok,
                        detail: serde_json::json!({ "roles": { "a": role_a, "b": role_b }, "expires_at": rfc3339(expires) }),
                    },
                )?;
                tx.commit()?;
                Ok(Ok(expires))
            })
            .await??;
        Ok(Created {
            conversation_id,
            session_a_token: token_a,
            session_b_token: token_b,
            expires_at: rfc3339(expires_at),
        })
    }

    pub async fn send(&self, caller: Caller, out: Outgoing) -> Result<Sent, ToolError> {
        let this = self.clone();
        let sent = self
            .0
            .db
            .call(move |conn| {
                let inner = &this.0;
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !this.authenticate(&tx, &caller, now, "send_to_partner")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                let (cid, sid) = (&caller.conversation_id, &caller.session_id);
                if let Err(exceeded) = this.take_quota(&tx, cid, sid, "send", now)? {
                    // Audited by the tool layer (itemized or counted).
                    tx.commit()?;
                    return Ok(Err(ToolError::RateLimited(exceeded)));
                }
                let (body, mut classes) = inner.redactor.redacted_report(&out.message);
                // Joined as well as one by one, so a key split across entries is caught.
                let (fields, split) = inner.redactor.redact_fields(&out.files_involved);
                let (files, files_changed) =
                    inner.redactor.redacted_json(serde_json::json!(fields));
                if files_changed || split {
                    classes.push("files_involved".into());
                }
                let redacted = !classes.is_empty();
                let ids = insert_to_others(
                    &tx,
                    cid,
                    sid,
                    "message",
                    Some(out.action_type.as_str()),
                    &body,
                    &files,
                    redacted,
                    now,
                )?;
                audit::append(
                    &tx,
                    &inner.redactor,
                    now,
                    Entry {
                        conversation_id: Some(cid),
                        session_id: Some(sid),
                        action: "message.send",
                        outcome: Outcome::Ok,
                        detail: serde_json::json!({ "message_ids": ids, "action_type": out.action_type.as_str(), "chars": out.message.chars().count(), "files": out.files_involved.len(), "redacted_classes": classes }),
                    },
                )?;
                tx.commit()?;
                Ok(Ok(Sent {
                    status: "sent".into(),
                    message_id: ids.first().copied().unwrap_or_default(),
                    redacted,
                }))
            })
            .await??;
        self.0.wake.notify();
        Ok(sent)
    }

    /// Returns unread messages (or, with `since_id`, every message after
    /// it), waiting up to `wait` for the first one to arrive.
    pub async fn check(
        &self,
        caller: Caller,
        wait: Duration,
        peek: bool,
        since_id: Option<i64>,
        cancel: CancellationToken,
    ) -> Result<Inbox, ToolError> {
        let started = tokio::time::Instant::now();
        let deadline = started + wait;
        if !wait.is_zero() {
            self.start_dispatcher().await?;
        }
        let mut changes = self
            .0
            .doorbells
            .subscribe((caller.conversation_id.clone(), caller.session_id.clone()));
        let mut first = true;
        loop {
            // Mark the current change as seen *before* querying, so a commit
            // landing between the query and the wait still wakes us.
            changes.borrow_and_update();
            // A cancelled wait (the client gave up, or the server is
            // draining) consumes nothing: whoever asks next gets the messages.
            if cancel.is_cancelled() && !first {
                return Ok(Inbox {
                    messages: vec![],
                    has_more: false,
                });
            }
            let last_try = tokio::time::Instant::now() >= deadline;
            let this = self.clone();
            let caller2 = caller.clone();
            let waited_ms = started.elapsed().as_millis() as u64;
            let found = self
                .0
                .db
                .call(move |conn| {
                    this.check_once(conn, &caller2, peek, since_id, last_try, waited_ms)
                })
                .await??;
            first = false;
            if let Some(inbox) = found {
                if !peek && !inbox.messages.is_empty() {
                    self.0.wake.notify();
                }
                return Ok(inbox);
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(remaining.min(BACKSTOP)) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }

    /// One attempt: `Ok(None)` means "nothing yet, keep waiting".
    /// Starts this process's doorbell dispatcher once: every database
    /// change (local commit or file event from another process) becomes one
    /// query for messages newer than the last seen, and rings the bells of
    /// the inboxes they went to. The newest id is read before the first long
    /// poll queries, so no message can fall between the two.
    async fn start_dispatcher(&self) -> Result<(), ToolError> {
        self.0
            .dispatcher
            .get_or_try_init(|| async {
                let mut changes = self.0.wake.subscribe();
                let mut last: i64 = self
                    .0
                    .db
                    .call(|c| {
                        Ok(c.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
                            r.get(0)
                        })?)
                    })
                    .await?;
                let (db, bells) = (self.0.db.clone(), self.0.doorbells.clone());
                // Holds no reference to the bridge: it ends when the wake
                // sender (owned by the bridge) is dropped.
                tokio::spawn(async move {
                    let mut recheck = false;
                    loop {
                        // A file event can arrive just before another
                        // process's commit is visible: after an event that
                        // showed nothing new, look once more shortly.
                        let event = if recheck {
                            tokio::select! {
                                r = changes.changed() => if r.is_err() { return } else { true },
                                _ = tokio::time::sleep(RECHECK) => false,
                            }
                        } else if changes.changed().await.is_err() {
                            return;
                        } else {
                            true
                        };
                        changes.borrow_and_update();
                        let since = last;
                        match db.call(move |c| new_messages(c, since)).await {
                            Ok((newest, inboxes)) => {
                                recheck = event && inboxes.is_empty();
                                last = newest;
                                bells.ring(inboxes);
                            }
                            Err(e) => tracing::warn!(error = %e, "doorbell dispatcher query failed; waiters fall back to the backstop"),
                        }
                    }
                });
                Ok::<(), ToolError>(())
            })
            .await?;
        Ok(())
    }

    fn check_once(
        &self,
        conn: &mut Connection,
        caller: &Caller,
        peek: bool,
        since_id: Option<i64>,
        last_try: bool,
        waited_ms: u64,
    ) -> Result<Result<Option<Inbox>, ToolError>, StoreError> {
        let inner = &self.0;
        let now = self.now();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-authenticate every round so a conversation that expires or has
        // its tokens rotated mid-wait stops being served.
        // A failure is audited by the tool layer, once per call.
        if !self.authenticate_quiet(&tx, caller, now)? {
            tx.commit()?;
            return Ok(Err(ToolError::Unauthorized));
        }
        let (cid, sid) = (&caller.conversation_id, &caller.session_id);
        let sql = if since_id.is_some() {
            "SELECT id, sender, kind, body, action_type, files, created_at, read_at FROM messages
             WHERE conversation_id = ?1 AND recipient = ?2 AND id > ?3 ORDER BY id LIMIT ?4"
        } else {
            "SELECT id, sender, kind, body, action_type, files, created_at, read_at FROM messages
             WHERE conversation_id = ?1 AND recipient = ?2 AND read_at IS NULL AND id > ?3 ORDER BY id LIMIT ?4"
        };
        let mut rows: Vec<(Message, bool)> = {
            let mut stmt = tx.prepare_cached(sql)?;
            stmt.query_map(
                params![cid, sid, since_id.unwrap_or(0), (CHECK_BATCH + 1) as i64],
                |r| {
                    let files: String = r.get(5)?;
                    let read_at: Option<i64> = r.get(7)?;
                    Ok((
                        Message {
                            id: r.get(0)?,
                            from: r.get(1)?,
                            kind: r.get(2)?,
                            message: r.get(3)?,
                            action_type: r.get(4)?,
                            files_involved: serde_json::from_str(&files).unwrap_or_default(),
                            timestamp: rfc3339(r.get(6)?),
                        },
                        read_at.is_none(),
                    ))
                },
            )?
            .collect::<rusqlite::Result<_>>()?
        };
        let has_more = rows.len() > CHECK_BATCH;
        rows.truncate(CHECK_BATCH);
        if rows.is_empty() && !last_try {
            tx.commit()?;
            return Ok(Ok(None));
        }
        if !peek {
            let mut mark = tx.prepare_cached(
                "UPDATE messages SET read_at = ?1 WHERE id = ?2 AND read_at IS NULL",
            )?;
            for (m, unread) in &rows {
                if *unread {
                    mark.execute(params![now, m.id])?;
                }
            }
        }
        let consumed = !peek && rows.iter().any(|(_, unread)| *unread);
        let messages: Vec<Message> = rows.into_iter().map(|(m, _)| m).collect();
        if !consumed {
            // A read that consumed nothing (empty, a peek, a re-read)
            // changes nothing: counted, not audited one row each, or a
            // polling loop would fill the disk.
            tx.commit()?;
            let action = if messages.is_empty() {
                "message.check.empty"
            } else {
                "message.check.reread"
            };
            self.count_read(caller, action, "check_messages", now);
            return Ok(Ok(Some(Inbox { messages, has_more })));
        }
        audit::append(
            &tx,
            &inner.redactor,
            now,
            Entry {
                conversation_id: Some(cid),
                session_id: Some(sid),
                action: "message.check",
                outcome: Outcome::Ok,
                detail: serde_json::json!({ "returned": messages.iter().map(|m| m.id).collect::<Vec<_>>(), "peek": peek, "since_id": since_id, "waited_ms": waited_ms }),
            },
        )?;
        tx.commit()?;
        Ok(Ok(Some(Inbox { messages, has_more })))
    }

    pub async fn update_status(
        &self,
        caller: Caller,
        status: SessionStatus,
    ) -> Result<MyStatus, ToolError> {
        let this = self.clone();
        self.0
            .db
            .call(move |conn| {
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !this.authenticate(&tx, &caller, now, "update_my_status")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                tx.execute(
                    "UPDATE sessions SET status = ?1, last_heartbeat = ?2 WHERE conversation_id = ?3 AND session_id = ?4",
                    params![status.as_str(), now, caller.conversation_id, caller.session_id],
                )?;
                tx.commit()?;
                // A self-reported heartbeat: counted (with the latest status)
                // rather than one row each, or a loop could fill the disk.
                this.0.tally.count_with(
                    Counter {
                        conversation_id: Some(caller.conversation_id.clone()),
                        session_id: Some(caller.session_id.clone()),
                        action: "status.update",
                        tool: "update_my_status".into(),
                        client: String::new(),
                        refused: false,
                    },
                    now,
                    Some(status.as_str().into()),
                );
                Ok(Ok(MyStatus {
                    status: status.as_str().into(),
                    last_heartbeat: rfc3339(now),
                }))
            })
            .await?
    }

    pub async fn partner_status(&self, caller: Caller) -> Result<PartnerStatus, ToolError> {
        let this = self.clone();
        self.0
            .db
            .call(move |conn| {
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !this.authenticate(&tx, &caller, now, "check_partner_status")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                let (partner, role, status, beat): (String, String, Option<String>, Option<i64>) =
                    tx.query_row(
                        "SELECT session_id, role, status, last_heartbeat FROM sessions
                     WHERE conversation_id = ?1 AND session_id != ?2 ORDER BY session_id LIMIT 1",
                        params![caller.conversation_id, caller.session_id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )?;
                // A pure read: counted like an empty check.
                tx.commit()?;
                this.count_read(&caller, "status.check", "check_partner_status", now);
                let age = beat.map(|b| ((now - b) / 1000).max(0));
                Ok(Ok(PartnerStatus {
                    partner_session_id: partner,
                    partner_role: role,
                    status: status.unwrap_or_else(|| "unknown".into()),
                    last_heartbeat: beat.map(rfc3339),
                    age_seconds: age,
                    alive: age.is_some_and(|a| a < ALIVE_SECS),
                }))
            })
            .await?
    }

    /// Verifies the caller. A failure is audited by the tool layer
    /// (`tools.rs`), which also throttles it, so it is never written here
    /// inside the write transaction; `_tool` names the call for readers.
    pub(crate) fn authenticate(
        &self,
        conn: &Connection,
        caller: &Caller,
        now: Millis,
        _tool: &str,
    ) -> Result<bool, StoreError> {
        self.authenticate_quiet(conn, caller, now)
    }

    fn count_read(&self, caller: &Caller, action: &'static str, tool: &str, now: Millis) {
        self.0.tally.count(
            Counter {
                conversation_id: Some(caller.conversation_id.clone()),
                session_id: Some(caller.session_id.clone()),
                action,
                tool: tool.to_owned(),
                client: String::new(),
                refused: false,
            },
            now,
        );
    }

    fn authenticate_quiet(
        &self,
        conn: &Connection,
        caller: &Caller,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let row: Option<(Vec<u8>, Millis)> = conn
            .prepare_cached(
                "SELECT s.token_hash, c.expires_at FROM sessions s JOIN conversations c ON c.id = s.conversation_id
                 WHERE s.conversation_id = ?1 AND s.session_id = ?2",
            )?
            .query_row(params![caller.conversation_id, caller.session_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        Ok(match row {
            Some((hash, expires)) => {
                // Verify before looking at expiry so both paths cost an HMAC.
                self.0.secret.verify_token(&caller.token, &hash) && now < expires
            }
            None => {
                // Same work as a real check, so timing does not reveal
                // whether the conversation exists.
                let _ = self.0.secret.verify_token(&caller.token, &[0u8; 32]);
                false
            }
        })
    }

    /// Counts one `kind` action against the caller's quota, or says why not.
    pub(crate) fn take_quota(
        &self,
        conn: &Connection,
        cid: &str,
        sid: &str,
        kind: &str,
        now: Millis,
    ) -> Result<Result<(), Exceeded>, StoreError> {
        let limits = &self.0.limits;
        let Some(longest) = limits.longest_secs() else {
            return Ok(Ok(()));
        };
        let horizon = now - i64::from(longest) * 1000;
        conn.prepare_cached(
            "DELETE FROM quota_events WHERE conversation_id = ?1 AND session_id = ?2 AND kind = ?3 AND at <= ?4",
        )?
        .execute(params![cid, sid, kind, horizon])?;
        let recent: Vec<Millis> = conn
            .prepare_cached(
                "SELECT at FROM quota_events WHERE conversation_id = ?1 AND session_id = ?2 AND kind = ?3",
            )?
            .query_map(params![cid, sid, kind], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if let Err(e) = limits.check(now, &recent) {
            return Ok(Err(e));
        }
        conn.prepare_cached(
            "INSERT INTO quota_events (conversation_id, session_id, kind, at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![cid, sid, kind, now])?;
        Ok(Ok(()))
    }
}

/// How soon the dispatcher looks again after a change showed nothing new.
const RECHECK: Duration = Duration::from_millis(3);

/// The newest message id after `since` and the inboxes that got messages.
fn new_messages(conn: &mut Connection, since: i64) -> Result<(i64, Vec<InboxKey>), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, conversation_id, recipient FROM messages WHERE id > ?1 ORDER BY id",
    )?;
    let mut newest = since;
    let mut inboxes = Vec::new();
    let rows = stmt.query_map([since], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?;
    for row in rows {
        let (id, conversation, recipient) = row?;
        newest = newest.max(id);
        inboxes.push((conversation, recipient));
    }
    inboxes.dedup();
    Ok((newest, inboxes))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ToolError {
    ToolError::Internal(e.to_string())
}
