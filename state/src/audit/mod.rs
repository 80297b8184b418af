//! The tamper-evident audit trail: an append-only table whose rows form a
//! SHA-256 hash chain.
//!
//! Each row stores the hash of the row before it and a hash over its own
//! canonical content, so editing, inserting or deleting any row breaks the
//! chain at that row and `bridge audit verify` names it. Everything is
//! redacted before it is hashed: the chain never commits to a secret.
//!
//! Known limit, stated in the README: someone who can write the database can
//! truncate the tail or rewrite the whole chain consistently. `verify` prints
//! the head hash so an operator can anchor it elsewhere.
//!
//! `bridge audit archive` moves a prefix of old rows to a JSON-lines file so
//! the database stays bounded. The chain then starts from an anchor (the id
//! and hash of the last archived row, in `meta`), and the `audit.archive` row
//! appended by the same transaction records that anchor, so `verify` refuses
//! an anchor that no archive row in the chain vouches for (`archive.rs`).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::Millis;
use crate::redact::Redactor;

mod archive;

use archive::ARCHIVE_ACTION;
pub use archive::{ARCHIVE_BATCH, Anchor, ArchiveError, Archived, anchor, archive};

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The action happened.
    Ok,
    /// The action was refused (bad token, rate limit, invalid input, policy).
    Refused,
    /// The action was attempted and failed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// What to record. Ids are optional because some refusals happen before a
/// conversation is known.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub conversation_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub action: &'a str,
    pub outcome: Outcome,
    pub detail: serde_json::Value,
}

/// One stored row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub ts: Millis,
    pub conversation_id: Option<String>,
    pub session_id: Option<String>,
    pub action: String,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hashed fields of one row.
struct Content<'a> {
    id: i64,
    ts: Millis,
    conversation_id: Option<&'a str>,
    session_id: Option<&'a str>,
    action: &'a str,
    outcome: &'a str,
    detail: &'a str,
}

fn row_hash(prev_hash: &str, c: &Content<'_>) -> String {
    // A JSON array is an unambiguous encoding: no field can bleed into the next.
    let canonical = serde_json::json!([
        c.id,
        c.ts,
        c.conversation_id,
        c.session_id,
        c.action,
        c.outcome,
        c.detail
    ]);
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Appends one row. Must run inside the caller's write transaction (BEGIN
/// IMMEDIATE), which is what keeps two processes from forking the chain.
/// Every string is redacted first; there is no way to append unredacted.
pub fn append(
    conn: &Connection,
    redactor: &Redactor,
    now: Millis,
    entry: Entry<'_>,
) -> rusqlite::Result<i64> {
    let mut detail = entry.detail;
    redactor.redact_json(&mut detail);
    let detail = detail.to_string();
    let conversation_id = entry
        .conversation_id
        .map(|s| redactor.redact(s).into_owned());
    let session_id = entry.session_id.map(|s| redactor.redact(s).into_owned());
    let action = redactor.redact(entry.action).into_owned();

    // Cached statements: this runs in every write transaction.
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (id, prev_hash) = match last {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let outcome = entry.outcome.as_str();
    let hash = row_hash(
        &prev_hash,
        &Content {
            id,
            ts: now,
            conversation_id: conversation_id.as_deref(),
            session_id: session_id.as_deref(),
            action: &action,
            outcome,
            detail: &detail,
        },
    );
    conn.prepare_cached(
        "INSERT INTO audit (id, ts, conversation_id, session_id, action, outcome, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![id, now, conversation_id, session_id, action, outcome, detail, prev_hash, hash])?;
    Ok(id)
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub rows: u64,
    pub head_hash: String,
    pub first_break: Option<Break>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Break {
    /// The id of the first row that does not fit the chain.
    pub id: i64,
    pub reason: String,
}

/// Whether `row` is an archive record vouching for `anchor`.
fn vouches_for(row: &Row, anchor: &Anchor) -> bool {
    row.action == ARCHIVE_ACTION
        && serde_json::from_str::<serde_json::Value>(&row.detail).is_ok_and(|d| {
            d["first_id"] == anchor.first_id && d["prev_hash"] == anchor.prev_hash.as_str()
        })
}

/// Why `row` cannot be the chain's row `expected_id` after a row hashed
/// `expected_prev`, or `None` when it is.
pub(super) fn link_break(row: &Row, expected_id: i64, expected_prev: &str) -> Option<String> {
    if row.id != expected_id {
        return Some(format!(
            "row id {} where {} was expected: rows were deleted or inserted",
            row.id, expected_id
        ));
    }
    if row.prev_hash != expected_prev {
        return Some(
            "prev_hash does not match the previous row's hash: a row before it was changed, deleted or inserted".into(),
        );
    }
    let recomputed = row_hash(
        &row.prev_hash,
        &Content {
            id: row.id,
            ts: row.ts,
            conversation_id: row.conversation_id.as_deref(),
            session_id: row.session_id.as_deref(),
            action: &row.action,
            outcome: &row.outcome,
            detail: &row.detail,
        },
    );
    (recomputed != row.hash).then(|| "content does not match its hash: this row was edited".into())
}

pub fn verify(conn: &Connection) -> rusqlite::Result<Verification> {
    let start = anchor(conn)?;
    let mut stmt = conn.prepare(
        "SELECT id, ts, conversation_id, session_id, action, outcome, detail, prev_hash, hash
         FROM audit ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut expected_prev = start.prev_hash.clone();
    let mut expected_id = start.first_id;
    let mut vouched = start == Anchor::genesis();
    let mut count = 0u64;
    while let Some(r) = rows.next()? {
        let row = read_row(r)?;
        count += 1;
        let broken = |reason: String| Verification {
            rows: count,
            head_hash: expected_prev.clone(),
            first_break: Some(Break { id: row.id, reason }),
        };
        if let Some(why) = link_break(&row, expected_id, &expected_prev) {
            return Ok(broken(why));
        }
        vouched = vouched || vouches_for(&row, &start);
        expected_prev = row.hash;
        expected_id += 1;
    }
    if !vouched {
        return Ok(Verification {
            rows: count,
            head_hash: expected_prev,
            first_break: Some(Break {
                id: start.first_id,
                reason: format!(
                    "the chain starts at row {} but no audit.archive row records archiving up to it: the anchor in `meta` was changed",
                    start.first_id
                ),
            }),
        });
    }
    Ok(Verification {
        rows: count,
        head_hash: expected_prev,
        first_break: None,
    })
}

pub fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        ts: r.get(1)?,
        conversation_id: r.get(2)?,
        session_id: r.get(3)?,
        action: r.get(4)?,
        outcome: r.get(5)?,
        detail: r.get(6)?,
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
    })
}

/// The newest `limit` rows, optionally for one conversation, oldest first.
pub fn tail(
    conn: &Connection,
    conversation: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<Row>> {
    // Two statements, not one `(?1 IS NULL OR conversation_id = ?1)`: with
    // that, SQLite cannot use `audit_conversation` and walks the whole
    // chain from its newest row to find an old conversation's rows.
    match conversation {
        Some(c) => conn
            .prepare(TAIL_ONE)?
            .query_map(params![c, limit], read_row)?
            .collect(),
        None => conn
            .prepare(TAIL_ALL)?
            .query_map(params![limit], read_row)?
            .collect(),
    }
}

const TAIL_ONE: &str = "SELECT * FROM (
       SELECT id, ts, conversation_id, session_id, action, outcome, detail, prev_hash, hash
       FROM audit WHERE conversation_id = ?1 ORDER BY id DESC LIMIT ?2
     ) ORDER BY id";

const TAIL_ALL: &str = "SELECT * FROM (
       SELECT id, ts, conversation_id, session_id, action, outcome, detail, prev_hash, hash
       FROM audit ORDER BY id DESC LIMIT ?1
     ) ORDER BY id";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrate;

    #[test]
    fn a_conversations_tail_is_its_newest_rows_found_through_its_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let red = Redactor::builtin();
        let (a, b) = ("conv_aaaaaaaaaaaaaaaa", "conv_bbbbbbbbbbbbbbbb");
        for i in 0..10 {
            let entry = Entry {
                conversation_id: Some(if i % 3 == 0 { a } else { b }),
                session_id: Some("a"),
                action: "message.send",
                outcome: Outcome::Ok,
                detail: serde_json::json!({ "i": i }),
            };
            append(&conn, &red, 1000 + i, entry).unwrap();
        }
        let ids = |rows: Vec<Row>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
        // Rows 1, 4, 7, 10 are a's; the newest two, oldest first.
        assert_eq!(ids(tail(&conn, Some(a), 2).unwrap()), [7, 10]);
        assert_eq!(ids(tail(&conn, Some(b), 100).unwrap()), [2, 3, 5, 6, 8, 9]);
        assert_eq!(ids(tail(&conn, None, 3).unwrap()), [8, 9, 10]);
        assert!(
            tail(&conn, Some("conv_cccccccccccccccc"), 5)
                .unwrap()
                .is_empty()
        );
        // An old conversation's rows are found through the index, not by
        // walking the chain back from its newest row.
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {TAIL_ONE}"))
            .unwrap()
            .query_map(params![a, 2], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains("USING INDEX audit_conversation")),
            "{plan:?}"
        );
    }

    fn db_with_rows(n: usize) -> (Connection, Redactor) {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let red = Redactor::builtin();
        for i in 0..n {
            append(
                &conn,
                &red,
                1000 + i as i64,
                Entry {
                    conversation_id: Some("conv_0123456789abcdef"),
                    session_id: Some("a"),
                    action: "message.send",
                    outcome: Outcome::Ok,
                    detail: serde_json::json!({ "i": i }),
                },
            )
            .unwrap();
        }
        (conn, red)
    }

    fn archive_before(conn: &mut Connection, red: &Redactor, before: Millis) -> (Archived, String) {
        let mut out = Vec::new();
        // Batches of 2 exercise the batch boundaries.
        let a = archive(conn, red, 5000, before, 2, &mut out, &|| Ok(()), "t.jsonl").unwrap();
        (a, String::from_utf8(out).unwrap())
    }

    #[test]
    fn archived_prefix_leaves_a_verifiable_chain() {
        let (mut conn, red) = db_with_rows(6);
        // Rows have ts 1000..=1005: archive 1..=3.
        let (a, file) = archive_before(&mut conn, &red, 1003);
        assert_eq!(a.rows, 3);
        assert_eq!(a.anchor.first_id, 4);
        let lines: Vec<serde_json::Value> = file
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ids: Vec<i64> = lines.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(lines[0]["prev_hash"], GENESIS);
        assert_eq!(lines[2]["hash"], a.anchor.prev_hash.as_str());
        let v = verify(&conn).unwrap();
        assert_eq!(v.first_break, None, "{v:?}");
        // 4, 5, 6 and one archive record per batch.
        assert_eq!(v.rows, 5);

        // Never the head row, even when everything is old.
        let (b, _) = archive_before(&mut conn, &red, i64::MAX);
        assert_eq!(b.anchor.first_id, 8);
        assert_eq!(verify(&conn).unwrap().first_break, None);
        let left: i64 = conn
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 3, "the previous head and the two new archive records");
    }

    #[test]
    fn a_chain_that_does_not_verify_is_not_archived_so_its_break_stays_visible() {
        // Everything archived at once, in batches of 2: the refusal.
        let archive_all = |conn: &mut Connection, red: &Redactor, out: &mut Vec<u8>| {
            archive(conn, red, 5000, i64::MAX, 2, out, &|| Ok(()), "t.jsonl").unwrap_err()
        };
        let (mut conn, red) = db_with_rows(6);
        // An old row edited (or deleted) by someone with the file: moved to
        // an archive, the break would be gone from `verify`.
        conn.execute("UPDATE audit SET detail = '{\"i\":99}' WHERE id = 2", [])
            .unwrap();
        let mut out = Vec::new();
        let e = archive_all(&mut conn, &red, &mut out);
        assert!(matches!(&e, ArchiveError::Broken(b) if b.id == 2), "{e}");
        assert!(e.to_string().contains("nothing more was archived"), "{e}");
        assert!(out.is_empty());
        let left: i64 = conn
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 6);
        assert_eq!(verify(&conn).unwrap().first_break.map(|b| b.id), Some(2));

        // A deleted middle row, likewise.
        let (mut conn, red) = db_with_rows(6);
        conn.execute("DELETE FROM audit WHERE id = 3", []).unwrap();
        let e = archive_all(&mut conn, &red, &mut out);
        assert!(matches!(&e, ArchiveError::Broken(b) if b.id == 4), "{e}");
    }

    #[test]
    fn deleting_more_rows_and_moving_the_anchor_is_detected() {
        let (mut conn, red) = db_with_rows(6);
        archive_before(&mut conn, &red, 1002);
        // Quietly drop the next row and point the anchor past it.
        let (h4,): (String,) = conn
            .query_row("SELECT hash FROM audit WHERE id = 3", [], |r| {
                Ok((r.get(0)?,))
            })
            .unwrap();
        conn.execute("DELETE FROM audit WHERE id = 3", []).unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'audit_anchor'",
            [format!("4 {h4}")],
        )
        .unwrap();
        let v = verify(&conn).unwrap();
        let b = v
            .first_break
            .expect("a moved anchor must break verification");
        assert!(b.reason.contains("anchor"), "{b:?}");

        // Deleting the first kept row without touching the anchor is caught too.
        let (mut conn, red) = db_with_rows(6);
        archive_before(&mut conn, &red, 1002);
        conn.execute("DELETE FROM audit WHERE id = 3", []).unwrap();
        assert_eq!(verify(&conn).unwrap().first_break.map(|b| b.id), Some(4));
    }

    #[test]
    fn intact_chain_verifies() {
        let (conn, _) = db_with_rows(5);
        let v = verify(&conn).unwrap();
        assert_eq!(v.rows, 5);
        assert_eq!(v.first_break, None);
        assert_ne!(v.head_hash, GENESIS);
    }

    #[test]
    fn tampering_is_found_at_the_first_broken_row() {
        type Tamper = fn(&Connection);
        let cases: &[(&str, Tamper, i64)] = &[
            (
                "edit detail",
                |c| {
                    c.execute("UPDATE audit SET detail = '{\"i\":99}' WHERE id = 3", [])
                        .unwrap();
                },
                3,
            ),
            (
                "edit outcome",
                |c| {
                    c.execute("UPDATE audit SET outcome = 'refused' WHERE id = 2", [])
                        .unwrap();
                },
                2,
            ),
            (
                "delete middle",
                |c| {
                    c.execute("DELETE FROM audit WHERE id = 3", []).unwrap();
                },
                4,
            ),
            (
                "delete first",
                |c| {
                    c.execute("DELETE FROM audit WHERE id = 1", []).unwrap();
                },
                2,
            ),
            (
                "insert forged row",
                |c| {
                    c.execute(
                        "INSERT INTO audit (id, ts, action, outcome, detail, prev_hash, hash)
                     VALUES (6, 0, 'x', 'ok', '{}', 'forged', 'forged')",
                        [],
                    )
                    .unwrap();
                },
                6,
            ),
            (
                "edit and rehash one row",
                |c| {
                    // Recomputing this row's own hash still breaks the next link.
                    let prev: String = c
                        .query_row("SELECT prev_hash FROM audit WHERE id = 2", [], |r| r.get(0))
                        .unwrap();
                    let h = row_hash(
                        &prev,
                        &Content {
                            id: 2,
                            ts: 1001,
                            conversation_id: Some("conv_0123456789abcdef"),
                            session_id: Some("a"),
                            action: "message.send",
                            outcome: "ok",
                            detail: "{\"i\":7}",
                        },
                    );
                    c.execute(
                        "UPDATE audit SET detail = '{\"i\":7}', hash = ?1 WHERE id = 2",
                        [h],
                    )
                    .unwrap();
                },
                3,
            ),
        ];
        for (name, tamper, want_id) in cases {
            let (conn, _) = db_with_rows(5);
            tamper(&conn);
            let v = verify(&conn).unwrap();
            let b = v
                .first_break
                .unwrap_or_else(|| panic!("{name}: not detected"));
            assert_eq!(b.id, *want_id, "{name}: {}", b.reason);
        }
    }

    #[test]
    fn details_are_redacted_before_hashing() {
        let (conn, red) = db_with_rows(0);
        append(
            &conn,
            &red,
            1,
            Entry {
                conversation_id: None,
                session_id: None,
                action: "auth.failed",
                outcome: Outcome::Refused,
                detail: serde_json::json!({ "note": "key AKIAABCDEFGHIJKLMNOP" }),
            },
        )
        .unwrap();
        let detail: String = conn
            .query_row("SELECT detail FROM audit", [], |r| r.get(0))
            .unwrap();
        assert!(!detail.contains("AKIAABCDEFGHIJKLMNOP"), "{detail}");
        assert!(verify(&conn).unwrap().first_break.is_none());
    }
}
