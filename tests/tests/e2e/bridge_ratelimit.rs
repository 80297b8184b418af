//! Send quotas through the real binary: per authenticated session and
//! conversation, never spent by failed auth, audited, and configurable.

use bridge_tests::{Conv, Server, audit_rows_for, random_hex};
use serde_json::json;

async fn send(s: &Server, c: &Conv, from: &str, i: usize) -> anyhow::Result<()> {
    s.ok(
        "send_to_partner",
        c.args(from, json!({"message": format!("m{i}")})),
    )
    .await
    .map(|_| ())
    .map_err(|e| anyhow::anyhow!("send {i} from {from}: {e}"))
}

/// The retry time an over-quota refusal states, in seconds.
fn retry_secs(text: &str) -> Option<u64> {
    let after = &text[text.find("retry in ")? + "retry in ".len()..];
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn eleventh_send_in_a_minute_is_refused_for_that_session_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    let other = Conv::create(&s).await?;
    for i in 0..10 {
        send(&s, &c, "a", i).await?;
    }
    let text = s
        .refused("send_to_partner", c.args("a", json!({"message": "m10"})))
        .await?;
    assert!(text.contains("rate limit"), "{text}");
    assert!(
        text.contains("10 sends per 60 s"),
        "states the limit: {text}"
    );
    let retry = retry_secs(&text).unwrap_or_else(|| panic!("states no retry time: {text}"));
    assert!((1..=60).contains(&retry), "{text}");
    // A refused send is not counted: the wait does not grow.
    let again = s
        .refused("send_to_partner", c.args("a", json!({"message": "m11"})))
        .await?;
    assert!(retry_secs(&again).unwrap() <= retry, "{again} after {text}");

    // The partner, and the same session id in another conversation, have
    // quotas of their own.
    for i in 0..10 {
        send(&s, &c, "b", i).await?;
        send(&s, &other, "a", i).await?;
    }
    // Reads are not sends.
    let inbox = s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 10);
    s.ok("check_messages", c.args("a", json!({}))).await?;
    s.ok(
        "update_my_status",
        c.args("a", json!({"status": "blocked"})),
    )
    .await?;
    s.stop().await?;

    let limited = audit_rows_for(&db, "rate.limited")?;
    assert_eq!(limited.len(), 2);
    for row in &limited {
        assert_eq!(row.outcome, "refused");
        assert_eq!(row.conversation_id.as_deref(), Some(c.id.as_str()));
        assert_eq!(row.session_id.as_deref(), Some("a"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_that_fail_auth_do_not_spend_the_quota() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    let wrong = Conv {
        token_a: random_hex(32),
        ..c.clone()
    };
    for i in 0..20 {
        let text = s
            .refused(
                "send_to_partner",
                wrong.args("a", json!({"message": format!("spam {i}")})),
            )
            .await?;
        assert_eq!(text, "invalid or expired session token");
    }
    for i in 0..10 {
        send(&s, &c, "a", i).await?;
    }
    let text = s
        .refused("send_to_partner", c.args("a", json!({"message": "m10"})))
        .await?;
    assert!(text.contains("rate limit"), "{text}");
    s.stop().await?;
    assert_eq!(audit_rows_for(&db, "auth.failed")?.len(), 20);
    assert_eq!(audit_rows_for(&db, "rate.limited")?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quota_is_shared_by_every_process_on_the_database() -> anyhow::Result<()> {
    // Each stdio client starts its own bridge: a second process must not
    // grant a fresh quota.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s1 = Server::start(&db, &[]).await?;
    let s2 = Server::start(&db, &[]).await?;
    let c = Conv::create(&s1).await?;
    for i in 0..10 {
        send(if i % 2 == 0 { &s1 } else { &s2 }, &c, "a", i).await?;
    }
    s2.refused("send_to_partner", c.args("a", json!({"message": "m10"})))
        .await?;
    s1.refused("send_to_partner", c.args("a", json!({"message": "m10"})))
        .await?;
    s1.stop().await?;
    s2.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_off_accepts_fifty_quick_sends() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &["--rate-limit", "off"]).await?;
    let c = Conv::create(&s).await?;
    for i in 0..50 {
        send(&s, &c, "a", i).await?;
    }
    s.stop().await?;
    assert!(audit_rows_for(&db, "rate.limited")?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_flag_sets_the_quota() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &["--rate-limit", "3/1m"]).await?;
    let c = Conv::create(&s).await?;
    for i in 0..3 {
        send(&s, &c, "a", i).await?;
    }
    let text = s
        .refused("send_to_partner", c.args("a", json!({"message": "m3"})))
        .await?;
    assert!(text.contains("3 sends per 60 s"), "{text}");
    assert!(retry_secs(&text).is_some(), "{text}");
    s.stop().await
}
