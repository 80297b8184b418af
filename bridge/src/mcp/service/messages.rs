//! Messages between the two sessions: sending (authenticated, quota-counted,
//! redacted, audited in one transaction) and checking an inbox, which waits
//! for the first message when asked to (the long poll; the doorbells it
//! waits on are rung by `dispatcher.rs`).

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio_util::sync::CancellationToken;

use bridge_state::audit::{self, Entry, Outcome};
use bridge_state::clock::{Millis, rfc3339};
use bridge_state::messages::{self, Selection};
use bridge_state::store::StoreError;
use bridge_state::wake::BACKSTOP;

use super::{Bridge, Caller, Counter, Inbox, Message, Outgoing, Sent, ToolError};

/// At most this many messages come back from one `check_messages`.
pub const CHECK_BATCH: usize = 100;

impl Bridge {
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
                let ids = messages::insert_to_others(
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
        let which = match since_id {
            Some(id) => Selection::After(id),
            None => Selection::Unread,
        };
        let mut rows: Vec<(Message, bool)> =
            messages::for_recipient(&tx, cid, sid, which, CHECK_BATCH + 1)?
                .into_iter()
                .map(|m| {
                    let message = Message {
                        id: m.id,
                        from: m.sender,
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
        if rows.is_empty() && !last_try {
            tx.commit()?;
            return Ok(Ok(None));
        }
        if !peek {
            let unread = rows.iter().filter(|(_, unread)| *unread);
            messages::mark_read(&tx, unread.map(|(m, _)| m.id), now)?;
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
