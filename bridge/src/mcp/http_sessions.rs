//! A cap on live MCP-over-HTTP sessions (in total and per peer address) and
//! a deadline for finishing the handshake, around rmcp's in-memory
//! `LocalSessionManager`.
//!
//! rmcp 3.11 closes idle sessions (`keep_alive`) but has no cap, and its
//! `init_timeout` only covers the `initialize` request, which arrives with
//! the request that creates the session. So a client that never sends
//! `notifications/initialized` kept a session for the whole idle timeout,
//! and 20 000 `initialize` POSTs held a gigabyte. Here:
//! - the admission middleware reserves a [`Slot`] before rmcp reads the
//!   request ([`Sessions::reserve`]); over the cap it answers 503 and rmcp
//!   never sees the request;
//! - the reserved slot reaches `create_session` through a task-local
//!   ([`ADMISSION`]), because rmcp's `SessionManager` gets no request;
//! - a session that has not sent `notifications/initialized` within
//!   `init_timeout` is closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::Stream;
use rmcp::model::{ClientJsonRpcMessage, ClientNotification, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};

tokio::task_local! {
    /// The slot the admission middleware reserved for the request being
    /// served; `create_session` takes it.
    pub static ADMISSION: std::cell::Cell<Option<Slot>>;
}

/// How many sessions may live at once, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub max_total: usize,
    /// Per client address. Behind a port-publishing proxy (Docker compose)
    /// every client has the proxy's address, so this is a second total.
    pub max_per_peer: usize,
    /// A session that has not completed the handshake by then is closed.
    pub init_timeout: Duration,
    /// A session with no request for this long is closed (rmcp `keep_alive`).
    pub idle_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_total: 256,
            max_per_peer: 128,
            init_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Why a new session was refused.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    #[error(
        "too many MCP sessions are open on this server ({0}); close unused sessions (HTTP DELETE) or retry later"
    )]
    Total(usize),
    #[error(
        "too many MCP sessions are open from your address ({0}); close unused sessions (HTTP DELETE) or retry later"
    )]
    PerPeer(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

#[derive(Debug, Default)]
struct Table {
    total: usize,
    per_peer: HashMap<Option<IpAddr>, usize>,
    /// Live sessions: their peer and whether the handshake completed.
    live: HashMap<SessionId, (Option<IpAddr>, bool)>,
}

impl Table {
    fn release(&mut self, peer: Option<IpAddr>) {
        self.total -= 1;
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    local: LocalSessionManager,
    limits: SessionLimits,
    table: Mutex<Table>,
}

impl Inner {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves plain counters behind; keep going.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserve(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Slot, Refused> {
        let mut t = self.table();
        if t.total >= self.limits.max_total {
            return Err(Refused::Total(self.limits.max_total));
        }
        let mine = t.per_peer.entry(peer).or_default();
        if *mine >= self.limits.max_per_peer {
            return Err(Refused::PerPeer(self.limits.max_per_peer));
        }
        *mine += 1;
        t.total += 1;
        Ok(Slot {
            owner: Arc::downgrade(self),
            peer,
        })
    }

    /// Closes the session and frees its slot; safe to call twice (rmcp calls
    /// `close_session` again when the closed session's service ends).
    async fn close(&self, id: &SessionId) -> Result<(), LocalSessionManagerError> {
        let result = self.local.close_session(id).await;
        let mut t = self.table();
        if let Some((peer, _)) = t.live.remove(id) {
            t.release(peer);
        }
        result
    }
}

/// A reserved place for one session; freed on drop unless a session took it.
#[derive(Debug)]
pub struct Slot {
    owner: Weak<Inner>,
    peer: Option<IpAddr>,
}

impl Slot {
    /// Hands the reserved count over to a session: dropping no longer frees it.
    fn disarm(mut self) -> Option<IpAddr> {
        self.owner = Weak::new();
        self.peer
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(inner) = self.owner.upgrade() {
            inner.table().release(self.peer);
        }
    }
}

/// rmcp's `LocalSessionManager` with a cap and a handshake deadline.
#[derive(Debug, Clone)]
pub struct Sessions(Arc<Inner>);

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        let mut local = LocalSessionManager::default();
        local.session_config.keep_alive = Some(limits.idle_timeout);
        // rmcp's own deadline for the `initialize` request itself.
        local.session_config.init_timeout = Some(limits.init_timeout);
        Self(Arc::new(Inner {
            local,
            limits,
            table: Mutex::default(),
        }))
    }

    /// Reserves a place for a session a request from `peer` may create.
    pub fn reserve(&self, peer: Option<IpAddr>) -> Result<Slot, Refused> {
        self.0.reserve(peer)
    }

    /// Live sessions plus reserved places.
    pub fn in_use(&self) -> usize {
        self.0.table().total
    }

    fn commit(&self, slot: Slot, id: &SessionId) {
        let peer = slot.disarm();
        // The count now belongs to the session; `close` releases it.
        self.0.table().live.insert(id.clone(), (peer, false));
    }
}

impl SessionManager for Sessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        // Outside the admission middleware (no task-local), reserve here so
        // no path bypasses the cap.
        let slot = match ADMISSION.try_with(|s| s.take()) {
            Ok(Some(slot)) => slot,
            Ok(None) | Err(_) => self.reserve(None)?,
        };
        let (id, transport) = self.0.local.create_session().await?;
        self.commit(slot, &id);
        let owner = Arc::downgrade(&self.0);
        let deadline = self.0.limits.init_timeout;
        let watched = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            let Some(inner) = owner.upgrade() else { return };
            let unfinished = matches!(inner.table().live.get(&watched), Some((_, false)));
            if unfinished {
                tracing::info!(session = %watched, ?deadline, "closing an MCP session that did not complete the handshake in time");
                let _ = inner.close(&watched).await;
            }
        });
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.0.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.0.local.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        Ok(self.0.close(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.0.local.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        let handshake_done = matches!(
            &message,
            JsonRpcMessage::Notification(n)
                if matches!(n.notification, ClientNotification::InitializedNotification(_))
        );
        self.0.local.accept_message(id, message).await?;
        if handshake_done && let Some((_, done)) = self.0.table().live.get_mut(id) {
            *done = true;
        }
        Ok(())
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.0.local.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.0.local.resume(id, last_event_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_peer: usize) -> SessionLimits {
        SessionLimits {
            max_total: total,
            max_per_peer: per_peer,
            ..SessionLimits::default()
        }
    }

    #[test]
    fn reservations_count_per_peer_and_in_total_and_free_on_drop() {
        let s = Sessions::new(limits(3, 2));
        let a: Option<IpAddr> = Some([127, 0, 0, 2].into());
        let b: Option<IpAddr> = Some([127, 0, 0, 3].into());
        let a1 = s.reserve(a).unwrap();
        let _a2 = s.reserve(a).unwrap();
        assert_eq!(s.reserve(a).unwrap_err(), Refused::PerPeer(2));
        let _b1 = s.reserve(b).unwrap();
        assert_eq!(s.reserve(b).unwrap_err(), Refused::Total(3));
        drop(a1);
        assert_eq!(s.in_use(), 2);
        assert!(
            s.reserve(b).is_ok(),
            "a freed place is usable by another peer"
        );
    }

    #[test]
    fn a_committed_slot_is_freed_once_by_close() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = Sessions::new(limits(1, 1));
            let slot = s.reserve(None).unwrap();
            let id: SessionId = "x".into();
            s.commit(slot, &id);
            assert_eq!(s.in_use(), 1);
            assert!(s.reserve(None).is_err());
            s.0.close(&id).await.unwrap();
            s.0.close(&id).await.unwrap();
            assert_eq!(s.in_use(), 0);
        });
    }
}
