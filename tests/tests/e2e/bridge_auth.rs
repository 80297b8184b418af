//! Auth misuse through the real binary gets one uninformative, audited
//! answer; tokens are never stored, and rotation replaces them.

use std::os::unix::fs::PermissionsExt;

use bridge_tests::{
    Conv, Server, audit_rows_for, contains, db_bytes, expire, messages, operator, operator_json,
    random_hex,
};
use serde_json::{Value, json};

const UNAUTHORIZED: &str = "invalid or expired session token";

/// Every authenticated tool with arguments that are otherwise valid.
fn authenticated_tools() -> [(&'static str, Value); 4] {
    [
        ("send_to_partner", json!({"message": "let me in"})),
        ("check_messages", json!({})),
        ("update_my_status", json!({"status": "working"})),
        ("check_partner_status", json!({})),
    ]
}

fn with_auth(conversation_id: &str, session_id: &str, token: &str, extra: &Value) -> Value {
    let mut v =
        json!({"conversation_id": conversation_id, "session_id": session_id, "token": token});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra.clone()) {
        m.extend(e);
    }
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn every_auth_misuse_gets_the_same_answer_on_every_tool_and_is_audited() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    // 24 wrong tokens in a row: above the default backoff allowance, which
    // `bridge_quotas` tests on its own.
    let s = Server::start(&db, &["--auth-failures", "100/1m"]).await?;
    let c = Conv::create(&s).await?;
    let other = Conv::create(&s).await?;
    let expired = Conv::create(&s).await?;
    expire(&db, &expired.id)?;
    let missing_conv = format!("conv_{}", random_hex(8));

    let cases: Vec<(&str, String, &str, String)> = vec![
        (
            "session a with b's token",
            c.id.clone(),
            "a",
            c.token_b.clone(),
        ),
        (
            "session b with a's token",
            c.id.clone(),
            "b",
            c.token_a.clone(),
        ),
        (
            "a token from another conversation",
            c.id.clone(),
            "a",
            other.token_a.clone(),
        ),
        (
            "own token of an expired conversation",
            expired.id.clone(),
            "a",
            expired.token_a.clone(),
        ),
        (
            "a well-formed random token",
            c.id.clone(),
            "a",
            random_hex(32),
        ),
        (
            "a conversation that does not exist",
            missing_conv.clone(),
            "a",
            c.token_a.clone(),
        ),
    ];

    for (name, conv, session, token) in &cases {
        for (tool, extra) in authenticated_tools() {
            let text = s
                .refused(tool, with_auth(conv, session, token, &extra))
                .await
                .map_err(|e| anyhow::anyhow!("{name} / {tool}: {e}"))?;
            assert_eq!(text, UNAUTHORIZED, "{name} / {tool}");
        }
    }

    // None of it had an effect: no messages, no status.
    for conv in [&c, &other] {
        for session in ["a", "b"] {
            let inbox = s
                .ok("check_messages", conv.args(session, json!({"peek": true})))
                .await?;
            assert_eq!(inbox["messages"], json!([]), "{} {session}", conv.id);
            let partner = s
                .ok("check_partner_status", conv.args(session, json!({})))
                .await?;
            assert_eq!(partner["status"], "unknown", "{} {session}", conv.id);
        }
    }
    s.stop().await?;

    // One refused `auth.failed` row per attempt, in order, naming the tool.
    let failed = audit_rows_for(&db, "auth.failed")?;
    assert_eq!(failed.len(), cases.len() * 4);
    let mut rows = failed.iter();
    for (name, conv, session, _) in &cases {
        for (tool, _) in authenticated_tools() {
            let row = rows.next().unwrap();
            assert_eq!(row.outcome, "refused", "{name} / {tool}");
            assert_eq!(row.conversation_id.as_deref(), Some(conv.as_str()));
            assert_eq!(row.session_id.as_deref(), Some(*session));
            let detail: Value = serde_json::from_str(&row.detail)?;
            assert_eq!(detail["tool"], tool, "{name}: {}", row.detail);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_stored_only_as_keyed_hashes_with_a_private_secret_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    // Use both tokens so every code path that sees them has run.
    s.ok("send_to_partner", c.args("a", json!({"message": "hi"})))
        .await?;
    s.ok("check_messages", c.args("b", json!({}))).await?;
    s.ok(
        "update_my_status",
        c.args("b", json!({"status": "working"})),
    )
    .await?;
    s.stop().await?;

    let bytes = db_bytes(&db);
    assert!(
        contains(&bytes, &c.id),
        "sanity: the db holds the conversation"
    );
    for token in [&c.token_a, &c.token_b] {
        assert!(!contains(&bytes, token), "token stored as hex");
        assert!(
            !contains(&bytes, &token.to_uppercase()),
            "token stored as upper-case hex"
        );
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&token[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
            "token stored as raw bytes"
        );
    }

    let mut secret = db.as_os_str().to_owned();
    secret.push(".secret");
    let meta = std::fs::metadata(&secret)?;
    assert!(meta.is_file() && meta.len() > 0);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_passed_in_the_wrong_field_are_not_stored() -> anyhow::Result<()> {
    // An agent that mixes up its arguments must not leak a token into the
    // database through the audit row of the refusal.
    type Mistake = fn(&Conv) -> Value;
    let mistakes: [(&str, Mistake); 4] = [
        (
            "token as conversation_id",
            |c| json!({"conversation_id": c.token_a, "session_id": "a", "token": c.token_b, "message": "hi"}),
        ),
        (
            "token as session_id",
            |c| json!({"conversation_id": c.id, "session_id": c.token_a, "token": c.token_b, "message": "hi"}),
        ),
        (
            "token under an unknown field name",
            |c| json!({"conversation_id": c.id, "session_id": "a", "token": c.token_a, "message": "hi", "partner_token": c.token_b}),
        ),
        (
            "token as a field of the wrong type",
            |c| json!({"conversation_id": c.id, "session_id": "a", "token": c.token_a, "message": "hi", "files_involved": c.token_b}),
        ),
    ];
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let mut convs = vec![];
    for (name, mistake) in &mistakes {
        let c = Conv::create(&s).await?;
        s.refused("send_to_partner", mistake(&c))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        convs.push(c);
    }
    s.stop().await?;
    assert_eq!(
        audit_rows_for(&db, "request.invalid")?.len(),
        mistakes.len()
    );
    let bytes = db_bytes(&db);
    let leaked: Vec<&str> = mistakes
        .iter()
        .zip(&convs)
        .filter(|(_, c)| contains(&bytes, &c.token_a) || contains(&bytes, &c.token_b))
        .map(|((name, _), _)| *name)
        .collect();
    assert!(
        leaked.is_empty(),
        "tokens stored in the database: {leaked:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_issues_new_tokens_and_invalidates_the_old() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let old = Conv::create(&s).await?;

    // Without --rotate nothing is shown and the operator is told what to do.
    let out = operator(&db, &["tokens", &old.id])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--rotate"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains(&old.token_a) && !stdout.contains(&old.token_b),
        "{stdout}"
    );

    // The server keeps running while the operator rotates.
    let rotated = operator_json(&db, &["tokens", &old.id, "--rotate"])?;
    assert_eq!(rotated["conversation_id"], old.id.as_str());
    let new = Conv {
        id: old.id.clone(),
        token_a: rotated["tokens"]["a"].as_str().unwrap().to_owned(),
        token_b: rotated["tokens"]["b"].as_str().unwrap().to_owned(),
    };
    for t in [&new.token_a, &new.token_b] {
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(new.token_a, old.token_a);
    assert_ne!(new.token_b, old.token_b);
    assert_ne!(new.token_a, new.token_b);

    for session in ["a", "b"] {
        for (tool, extra) in authenticated_tools() {
            let text = s.refused(tool, old.args(session, extra)).await?;
            assert_eq!(text, UNAUTHORIZED, "old token of {session} / {tool}");
        }
    }
    let sent = s
        .ok(
            "send_to_partner",
            new.args("a", json!({"message": "after rotation"})),
        )
        .await?;
    let inbox = s.ok("check_messages", new.args("b", json!({}))).await?;
    let got = messages(&inbox);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], sent["message_id"]);
    assert_eq!(got[0]["message"], "after rotation");
    s.ok(
        "update_my_status",
        new.args("b", json!({"status": "waiting"})),
    )
    .await?;
    s.stop().await?;

    let bytes = db_bytes(&db);
    assert!(!contains(&bytes, &new.token_a) && !contains(&bytes, &new.token_b));
    assert_eq!(audit_rows_for(&db, "operator.tokens.rotate")?.len(), 1);
    assert_eq!(audit_rows_for(&db, "auth.failed")?.len(), 8);

    // Rotating a conversation that does not exist says where to look.
    let out = operator(&db, &["tokens", "conv_0000000000000000", "--rotate"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bridge list"));
    Ok(())
}
