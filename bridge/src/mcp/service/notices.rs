//! Telling a participant's hook about new mail over MCP (`inbox_notify`,
//! what `bridge inbox --url` calls): the same step as the local `bridge
//! inbox`, run server-side because over HTTP the client cannot reach the
//! database that holds the "told up to" cursor.
//!
//! Why a tool of its own rather than `check_messages` with `peek`: a peek
//! returns every unread message each time, so "tell each once" would need
//! a cursor kept by the hook's client, and a hook is a fresh process per
//! event with nowhere safe to keep one (it runs as several hooks at once,
//! and a lost or stale file would re-tell or silently skip mail). The
//! cursor already lives in the database (`sessions.notified_up_to`), and
//! reading it and moving it in the same transaction is what makes "once"
//! hold with concurrent hooks. A peek also carries message text, which a
//! hook must never see. So this call returns only who sent what kind, moves
//! the cursor, and marks nothing read: `check_messages` and `ack_messages`
//! behave exactly as before.

use rusqlite::TransactionBehavior;

use bridge_state::messages;

use super::{Bridge, Caller, NoticeView, Notified, ToolError};

/// At most this many messages are told about per call, locally or over HTTP.
pub const NOTIFY_BATCH: usize = 100;

impl Bridge {
    /// The caller's unread mail above its notified cursor, and the cursor
    /// moved past it, in one transaction. A call that tells something is
    /// audited (one row, written by the repository); an empty one is
    /// counted, like an empty `check_messages`.
    pub async fn notify_inbox(&self, caller: Caller) -> Result<Notified, ToolError> {
        let this = self.clone();
        self.0
            .db
            .call(move |conn| {
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !this.authenticate(&tx, &caller, now, "inbox_notify")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                let told = messages::notify_unread(
                    &tx,
                    &this.0.redactor,
                    now,
                    &caller.conversation_id,
                    &caller.session_id,
                    NOTIFY_BATCH,
                )?;
                tx.commit()?;
                if told.is_empty() {
                    this.count_read(&caller, "inbox.notify.empty", "inbox_notify", now);
                }
                Ok(Ok(Notified {
                    new: told.into_iter().map(NoticeView::from).collect(),
                }))
            })
            .await?
    }
}
