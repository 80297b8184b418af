//! The operator CLI against a database a real server wrote: listings,
//! audit log and tamper detection, cleanup, the demo, and helpful failures.

use std::path::Path;
use std::process::{Output, Stdio};

use bridge_tests::{Conv, Server, audit_rows, bin, expire, operator, operator_json, sql, yolo};
use serde_json::{Value, json};

/// True when `n` appears in `text` as a whole number.
fn mentions_number(text: &str, n: i64) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|w| w == n.to_string())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A conversation with traffic both ways: a→b two read and one unread
/// message, b→a one unread; b has set a status.
async fn busy_conversation(db: &Path) -> anyhow::Result<Conv> {
    let s = Server::start(db, &[]).await?;
    let c = Conv::create(&s).await?;
    for text in ["first", "second"] {
        s.ok("send_to_partner", c.args("a", json!({"message": text})))
            .await?;
    }
    s.ok("check_messages", c.args("b", json!({}))).await?;
    s.ok("send_to_partner", c.args("a", json!({"message": "third"})))
        .await?;
    s.ok("send_to_partner", c.args("b", json!({"message": "reply"})))
        .await?;
    s.ok(
        "update_my_status",
        c.args("b", json!({"status": "working"})),
    )
    .await?;
    s.stop().await?;
    Ok(c)
}

/// Runs `bridge audit verify`, returning (exit code, text output, JSON output).
fn verify(db: &Path) -> anyhow::Result<(Option<i32>, String, Value)> {
    let text = operator(db, &["audit", "verify"])?;
    let json = operator(db, &["--json", "audit", "verify"])?;
    assert_eq!(text.status.code(), json.status.code());
    Ok((
        text.status.code(),
        stdout(&text),
        serde_json::from_slice(&json.stdout)?,
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn list_and_show_report_conversations_without_tokens() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let c = busy_conversation(&db).await?;

    let list = operator_json(&db, &["list"])?;
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["conversation_id"], c.id.as_str());
    assert_eq!(
        rows[0]["roles"],
        json!(["backend_developer", "frontend_developer"])
    );
    assert_eq!(rows[0]["messages"], 4);
    assert_eq!(rows[0]["unread"], 2);
    assert_eq!(rows[0]["expired"], false);
    let table = operator(&db, &["list"])?;
    assert!(table.status.success());
    assert!(stdout(&table).contains(&c.id), "{}", stdout(&table));

    let shown = operator(&db, &["--json", "show", &c.id])?;
    assert!(shown.status.success(), "{}", stderr(&shown));
    let out = stdout(&shown);
    assert!(!out.contains(&c.token_a) && !out.contains(&c.token_b));
    let d: Value = serde_json::from_str(&out)?;
    assert_eq!(d["summary"]["conversation_id"], c.id.as_str());
    let sessions = d["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    for (s, (id, role, token)) in sessions.iter().zip([
        ("a", "backend_developer", &c.token_a),
        ("b", "frontend_developer", &c.token_b),
    ]) {
        assert_eq!(s["session_id"], id);
        assert_eq!(s["role"], role);
        assert!(s.get("token").is_none(), "{s}");
        let preview = s["token_hash_preview"].as_str().unwrap();
        assert!(
            !preview.is_empty() && preview.chars().count() < 16,
            "{preview}"
        );
        assert!(!token.starts_with(preview.trim_end_matches('…')));
    }
    assert_eq!(sessions[1]["status"], "working");
    let msgs = d["messages"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str, bool)> = msgs
        .iter()
        .map(|m| {
            (
                m["from"].as_str().unwrap(),
                m["to"][0].as_str().unwrap(),
                m["message"].as_str().unwrap(),
                m["unread_by"].as_array().is_some_and(Vec::is_empty),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a", "b", "first", true),
            ("a", "b", "second", true),
            ("a", "b", "third", false),
            ("b", "a", "reply", false),
        ]
    );
    let limited = operator_json(&db, &["show", &c.id, "--limit", "1"])?;
    assert_eq!(limited["messages"].as_array().unwrap().len(), 1);
    assert_eq!(limited["messages"][0]["message"], "reply");

    let missing = operator(&db, &["show", "conv_0000000000000000"])?;
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("bridge list"),
        "{}",
        stderr(&missing)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_lists_everything_or_one_conversation_newest_last() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let c = busy_conversation(&db).await?;
    let other = busy_conversation(&db).await?;

    let all = operator_json(&db, &["audit", "--limit", "1000"])?;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), audit_rows(&db)?.len());
    let actions: Vec<&str> = all.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for action in [
        "conversation.create",
        "message.send",
        "message.check",
        "status.update",
    ] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }

    let ours: Vec<i64> = audit_rows(&db)?
        .into_iter()
        .filter(|r| r.conversation_id.as_deref() == Some(c.id.as_str()))
        .map(|r| r.id)
        .collect();
    assert!(ours.len() > 5);
    let tail = operator_json(&db, &["audit", &c.id, "--limit", "5"])?;
    let tail = tail.as_array().unwrap();
    let tail_ids: Vec<i64> = tail.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(tail_ids, ours[ours.len() - 5..]);
    assert!(tail.iter().all(|r| r["conversation_id"] == c.id.as_str()));
    assert!(
        !tail
            .iter()
            .any(|r| r["conversation_id"] == other.id.as_str())
    );

    let bad = operator(&db, &["audit", "not-a-conversation"])?;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("verify"), "{}", stderr(&bad));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_names_an_edited_row() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    busy_conversation(&db).await?;
    let (code, text, json) = verify(&db)?;
    assert_eq!(code, Some(0), "{text}");
    assert!(json["first_break"].is_null(), "{json}");
    let rows = audit_rows(&db)?.len() as i64;
    assert_eq!(json["rows"], rows);

    // Quietly turn a message.send into something else.
    let edited = audit_rows(&db)?
        .into_iter()
        .find(|r| r.action == "message.send")
        .unwrap();
    assert!(edited.id < rows, "edit a row in the middle of the chain");
    sql(&db)?.execute(
        "UPDATE audit SET detail = '{\"message_ids\":[]}' WHERE id = ?1",
        [edited.id],
    )?;
    let (code, text, json) = verify(&db)?;
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(json["first_break"]["id"], edited.id, "{json}");
    assert!(mentions_number(&text, edited.id), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_detects_a_deleted_row() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    busy_conversation(&db).await?;
    assert_eq!(verify(&db)?.0, Some(0));
    let deleted = audit_rows(&db)?
        .into_iter()
        .find(|r| r.action == "message.check")
        .unwrap();
    sql(&db)?.execute("DELETE FROM audit WHERE id = ?1", [deleted.id])?;
    let (code, text, json) = verify(&db)?;
    assert_eq!(code, Some(1), "{text}");
    // The break is where the gap is: the row after the deleted one, and the
    // message names the missing id.
    assert_eq!(json["first_break"]["id"], deleted.id + 1, "{json}");
    assert!(mentions_number(&text, deleted.id), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_removes_expired_conversations_and_keeps_the_audit_chain() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let old = busy_conversation(&db).await?;
    let live = busy_conversation(&db).await?;
    expire(&db, &old.id)?;
    let audited_before = audit_rows(&db)?
        .iter()
        .filter(|r| r.conversation_id.as_deref() == Some(old.id.as_str()))
        .count();

    let listed = operator_json(&db, &["list"])?;
    let expired: Vec<(&str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["conversation_id"].as_str().unwrap(),
                r["expired"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        expired,
        [(old.id.as_str(), true), (live.id.as_str(), false)]
    );

    let cleaned = operator_json(&db, &["cleanup"])?;
    assert_eq!(cleaned["conversations"], 1, "{cleaned}");
    assert_eq!(cleaned["messages"], 4, "{cleaned}");

    let listed = operator_json(&db, &["list"])?;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [live.id.as_str()]);
    assert!(!operator(&db, &["show", &old.id])?.status.success());
    let conn = sql(&db)?;
    for table in ["messages", "sessions", "quota_events"] {
        let n: i64 = conn.query_row(
            &format!("SELECT count(*) FROM {table} WHERE conversation_id = ?1"),
            [&old.id],
            |r| r.get(0),
        )?;
        assert_eq!(n, 0, "{table} rows of the expired conversation remain");
    }
    let live_msgs: i64 = conn.query_row(
        "SELECT count(*) FROM messages WHERE conversation_id = ?1",
        [&live.id],
        |r| r.get(0),
    )?;
    assert_eq!(live_msgs, 4);
    drop(conn);

    // The audit log keeps the history and still verifies.
    let audited_after = audit_rows(&db)?
        .iter()
        .filter(|r| r.conversation_id.as_deref() == Some(old.id.as_str()))
        .count();
    assert_eq!(audited_after, audited_before);
    assert!(
        audit_rows(&db)?
            .iter()
            .any(|r| r.action == "operator.cleanup")
    );
    let (code, text, _) = verify(&db)?;
    assert_eq!(code, Some(0), "{text}");

    // Nothing left to clean.
    assert_eq!(operator_json(&db, &["cleanup"])?["conversations"], 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_archive_moves_old_rows_out_and_the_chain_still_verifies() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let c = busy_conversation(&db).await?;
    let before = audit_rows(&db)?;
    let file = dir.path().join("audit-1.jsonl");
    let file_arg = file.to_str().unwrap();

    let missing = operator(&db, &["audit", "archive", "--to", file_arg])?;
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("--older-than-days"),
        "{}",
        stderr(&missing)
    );

    // Nothing is a day old yet: nothing moves.
    let none = operator_json(
        &db,
        &[
            "audit",
            "archive",
            "--older-than-days",
            "1",
            "--to",
            file_arg,
        ],
    )?;
    assert_eq!(none["rows"], 0, "{none}");
    std::fs::remove_file(&file)?;

    let archive_all = [
        "audit",
        "archive",
        "--older-than-days",
        "0",
        "--to",
        file_arg,
    ];
    let archived = operator_json(&db, &archive_all)?;
    // Everything but the head row.
    assert_eq!(archived["rows"], before.len() - 1, "{archived}");
    let lines: Vec<Value> = std::fs::read_to_string(&file)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    let want: Vec<i64> = before[..before.len() - 1].iter().map(|r| r.id).collect();
    assert_eq!(ids, want);
    assert_eq!(
        std::fs::metadata(&file)?.permissions().mode() & 0o777,
        0o600
    );
    let after = audit_rows(&db)?;
    assert_eq!(
        after.len(),
        2,
        "the old head and the archive record: {after:?}"
    );
    assert_eq!(after[1].action, "audit.archive");

    // An existing file is never overwritten.
    let again = operator(&db, &archive_all)?;
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("must not exist"),
        "{}",
        stderr(&again)
    );

    // The chain continues from the anchor, across new traffic.
    let s = Server::start(&db, &[]).await?;
    s.ok(
        "send_to_partner",
        c.args("a", json!({"message": "after the archive"})),
    )
    .await?;
    s.stop().await?;
    let (code, text, _) = verify(&db)?;
    assert_eq!(code, Some(0), "{text}");

    // Deleting the first kept row is still caught.
    let first = audit_rows(&db)?[0].id;
    sql(&db)?.execute("DELETE FROM audit WHERE id = ?1", [first])?;
    let (code, text, _) = verify(&db)?;
    assert_eq!(code, Some(1), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_an_exchange_with_redaction() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = std::process::Command::new(bin("bridge"))
        .arg("demo")
        .env("BRIDGE_DB", dir.path().join("untouched.db"))
        .env_remove("YOLO_MODE")
        .stdin(Stdio::null())
        .output()?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("AWS_KEY_REDACTED"),
        "{}",
        stdout(&out)
    );
    // The demo uses a temporary database, never the configured one.
    assert!(!dir.path().join("untouched.db").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn yolo_approve_reject_and_disable_honour_json() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start_with_env(&db, &[], &[("YOLO_MODE", "1")]).await?;
    let c = Conv::create(&s).await?;
    yolo::enable(
        &db,
        &c.id,
        &["--mode", "safe", "--image", yolo::test_image()],
    )?;
    let mut proposals = vec![];
    for command in ["echo one", "echo two"] {
        let p = s
            .ok("propose_command", c.args("a", json!({"command": command})))
            .await?;
        proposals.push(p["proposal_id"].as_str().unwrap_or_default().to_owned());
    }

    // Approve: the review stays on the terminal; what is printed after the
    // `y` is one JSON object with the token.
    let mut p = yolo::operator_pty(&db, &["--json", "yolo", "approve", &proposals[0]])?;
    loop {
        let (_, prompt) = p.exp_regex(r"(Enter for more, q to decline --|\[y/N\] )")?;
        if prompt.ends_with("[y/N] ") {
            break;
        }
        p.send_line("")?;
    }
    p.send_line("y")?;
    let rest = p.exp_eof()?;
    let start = rest.find('{').expect("a JSON object after the answer");
    let approved: Value = serde_json::from_str(rest[start..].trim())?;
    assert_eq!(approved["proposal_id"], proposals[0].as_str(), "{rest}");
    assert!(
        approved["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("apv_")),
        "{rest}"
    );
    assert!(approved["expires_at"].is_string(), "{rest}");
    assert!(!rest.contains("Approval token:"), "{rest}");

    let out = yolo::operator_yolo(&db, &["--json", "yolo", "reject", &proposals[1]])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let rejected: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        rejected,
        json!({"proposal_id": proposals[1], "state": "rejected"})
    );

    let out = yolo::operator_yolo(&db, &["--json", "yolo", "disable", &c.id])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let disabled: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(disabled, json!({"conversation_id": c.id, "disabled": true}));
    s.stop().await
}
