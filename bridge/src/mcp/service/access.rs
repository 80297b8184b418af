//! Who may call and how often: verifying a caller's session token (the same
//! HMAC work whether or not the session exists, so timing reveals nothing)
//! and counting actions against the session's quota.

use rusqlite::Connection;

use bridge_state::clock::Millis;
use bridge_state::conversations;
use bridge_state::ratelimit::{self, Exceeded};
use bridge_state::store::StoreError;

use super::{Bridge, Caller, ToolError};

impl Bridge {
    /// Checks a caller's token without taking the write lock or writing
    /// anything: the throttled path, so a correct token is never refused.
    pub async fn verify_caller(&self, caller: Caller) -> Result<bool, ToolError> {
        let this = self.clone();
        Ok(self
            .0
            .db
            .read(move |conn| this.authenticate_quiet(conn, &caller, this.now()))
            .await?)
    }

    /// Verifies the caller. A failure is audited by the tool layer
    /// (`tools/`), which also throttles it, so it is never written here
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

    pub(super) fn authenticate_quiet(
        &self,
        conn: &Connection,
        caller: &Caller,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let row = conversations::credentials(conn, &caller.conversation_id, &caller.session_id)?;
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
        Ok(ratelimit::take(conn, &self.0.limits, cid, sid, kind, now)?)
    }
}
