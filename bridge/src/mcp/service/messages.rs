//! Messages between participants: sending (authenticated, addressed,
//! idempotent on request, quota-counted, redacted, audited in one
//! transaction), checking an inbox, which waits for the first message when
//! asked to (the long poll; the doorbells it waits on are rung by
//! `dispatcher.rs`), and acknowledging what a peek returned.

use std::time::Duration;

use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use bridge_state::audit::{self, Entry, Outcome};
use bridge_state::clock::{Millis, rfc3339};
use bridge_state::messages::{self, NewMessage, Selection};
use bridge_state::store::StoreError;
use bridge_state::wake::BACKSTOP;

use super::{Acked, Bridge, Caller, Counter, Inbox, Message, Outgoing, Sent, ToolError};

/// At most this many messages come back from one `check_messages`.
pub const CHECK_BATCH: usize = 100;

/// The tracing target of the long poll's two debug events, "long poll
/// waiting" and "long poll ended" (see [`Waiting`]).
pub const LONG_POLL_TARGET: &str = "bridge::longpoll";

/// A long poll that is waiting, for the logs: "long poll waiting" once it
/// is registered for wake-ups and its first query found nothing, so any
/// message committed after that line wakes it; "long poll ended" when it
/// returns or is dropped (its client went away), after which it consumes
/// nothing. Tests synchronise on these lines instead of sleeping "so the
/// poll is in flight"; operators see them with
/// `BRIDGE_LOG=warn,bridge::longpoll=debug`. Ids only: the token and
/// message text never reach them.
struct Waiting<'a>(&'a Caller);

impl<'a> Waiting<'a> {
    fn start(caller: &'a Caller) -> Self {
        tracing::debug!(target: LONG_POLL_TARGET, conversation_id = %caller.conversation_id, session_id = %caller.session_id, "long poll waiting");
        Self(caller)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        tracing::debug!(target: LONG_POLL_TARGET, conversation_id = %self.0.conversation_id, session_id = %self.0.session_id, "long poll ended");
    }
}

/// One look at an inbox, as the long poll's loop asks for it.
#[derive(Clone)]
struct Attempt {
    caller: Caller,
    peek: bool,
    since_id: Option<i64>,
    /// The wait is over: answer even with nothing.
    last_try: bool,
    waited_ms: u64,
}

/// What one look found.
enum Found {
    /// Nothing yet: keep waiting.
    Nothing,
    /// The answer.
    Inbox(Inbox),
    /// Unread messages to return and mark read: look again in a write
    /// transaction.
    Unread,
}

impl Bridge {
    pub async fn send(&self, caller: Caller, out: Outgoing) -> Result<Sent, ToolError> {
        let this = self.clone();
        let sent = self
            .0
            .db
            .write(move |tx| {
                let inner = &this.0;
                let now = this.now();
                if !this.authenticate(tx, &caller, now, "send_to_partner")? {
                    return Ok(Err(ToolError::Unauthorized));
                }
                let (cid, sid) = (&caller.conversation_id, &caller.session_id);
                let others = messages::others(tx, cid, sid)?;
                let to = match recipients(&others, out.to.as_deref()) {
                    Ok(to) => to,
                    Err(e) => {
                            return Ok(Err(e));
                    }
                };
                // A retry is answered from the first send, before the quota:
                // retrying costs nothing and delivers nothing new.
                let idempotency = out.idempotency_key.as_ref().map(|key| {
                    let content = serde_json::json!([out.message, out.action_type.as_str(), out.files_involved, to]);
                    (
                        inner.secret.hash_token(&format!("idempotency-key\0{key}")),
                        inner.secret.hash_token(&format!("idempotency-content\0{content}")),
                    )
                });
                if let Some((key, content)) = &idempotency
                    && let Some(first) = messages::by_idempotency_key(tx, cid, sid, key)?
                {
                    if &first.content_hash != content {
                        return Ok(Err(ToolError::invalid(
                            "idempotency_key",
                            format!("was used for a different message (id {}); a retry must repeat the message, action_type, files_involved and to exactly, and a new message needs a new key", first.id),
                        )));
                    }
                    this.0.tally.count(
                        Counter {
                            conversation_id: Some(cid.clone()),
                            session_id: Some(sid.clone()),
                            action: "message.send.duplicate",
                            tool: "send_to_partner".into(),
                            client: String::new(),
                            refused: false,
                        },
                        now,
                    );
                    return Ok(Ok(Sent {
                        status: "sent".into(),
                        message_id: first.id,
                        redacted: first.redacted,
                        to: first.to,
                        duplicate: true,
                    }));
                }
                if let Err(exceeded) = this.take_quota(tx, cid, sid, "send", now)? {
                    // Audited by the tool layer (itemized or counted).
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
                let id = messages::insert(
                    tx,
                    cid,
                    &NewMessage {
                        sender: sid,
                        kind: "message",
                        action_type: Some(out.action_type.as_str()),
                        body: &body,
                        files_json: &files,
                        redacted,
                        idempotency: idempotency.as_ref().map(|(k, c)| (k.as_slice(), c.as_slice())),
                    },
                    &to,
                    now,
                )?;
                audit::append(
                    tx,
                    &inner.redactor,
                    now,
                    Entry {
                        conversation_id: Some(cid),
                        session_id: Some(sid),
                        action: "message.send",
                        outcome: Outcome::Ok,
                        detail: serde_json::json!({ "message_id": id, "to": to, "action_type": out.action_type.as_str(), "chars": out.message.chars().count(), "files": out.files_involved.len(), "redacted_classes": classes, "idempotent": idempotency.is_some() }),
                    },
                )?;
                Ok(Ok(Sent {
                    status: "sent".into(),
                    message_id: id,
                    redacted,
                    to,
                    duplicate: false,
                }))
            })
            .await??;
        if !sent.duplicate {
            self.0.wake.notify();
        }
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
        let mut waiting = None;
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
            let waited_ms = started.elapsed().as_millis() as u64;
            let attempt = Attempt {
                caller: caller.clone(),
                peek,
                since_id,
                last_try,
                waited_ms,
            };
            // Looked at on a read connection first: an empty inbox, a peek
            // or a re-read never waits for the write connection.
            let (this, a) = (self.clone(), attempt.clone());
            let mut found = self
                .0
                .db
                .read(move |conn| this.check_once(conn, &a, false))
                .await??;
            if let Found::Unread = found {
                let (this, gave_up) = (self.clone(), cancel.clone());
                found = self
                    .0
                    .db
                    .write(move |tx| {
                        // The client gave up (or went away) while this waited
                        // for the write connection: mark nothing read, since
                        // the answer may never reach it.
                        if gave_up.is_cancelled() {
                            return Ok(Ok(Found::Nothing));
                        }
                        this.check_once(tx, &attempt, true)
                    })
                    .await??;
            }
            first = false;
            if let Found::Inbox(inbox) = found {
                if !peek && !inbox.messages.is_empty() {
                    self.0.wake.notify();
                }
                return Ok(inbox);
            }
            // Subscribed to the doorbell (and the dispatcher started) before
            // the query that found nothing: from here a commit wakes us.
            waiting.get_or_insert_with(|| Waiting::start(&caller));
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(remaining.min(BACKSTOP)) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }

    /// One look at the caller's inbox. Without `write` (a read
    /// connection) it answers only what consumes nothing, and says
    /// [`Found::Unread`] when the answer would mark messages read; with
    /// `write` (inside a write transaction) it marks them and audits that.
    fn check_once(
        &self,
        conn: &Connection,
        a: &Attempt,
        write: bool,
    ) -> Result<Result<Found, ToolError>, StoreError> {
        let inner = &self.0;
        let now = self.now();
        let caller = &a.caller;
        // Re-authenticate every round so a conversation that expires or has
        // its tokens rotated mid-wait stops being served.
        // A failure is audited by the tool layer, once per call.
        if !self.authenticate_quiet(conn, caller, now)? {
            return Ok(Err(ToolError::Unauthorized));
        }
        let (cid, sid) = (&caller.conversation_id, &caller.session_id);
        let which = match a.since_id {
            Some(id) => Selection::After(id),
            None => Selection::Unread,
        };
        let mut rows: Vec<(Message, bool)> =
            messages::for_recipient(conn, cid, sid, which, CHECK_BATCH + 1)?
                .into_iter()
                .map(|m| {
                    let message = Message {
                        id: m.id,
                        from: m.sender,
                        to: m.to,
                        kind: m.kind,
                        message: m.body,
                        action_type: m.action_type,
                        files_involved: serde_json::from_str(&m.files_json).unwrap_or_default(),
                        timestamp: rfc3339(m.created_at),
                    };
                    (message, m.unread)
                })
                .collect();
        let has_more = rows.len() > CHECK_BATCH;
        rows.truncate(CHECK_BATCH);
        if rows.is_empty() && !a.last_try {
            return Ok(Ok(Found::Nothing));
        }
        let consumed = !a.peek && rows.iter().any(|(_, unread)| *unread);
        if consumed && !write {
            return Ok(Ok(Found::Unread));
        }
        if consumed {
            let unread = rows.iter().filter(|(_, unread)| *unread);
            messages::mark_read(conn, cid, sid, unread.map(|(m, _)| m.id), now)?;
        }
        let messages: Vec<Message> = rows.into_iter().map(|(m, _)| m).collect();
        if !consumed {
            // A read that consumed nothing (empty, a peek, a re-read)
            // changes nothing: counted, not audited one row each, or a
            // polling loop would fill the disk.
            let action = if messages.is_empty() {
                "message.check.empty"
            } else {
                "message.check.reread"
            };
            self.count_read(caller, action, "check_messages", now);
            return Ok(Ok(Found::Inbox(Inbox { messages, has_more })));
        }
        audit::append(
            conn,
            &inner.redactor,
            now,
            Entry {
                conversation_id: Some(cid),
                session_id: Some(sid),
                action: "message.check",
                outcome: Outcome::Ok,
                detail: serde_json::json!({ "returned": messages.iter().map(|m| m.id).collect::<Vec<_>>(), "peek": a.peek, "since_id": a.since_id, "waited_ms": a.waited_ms }),
            },
        )?;
        Ok(Ok(Found::Inbox(Inbox { messages, has_more })))
    }

    /// Marks the caller's messages up to `up_to_id` read: the second half
    /// of peek, process, ack.
    pub async fn ack(&self, caller: Caller, up_to_id: i64) -> Result<Acked, ToolError> {
        let this = self.clone();
        self.0
            .db
            .write(move |tx| {
                let now = this.now();
                if !this.authenticate(tx, &caller, now, "ack_messages")? {
                    return Ok(Err(ToolError::Unauthorized));
                }
                let (cid, sid) = (&caller.conversation_id, &caller.session_id);
                let acked = messages::ack(tx, cid, sid, up_to_id, now)?;
                if acked == 0 {
                    // Changed nothing: counted, like an empty check.
                    this.count_read(&caller, "message.ack.none", "ack_messages", now);
                } else {
                    audit::append(
                        tx,
                        &this.0.redactor,
                        now,
                        Entry {
                            conversation_id: Some(cid),
                            session_id: Some(sid),
                            action: "message.ack",
                            outcome: Outcome::Ok,
                            detail: serde_json::json!({ "up_to_id": up_to_id, "acked": acked }),
                        },
                    )?;
                }
                Ok(Ok(Acked { acked, up_to_id }))
            })
            .await?
    }

    pub(super) fn count_read(
        &self,
        caller: &Caller,
        action: &'static str,
        tool: &str,
        now: Millis,
    ) {
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
}

/// Who a send goes to: `to` when given (each another participant, none
/// twice), else every other participant.
fn recipients(others: &[String], to: Option<&[String]>) -> Result<Vec<String>, ToolError> {
    let Some(to) = to else {
        return Ok(others.to_vec());
    };
    let valid = || {
        others
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if to.is_empty() {
        return Err(ToolError::invalid(
            "to",
            format!(
                "must name at least one recipient, or be left out to send to everyone else ({})",
                valid()
            ),
        ));
    }
    let mut picked: Vec<String> = Vec::with_capacity(to.len());
    for (i, s) in to.iter().enumerate() {
        if !others.contains(s) {
            return Err(ToolError::invalid(
                format!("to[{i}]"),
                format!(
                    "{s:?} is not another participant of this conversation; valid recipients are {}",
                    valid()
                ),
            ));
        }
        if picked.contains(s) {
            return Err(ToolError::invalid(
                format!("to[{i}]"),
                format!("{s:?} is named twice; valid recipients are {}", valid()),
            ));
        }
        picked.push(s.clone());
    }
    Ok(picked)
}
