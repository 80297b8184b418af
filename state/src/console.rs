//! What the operator console shows, read in one snapshot: every
//! conversation with its participants (liveness, unread mail) and its YOLO
//! enablement, the proposals waiting for the operator, the recent jobs, and
//! the latest messages of the selected conversation. Read-only: taking a
//! snapshot changes nothing, so `bridge console --watch` is safe to leave
//! open anywhere.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::clock::Millis;
use crate::conversations::operator::{self, ConversationSummary, MessageView};
use crate::conversations::{self, Participant, liveness};
use crate::yolo::{self, Enablement, Proposal, YoloError};

/// How many recent jobs and messages a snapshot holds.
pub const RECENT: u32 = 50;

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub conversations: Vec<ConversationRow>,
    /// Proposed or approved-not-run, oldest first.
    pub pending: Vec<Proposal>,
    /// When each pending proposal was made, by id.
    pub pending_since: HashMap<String, Millis>,
    /// Queued, running and finished jobs, newest first.
    pub jobs: Vec<Proposal>,
    /// The latest messages of the selected conversation, oldest first.
    pub messages: Vec<MessageView>,
    /// The live runners' Docker engines and whether they answer.
    pub engines: Vec<crate::engines::EngineStatus>,
    pub taken_at: Millis,
}

#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub summary: ConversationSummary,
    pub participants: Vec<ParticipantRow>,
    /// YOLO settings and expiry, while enabled.
    pub yolo: Option<Enablement>,
}

#[derive(Debug, Clone)]
pub struct ParticipantRow {
    pub participant: Participant,
    pub alive: bool,
    /// Messages addressed to this participant it has not read.
    pub unread: i64,
}

/// Reads everything the console shows, in one read transaction so the
/// panes agree with each other. `selected` is the conversation whose
/// messages to include.
pub fn snapshot(
    conn: &mut Connection,
    selected: Option<&str>,
    now: Millis,
) -> Result<Snapshot, YoloError> {
    let tx = conn.transaction()?;
    let mut enablements: HashMap<String, Enablement> = yolo::active_enablements(&tx, now)?
        .into_iter()
        .map(|e| (e.conversation_id.clone(), e))
        .collect();
    let mut rows = Vec::new();
    for summary in operator::list(&tx, now)? {
        let unread = unread_by_recipient(&tx, &summary.conversation_id)?;
        let participants = conversations::participants(&tx, &summary.conversation_id)?
            .into_iter()
            .map(|p| ParticipantRow {
                alive: liveness(p.last_heartbeat, now).1,
                unread: unread.get(&p.session_id).copied().unwrap_or(0),
                participant: p,
            })
            .collect();
        rows.push(ConversationRow {
            yolo: enablements.remove(&summary.conversation_id),
            summary,
            participants,
        });
    }
    let messages = match selected {
        Some(id) => operator::show(&tx, id, now, RECENT)?
            .map(|d| d.messages)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let snapshot = Snapshot {
        conversations: rows,
        pending: yolo::pending(&tx, None)?,
        pending_since: pending_since(&tx)?,
        jobs: yolo::recent_jobs(&tx, RECENT)?,
        messages,
        engines: crate::engines::statuses(&tx, now)?,
        taken_at: now,
    };
    tx.finish()?;
    Ok(snapshot)
}

fn unread_by_recipient(conn: &Connection, cid: &str) -> rusqlite::Result<HashMap<String, i64>> {
    conn.prepare_cached(
        "SELECT recipient, count(*) FROM inbox INDEXED BY inbox_unread
         WHERE conversation_id = ?1 AND read_at IS NULL GROUP BY recipient",
    )?
    .query_map([cid], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

fn pending_since(conn: &Connection) -> rusqlite::Result<HashMap<String, Millis>> {
    conn.prepare_cached(
        "SELECT id, created_at FROM proposals WHERE state IN ('proposed', 'approved')",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}
