//! The bridge's behaviour, independent of transport: create conversations,
//! authenticate sessions, send and receive messages, heartbeats. The MCP
//! tools (`tools/`) and the demo call this; nothing here knows about JSON-RPC.
//!
//! Every state change runs in one `BEGIN IMMEDIATE` transaction that also
//! appends its audit row, so an action and its audit record commit together
//! or not at all, and the audit chain never forks between processes. The
//! SQL lives in `bridge-state`'s repositories (`conversations`, `messages`,
//! `ratelimit::take`, `audit`); this module decides what to call and when.
//!
//! Here: [`Bridge`], the shared state of one process (a cheap `Clone` handle),
//! and the audit of refusals and counted events. By noun: [`error`] (why a
//! call was refused), [`outputs`] (what calls take and return), `access`
//! (token checks and quotas), `conversation` (creating one, status),
//! `participants` (inviting and listing them), `messages` (send, check and
//! ack), `notices` (telling a hook about new mail), `dispatcher` (the long
//! poll's doorbells).

use std::sync::Arc;
use std::time::Duration;

use crate::mcp::tally::{Counter, Tally};
use crate::mcp::throttle::{Quotas, Throttle};
use bridge_state::audit::{self, Entry, Outcome};
use bridge_state::auth::ServerSecret;
use bridge_state::clock::{Clock, Millis};
use bridge_state::policy::Policy;
use bridge_state::ratelimit::Limits;
use bridge_state::redact::Redactor;
use bridge_state::store::Db;
use bridge_state::wake::{Doorbells, Wake};

mod access;
mod conversation;
mod dispatcher;
pub mod error;
mod messages;
mod notices;
pub mod outputs;
mod participants;

pub use conversation::ALIVE_SECS;
pub use error::ToolError;
pub(crate) use error::internal;
pub use messages::{CHECK_BATCH, LONG_POLL_TARGET};
pub use notices::NOTIFY_BATCH;
pub use outputs::{
    Acked, ActionType, Caller, Created, Inbox, Message, MyStatus, NoticeView, Notified, Outgoing,
    ParticipantView, Participants, PartnerStatus, Sent, SessionGrant, SessionStatus,
};

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

    /// Audits, inside `tx`, an event an authenticated session can repeat at
    /// will (a refused proposal, a bad approval token, a dry run, a refused
    /// invitation): one row of its own while the session's itemized allowance
    /// lasts (see `tally.rs`), else one more in an aggregate written at the
    /// next flush. Writing each one would let a loop grow the audit log
    /// without bound, quota or not.
    pub(crate) fn audit_repeatable(
        &self,
        tx: &rusqlite::Connection,
        caller: (&str, &str),
        tool: &str,
        now: Millis,
        entry: (&'static str, Outcome, serde_json::Value),
    ) -> Result<(), rusqlite::Error> {
        let (cid, sid) = caller;
        let (action, outcome, detail) = entry;
        if self.0.tally.itemize(&format!("session {cid} {sid}"), now) {
            return audit::append(
                tx,
                &self.0.redactor,
                now,
                Entry {
                    conversation_id: Some(cid),
                    session_id: Some(sid),
                    action,
                    outcome,
                    detail,
                },
            )
            .map(drop);
        }
        self.0.tally.count(
            Counter {
                conversation_id: Some(cid.to_owned()),
                session_id: Some(sid.to_owned()),
                action,
                tool: tool.to_owned(),
                client: String::new(),
                refused: outcome == Outcome::Refused,
            },
            now,
        );
        Ok(())
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
            .write(move |tx| {
                let (c, s) = caller.unzip();
                audit::append(
                    tx,
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
            .write(move |tx| {
                let now = this.now();
                for (counter, count) in &counts {
                    audit::append(
                        tx,
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
                Ok(())
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "could not write aggregate audit rows; keeping the counts for the next flush");
            self.0.tally.restore(kept);
        }
    }
}
