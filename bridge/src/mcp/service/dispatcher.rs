//! The long poll's doorbell dispatcher: one task per bridge process turns
//! every database change into one query for new messages and rings the
//! bells of the inboxes they went to, so a waiting `check_messages` wakes
//! for its own inbox only.

use std::time::Duration;

use bridge_state::messages;

use super::{Bridge, ToolError};

/// How soon the dispatcher looks again after a change showed nothing new.
const RECHECK: Duration = Duration::from_millis(3);

impl Bridge {
    /// Starts this process's doorbell dispatcher once: every database
    /// change (local commit or file event from another process) becomes one
    /// query for messages newer than the last seen, and rings the bells of
    /// the inboxes they went to. The newest id is read before the first long
    /// poll queries, so no message can fall between the two.
    pub(super) async fn start_dispatcher(&self) -> Result<(), ToolError> {
        self.0
            .dispatcher
            .get_or_try_init(|| async {
                let mut changes = self.0.wake.subscribe();
                let mut last: i64 = self
                    .0
                    .db
                    .read(|c| Ok(messages::newest_id(c)?))
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
                        match db.read(move |c| Ok(messages::inboxes_since(c, since)?)).await {
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
}
