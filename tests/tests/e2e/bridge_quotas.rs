//! Quotas through the real binary: failed authentications back off (a
//! correct token never does), conversation creation is limited per client,
//! globally and by a ceiling, and empty reads and excess refusals reach the
//! audit log as counts, not one row each.

use bridge_tests::{AuditRow, Conv, Server, audit_rows, audit_rows_for, random_hex};
use serde_json::{Value, json};

fn detail(row: &AuditRow) -> Value {
    serde_json::from_str(&row.detail).expect("audit detail is JSON")
}

/// Sum of the events a set of rows stands for (an itemized row is one).
fn events(rows: &[AuditRow]) -> u64 {
    rows.iter()
        .map(|r| detail(r)["count"].as_u64().unwrap_or(1))
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_tokens_back_off_but_the_right_token_always_passes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    let wrong = Conv {
        token_a: random_hex(32),
        ..c.clone()
    };
    // The default allowance: 20 wrong tokens a minute get the plain answer.
    for i in 0..20 {
        let text = s
            .refused("check_messages", wrong.args("a", json!({})))
            .await?;
        assert_eq!(text, "invalid or expired session token", "attempt {i}");
    }
    // Then backoff, with a time to retry.
    let mut retry_secs = Vec::new();
    let retry = regex::Regex::new(r"retry in (\d+) s")?;
    for _ in 0..80 {
        let text = s
            .refused(
                "send_to_partner",
                wrong.args("a", json!({"message": "let me in"})),
            )
            .await?;
        assert!(text.contains("too many failed authentications"), "{text}");
        let secs: i64 = retry
            .captures(&text)
            .and_then(|c| c[1].parse().ok())
            .unwrap_or_else(|| panic!("no retry time in {text}"));
        retry_secs.push(secs);
        // The correct token, interleaved, is never throttled.
        s.ok("check_partner_status", c.args("a", json!({}))).await?;
    }
    assert!(
        retry_secs.iter().all(|&s| (1..=300).contains(&s)),
        "{retry_secs:?}"
    );
    // Same conversation, guessing from another process: the conversation key
    // is shared by the process only, but this one's client key is fresh, so
    // its first wrong tokens are plain refusals again; the right one passes.
    let s2 = Server::start(&db, &[]).await?;
    s2.refused("check_messages", wrong.args("a", json!({})))
        .await?;
    s.ok(
        "send_to_partner",
        c.args("b", json!({"message": "still here"})),
    )
    .await?;
    let inbox = s2.ok("check_messages", c.args("a", json!({}))).await?;
    assert_eq!(inbox["messages"][0]["message"], "still here");
    s2.stop().await?;

    let live_failed = audit_rows_for(&db, "auth.failed")?.len();
    s.stop().await?;
    let failed = audit_rows_for(&db, "auth.failed")?;
    let throttled = audit_rows_for(&db, "auth.throttled")?;
    // Every refusal is accounted for, in far fewer rows than refusals.
    assert_eq!(events(&failed), 21, "{failed:?}");
    assert_eq!(events(&throttled), 80, "{throttled:?}");
    assert!(
        failed.len() + throttled.len() <= 32,
        "{} rows",
        failed.len() + throttled.len()
    );
    assert!(live_failed >= 20);
    let aggregate = throttled
        .iter()
        .find(|r| detail(r)["aggregated"] == true)
        .expect("an aggregate row for the refusals past the itemized allowance");
    assert_eq!(aggregate.outcome, "refused");
    assert_eq!(aggregate.conversation_id.as_deref(), Some(c.id.as_str()));
    assert!(
        detail(aggregate)["client"]
            .as_str()
            .unwrap()
            .starts_with("client ")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_reads_are_counted_and_flushed_not_audited_one_row_each() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    for _ in 0..200 {
        s.ok("check_messages", c.args("b", json!({}))).await?;
    }
    for _ in 0..50 {
        s.ok("check_partner_status", c.args("a", json!({}))).await?;
    }
    for status in ["working", "blocked"].iter().cycle().take(41) {
        s.ok("update_my_status", c.args("a", json!({ "status": status })))
            .await?;
    }
    s.ok("send_to_partner", c.args("a", json!({"message": "one"})))
        .await?;
    for _ in 0..30 {
        s.ok("check_messages", c.args("b", json!({"peek": true})))
            .await?;
    }
    // A consuming read is still audited on its own, at once.
    s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(audit_rows_for(&db, "message.check")?.len(), 1);
    let before = audit_rows(&db)?.len();
    assert!(before <= 4, "{before} rows before the flush");
    s.stop().await?;

    let empty = audit_rows_for(&db, "message.check.empty")?;
    assert_eq!(empty.len(), 1, "{empty:?}");
    assert_eq!(detail(&empty[0])["count"], 200);
    assert_eq!(empty[0].outcome, "ok");
    assert_eq!(empty[0].session_id.as_deref(), Some("b"));
    assert_eq!(detail(&empty[0])["flush_interval_secs"], 60);
    let partner = audit_rows_for(&db, "status.check")?;
    assert_eq!(events(&partner), 50);
    assert_eq!(partner.len(), 1);
    assert_eq!(events(&audit_rows_for(&db, "message.check.reread")?), 30);
    let status = audit_rows_for(&db, "status.update")?;
    assert_eq!(status.len(), 1);
    assert_eq!(detail(&status[0])["count"], 41);
    assert_eq!(detail(&status[0])["latest"], "working");
    assert!(bridge_tests::audit_verify(&db)?.0, "the chain stays intact");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn creation_is_limited_per_client_globally_and_by_a_ceiling() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let flags = ["--create-limit", "5/1m", "--create-limit-global", "8/1m"];
    let a = Server::start(&db, &flags).await?;
    let b = Server::start(&db, &flags).await?;
    for _ in 0..5 {
        Conv::create(&a).await?;
    }
    let args = json!({"my_role": "backend_developer", "partner_role": "frontend_developer"});
    let text = a.refused("create_conversation", args.clone()).await?;
    assert!(
        text.contains("too many conversations created by this client")
            && text.contains("5 per 60 s")
            && text.contains("retry in"),
        "{text}"
    );
    // Another client still may, until the global limit binds.
    for _ in 0..3 {
        Conv::create(&b).await?;
    }
    let text = b.refused("create_conversation", args.clone()).await?;
    assert!(
        text.contains("for all clients together") && text.contains("retry in"),
        "{text}"
    );
    a.stop().await?;
    b.stop().await?;
    let limited = audit_rows_for(&db, "conversation.create.limited")?;
    assert_eq!(limited.len(), 2);
    assert!(limited.iter().all(|r| r.outcome == "refused"));

    // The ceiling on live conversations, whoever asks.
    let c = Server::start(
        &db,
        &["--max-conversations", "9", "--create-limit-global", "off"],
    )
    .await?;
    Conv::create(&c).await?;
    let text = c.refused("create_conversation", args.clone()).await?;
    assert!(
        text.contains("ceiling of 9 live conversations") && text.contains("--max-conversations"),
        "{text}"
    );
    c.stop().await?;
    // An expired conversation no longer counts.
    let id = audit_rows_for(&db, "conversation.create")?[0]
        .conversation_id
        .clone()
        .unwrap();
    bridge_tests::expire(&db, &id)?;
    let c = Server::start(
        &db,
        &["--max-conversations", "9", "--create-limit-global", "off"],
    )
    .await?;
    Conv::create(&c).await?;
    c.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_limit_flags_are_refused_with_the_expected_form() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (flag, value, want) in [
        ("--auth-failures", "lots", "auth_failures"),
        ("--create-limit", "0/1m", "above zero"),
        ("--max-conversations", "0", "at least 1"),
    ] {
        let out = std::process::Command::new(bridge_tests::bin("bridge"))
            .arg("--db")
            .arg(dir.path().join("b.db"))
            .args(["serve", flag, value])
            .stdin(std::process::Stdio::null())
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value}");
        assert!(err.contains(want), "{flag} {value}: {err}");
    }
    Ok(())
}

/// Refusals an agent can repeat at will, and errors that repeat what it
/// sent, reach the audit log in bounded rows: each session's first refusals
/// in a minute one row each, the rest as one aggregate.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_refusals_and_echoed_input_cannot_grow_the_audit_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start_with_env(&db, &[], &[("YOLO_MODE", "1")]).await?;
    let c = Conv::create(&s).await?;
    bridge_tests::yolo::enable(
        &db,
        &c.id,
        &[
            "--mode",
            "yolo",
            "--image",
            bridge_tests::yolo::test_image(),
        ],
    )?;
    // Only the creator may invite; session b tries again and again.
    for i in 0..60 {
        s.refused(
            "invite_participant",
            c.args("b", json!({ "role": format!("helper {i}") })),
        )
        .await?;
    }
    // A command the policy blocks, near the size limit, proposed again and again.
    let blocked = format!("sudo ls {}", "x".repeat(6000));
    for _ in 0..40 {
        s.refused(
            "propose_command",
            c.args("b", json!({ "command": blocked })),
        )
        .await?;
    }
    // A wrong approval token, presented again and again, also as a dry run.
    let p = s
        .ok(
            "propose_command",
            c.args("a", json!({"command": "echo hi"})),
        )
        .await?["proposal_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = format!("apv_{}", "0".repeat(48));
    for dry in [false, true].iter().cycle().take(80) {
        s.refused(
            "execute_command",
            c.args(
                "a",
                json!({"proposal_id": p, "approval_token": wrong, "dry_run": dry}),
            ),
        )
        .await?;
    }
    // A megabyte-long unknown argument, and a long string where a number belongs.
    let mut huge = json!({"my_role": "backend", "partner_role": "frontend"});
    huge["k".repeat(1 << 20)] = json!(1);
    for _ in 0..5 {
        let text = s.refused("create_conversation", huge.clone()).await?;
        assert!(
            text.len() < 400 && text.contains("unknown field"),
            "{} bytes",
            text.len()
        );
    }
    let text = s
        .refused(
            "check_messages",
            c.args("a", json!({"wait_seconds": "9".repeat(100_000)})),
        )
        .await?;
    assert!(text.len() < 400 && text.contains("wait_seconds"), "{text}");
    s.stop().await?;

    for (action, refusals, itemized_max) in [
        ("conversation.invite", 60, 31),
        ("yolo.propose", 40, 31),
        ("yolo.execute", 80, 31),
    ] {
        let rows: Vec<_> = audit_rows_for(&db, action)?
            .into_iter()
            .filter(|r| r.outcome == "refused")
            .collect();
        assert_eq!(events(&rows), refusals, "{action}: {rows:?}");
        assert!(rows.len() <= itemized_max, "{action}: {} rows", rows.len());
    }
    let invalid = audit_rows_for(&db, "request.invalid")?;
    assert_eq!(invalid.len(), 6, "{invalid:?}");
    let longest = audit_rows(&db)?
        .iter()
        .map(|r| r.detail.len())
        .max()
        .unwrap_or(0);
    assert!(longest < 1024, "an audit row's detail is {longest} bytes");
    assert!(bridge_tests::audit_verify(&db)?.0, "the chain stays intact");
    Ok(())
}
